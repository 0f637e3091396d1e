package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/tunmux/tunmux/internal/testnet"
)

// usedMap returns the map called name that the program pinned at pin uses,
// as the kernel says.
func usedMap(t *testing.T, pin, name string) *ebpf.Map {
	t.Helper()
	ids, ok := progInfo(t, pin).MapIDs()
	if !ok {
		t.Skip("this kernel does not list a program's maps")
	}
	for _, id := range ids {
		m, err := ebpf.NewMapFromID(id)
		if err != nil {
			t.Fatal(err)
		}
		if mi, err := m.Info(); err == nil && mi.Name == name {
			t.Cleanup(func() { m.Close() })
			return m
		}
		m.Close()
	}
	t.Fatalf("%s uses no map %s", pin, name)
	return nil
}

// mapID returns the id of m.
func mapID(t *testing.T, m *ebpf.Map) ebpf.MapID {
	t.Helper()
	info, err := m.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := info.ID()
	return id
}

// progInfo returns the info of the program pinned at pin.
func progInfo(t *testing.T, pin string) *ebpf.ProgramInfo {
	t.Helper()
	return pinnedInfo[*ebpf.ProgramInfo](t, pin, ebpf.LoadPinnedProgram)
}

// pinnedInfo opens the object (program, link) pinned at pin with open and
// returns its info.
func pinnedInfo[I any, O interface {
	Info() (I, error)
	Close() error
}](t *testing.T, pin string, open func(string, *ebpf.LoadPinOptions) (O, error)) I {
	t.Helper()
	o, err := open(pin, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	info, err := o.Info()
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// progID returns the id of the program pinned at pin.
func progID(t *testing.T, pin string) ebpf.ProgramID {
	t.Helper()
	id, _ := progInfo(t, pin).ID()
	return id
}

type splitStatus struct {
	Dataplanes []struct {
		Name, State, Error string
	} `json:"dataplanes"`
}

type loadJSON struct {
	Created  []string `json:"created"`
	Repaired []struct {
		Pin    string `json:"pin"`
		Action string `json:"action"`
	} `json:"repaired"`
}

// requireSplit checks that a dataplane whose pin differs from what the
// datapath uses is refused by a command that opens it (changing nothing)
// and shown as split by status, each naming the pin.
func (c *cli) requireSplit(dataplane, pin string, cmd []string) {
	c.t.Helper()
	before := c.snapshot()
	c.expect(exitFailed, cmd, "the pins and the datapath disagree", pin, " load "+dataplane+"'")
	if c.snapshot() != before {
		c.t.Errorf("%v changed pinned state of a split dataplane", cmd)
	}
	var st splitStatus
	c.jsonOut(&st, "status")
	found := false
	for _, d := range st.Dataplanes {
		if d.Name == dataplane {
			found = true
			if d.State != "split" || !strings.Contains(d.Error, pin) {
				c.t.Errorf("status of %s: %+v, want split naming %s", dataplane, d, pin)
			}
		}
	}
	if !found {
		c.t.Errorf("status lost %s: %+v", dataplane, st)
	}
	if out := c.ok("status").Stdout; !strings.Contains(out, dataplane+": split") {
		c.t.Errorf("status table does not show the split:\n%s", out)
	}
}

// requireRepair runs load and requires it to report repairing pin.
func (c *cli) requireRepair(dataplane, pin string) {
	c.t.Helper()
	var res loadJSON
	c.jsonOut(&res, "load", dataplane)
	if len(res.Repaired) != 1 || res.Repaired[0].Pin != pin || len(res.Created) != 0 {
		c.t.Errorf("load %s: %+v, want %s repaired and nothing created", dataplane, res, pin)
	}
	var st splitStatus
	c.jsonOut(&st, "status")
	for _, d := range st.Dataplanes {
		if d.Name == dataplane && d.State != "loaded" {
			c.t.Errorf("status after the repair: %+v", d)
		}
	}
}

func TestSplitMapPinIsRefusedAndLoadRepairsIt(t *testing.T) {
	for _, how := range []string{"removed", "replaced"} {
		t.Run(how, func(t *testing.T) {
			c := newCLI(t)
			c.ok("load", "encap")
			c.ok("attach", "encap", "wl0")
			c.ok(append([]string{"tunnel", "add"}, tunnelArgs...)...)
			dir := filepath.Join(c.root, "encap")
			// The tunnel is IPv4: map_tunnels4 is where the datapath reads it.
			pin := filepath.Join(dir, "map_tunnels4")
			used := usedMap(t, filepath.Join(dir, "prog_encap"), "tunnels4")
			if err := os.Remove(pin); err != nil {
				t.Fatal(err)
			}
			if how == "replaced" {
				// A map of the same shape and name, pinned over it.
				m, err := ebpf.NewMap(&ebpf.MapSpec{Name: "tunnels4", Type: used.Type(), KeySize: used.KeySize(),
					ValueSize: used.ValueSize(), MaxEntries: used.MaxEntries(), Flags: used.Flags()})
				if err != nil {
					t.Fatal(err)
				}
				err = m.Pin(pin)
				m.Close()
				if err != nil {
					t.Fatal(err)
				}
			}
			second := withFlag(tunnelArgs, "--inner-dst", "10.0.0.3")
			c.requireSplit("encap", "map_tunnels4", append([]string{"tunnel", "add"}, second...))
			c.expect(exitFailed, []string{"tunnel", "list"}, "map_tunnels4")

			c.requireRepair("encap", "map_tunnels4")
			pinned, err := ebpf.LoadPinnedMap(pin, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer pinned.Close()
			if mapID(t, pinned) != mapID(t, used) {
				t.Errorf("map_tunnels4 is id %d after the repair, the programs use id %d", mapID(t, pinned), mapID(t, used))
			}
			// Tunnels added now reach the map the program reads, beside the
			// one added before the split.
			c.ok(append([]string{"tunnel", "add"}, second...)...)
			if n := testnet.MapEntries(t, used); n != 2 {
				t.Errorf("the map the program uses holds %d tunnels, want 2", n)
			}
			var res loadJSON
			c.jsonOut(&res, "load", "encap")
			if len(res.Repaired) != 0 || len(res.Created) != 0 {
				t.Errorf("a load after the repair: %+v", res)
			}
		})
	}
}

func TestSplitLinkIsRefusedAndLoadMovesItBack(t *testing.T) {
	c := newCLI(t)
	t.Cleanup(func() { c.run("unload", "route") })
	c.ok("load", "encap")
	c.ok("attach", "encap", "wl0")
	dir := filepath.Join(c.root, "encap")
	pins, _ := filepath.Glob(filepath.Join(dir, "link_encap_*"))
	if len(pins) != 1 {
		t.Fatalf("link pins: %v", pins)
	}
	move := func(linkPin, progPin string) {
		t.Helper()
		l, err := link.LoadPinnedLink(linkPin, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		p, err := ebpf.LoadPinnedProgram(progPin, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		if err := l.Update(p); err != nil {
			t.Fatal(err)
		}
	}
	runs := func(linkPin string) ebpf.ProgramID {
		t.Helper()
		return ebpf.ProgramID(pinnedInfo[*link.Info](t, linkPin, link.LoadPinnedLink).Program)
	}
	// Someone moves the encap link to the pass program.
	move(pins[0], filepath.Join(dir, "prog_pass"))
	c.requireSplit("encap", filepath.Base(pins[0]), append([]string{"tunnel", "add"}, tunnelArgs...))
	c.requireRepair("encap", filepath.Base(pins[0]))
	if got, want := runs(pins[0]), progID(t, filepath.Join(dir, "prog_encap")); got != want {
		t.Errorf("the link runs program %d after the repair, want prog_encap's %d", got, want)
	}

	// The route program on a TUN device runs its L3 variant; moved to
	// another dataplane's TC program, load moves it back to the L3 variant
	// (either variant is fine for the check: telling them apart needs the
	// interface).
	c.ok("load", "route")
	c.ok("route", "dev", "create", "rt0", "--routes", "--mtu", "1400")
	c.ok("attach", "route", "rt0")
	dir = filepath.Join(c.root, "route")
	pins, _ = filepath.Glob(filepath.Join(dir, "link_route_*"))
	if len(pins) != 1 {
		t.Fatalf("link pins: %v", pins)
	}
	l3 := progID(t, filepath.Join(dir, "prog_route-l3"))
	if runs(pins[0]) != l3 {
		t.Fatalf("a TUN device does not run route-l3")
	}
	move(pins[0], filepath.Join(c.root, "encap", "prog_decap-tc"))
	c.requireSplit("route", filepath.Base(pins[0]), []string{"route", "list"})
	c.requireRepair("route", filepath.Base(pins[0]))
	if got := runs(pins[0]); got != l3 {
		t.Errorf("the link runs program %d after the repair, want prog_route-l3's %d", got, l3)
	}
	c.ok("route", "dev", "del", "rt0")
}
