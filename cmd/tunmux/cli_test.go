package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/tunmux/tunmux/internal/testnet"
	"github.com/tunmux/tunmux/maps"
)

// bin is the tunmux binary the tests run as separate processes.
var bin string

func TestMain(m *testing.M) { os.Exit(testnet.MainWithTunmux(m, &bin)) }

// cli runs tunmux against a private bpffs root, resolving interfaces in a
// private namespace holding veths ul0/ul1, wl0/wl1 and x0/x1.
type cli struct {
	t    *testing.T
	root string
	ns   *testnet.Netns
}

func newCLI(t *testing.T) *cli {
	testnet.RequireRoot(t)
	c := &cli{t: t}
	c.root = testnet.BPFRoot(t, func(root string) { testnet.Tunmux(bin, "--bpffs", root, "unload", "encap") })
	c.ns = testnet.NewNetns(t, "cli")
	for _, p := range [][2]string{{"ul0", "ul1"}, {"wl0", "wl1"}, {"x0", "x1"}} {
		testnet.Veth(t, c.ns, p[0], c.ns, p[1])
	}
	return c
}

func (c *cli) args(args []string) []string {
	return append([]string{"--bpffs", c.root, "--netns", c.ns.Name}, args...)
}

// run runs tunmux with the test's root and namespace.
func (c *cli) run(args ...string) testnet.Result { return testnet.Tunmux(bin, c.args(args)...) }

// ok runs tunmux and requires exit 0.
func (c *cli) ok(args ...string) testnet.Result {
	c.t.Helper()
	return testnet.MustTunmux(c.t, bin, c.args(args)...)
}

// expect runs tunmux and requires the exit code and, on stderr, every snippet.
func (c *cli) expect(code int, args []string, snippets ...string) testnet.Result {
	c.t.Helper()
	r := c.run(args...)
	if r.Code != code {
		c.t.Errorf("want exit %d:\n%s", code, r)
		return r
	}
	for _, s := range snippets {
		if !strings.Contains(r.Stderr, s) {
			c.t.Errorf("stderr lacks %q:\n%s", s, r)
		}
	}
	return r
}

// jsonOut runs tunmux -o json and decodes its output into v.
func (c *cli) jsonOut(v any, args ...string) {
	c.t.Helper()
	r := c.ok(append([]string{"-o", "json"}, args...)...)
	if err := json.Unmarshal([]byte(r.Stdout), v); err != nil {
		c.t.Fatalf("decode JSON of %v: %v\n%s", args, err, r.Stdout)
	}
}

// programWritten are the maps the programs write (counters, the l2tp next-hop
// cache): frames the kernel sends on its own move them.
var programWritten = map[string]bool{"map_stats": true, "map_port_stats": true, "map_session_stats": true, "map_neigh": true, "map_member_stats": true}

// snapshot returns every pin of the root and bpftool's dump of every map
// the programs do not write: what a command must leave byte for byte alone
// when it fails.
func (c *cli) snapshot() string {
	c.t.Helper()
	var b strings.Builder
	_ = filepath.Walk(c.root, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		fmt.Fprintln(&b, path)
		if strings.HasPrefix(info.Name(), maps.MapPrefix) && !programWritten[info.Name()] {
			out, err := exec.Command("bpftool", "map", "dump", "pinned", path).CombinedOutput()
			if err != nil {
				c.t.Fatalf("bpftool map dump %s: %v\n%s", path, err, out)
			}
			b.Write(out)
		}
		return nil
	})
	return b.String()
}

var tunnelArgs = []string{"--inner-src", "10.0.0.1", "--inner-dst", "10.0.0.2", "--proto", "vxlan", "--vni", "100",
	"--outer-src", "192.168.1.1", "--outer-dst", "192.168.1.2", "--dst-mac", "02:00:00:00:00:02", "--underlay", "ul0", "--overlay", "wl0"}

// withFlag returns tunnelArgs with flag set to value (added if absent).
func withFlag(base []string, flag, value string) []string {
	out := append([]string(nil), base...)
	for i := 0; i+1 < len(out); i += 2 {
		if out[i] == flag {
			out[i+1] = value
			return out
		}
	}
	return append(out, flag, value)
}

// without returns base without flag and its value.
func without(base []string, flag string) []string {
	var out []string
	for i := 0; i+1 < len(base); i += 2 {
		if base[i] != flag {
			out = append(out, base[i], base[i+1])
		}
	}
	return out
}

// absent, as a value given to badValues, leaves the flag out.
const absent = "\x00absent"

// badInput is a command line that must exit 2 naming flag on stderr.
type badInput struct {
	args []string
	flag string
}

// badValues returns the command line cmd followed by base with flag set to
// each of values (or, for absent, without flag): each must be refused
// naming flag.
func badValues(cmd, base []string, flag string, values ...string) []badInput {
	var out []badInput
	for _, v := range values {
		args := without(base, flag)
		if v != absent {
			args = withFlag(base, flag, v)
		}
		out = append(out, badInput{slices.Concat(cmd, args), flag})
	}
	return out
}

// refuse runs every bad command line and requires exit 2 naming its flag.
func (c *cli) refuse(cases []badInput) {
	c.t.Helper()
	for _, tc := range cases {
		r := c.run(tc.args...)
		if r.Code != exitInvalid || !strings.Contains(r.Stderr, tc.flag) {
			c.t.Errorf("want exit 2 naming %s:\n%s", tc.flag, r)
		}
	}
}

// unchanged fails the test, saying what changed it, if the pinned state
// differs from before (a snapshot).
func (c *cli) unchanged(before, what string) {
	c.t.Helper()
	if c.snapshot() != before {
		c.t.Errorf("%s changed pinned state", what)
	}
}

// okSays runs tunmux, requires exit 0 and stdout holding snippet.
func (c *cli) okSays(snippet string, args ...string) {
	c.t.Helper()
	if r := c.ok(args...); !strings.Contains(r.Stdout, snippet) {
		c.t.Errorf("want %q on stdout:\n%s", snippet, r)
	}
}

// wantXDP fails the test unless an XDP program is attached to dev in the
// test's namespace (want) or none is (!want); what says after what.
func (c *cli) wantXDP(dev string, want bool, what string) {
	c.t.Helper()
	out := c.ns.Run(c.t, "ip", "link", "show", dev)
	if strings.Contains(out, "xdp") != want {
		c.t.Errorf("%s: XDP attached on %s is %v, want %v:\n%s", what, dev, !want, want, out)
	}
}

// loadMux loads mux with carrier and member m1 (label 1, created by
// tunmux), and unloads it when the test ends.
func (c *cli) loadMux(carrier string) {
	c.t.Helper()
	c.t.Cleanup(func() { c.run("unload", "mux") })
	c.ok("load", "mux")
	c.ok("mux", "carrier", "set", carrier)
	c.ok("mux", "member", "add", "m1", "--label", "1", "--create")
}

func TestLoadIsIdempotentAndUnloadCleansUp(t *testing.T) {
	c := newCLI(t)
	var first, second struct {
		Created    []string `json:"created"`
		MaxEntries uint32   `json:"max_entries"`
	}
	c.jsonOut(&first, "load", "encap")
	if len(first.Created) != 15 || first.MaxEntries != 1024 {
		t.Errorf("first load created %v with capacity %d, want 8 maps and 6 programs, 1024", first.Created, first.MaxEntries)
	}
	c.ok(append([]string{"tunnel", "add"}, tunnelArgs...)...)
	before := c.snapshot()
	c.jsonOut(&second, "load", "encap")
	if len(second.Created) != 0 {
		t.Errorf("second load created %v, want nothing", second.Created)
	}
	c.unchanged(before, "a second load")
	// The tunnel added by one process is there for the next.
	var tn maps.TunnelJSON
	c.jsonOut(&tn, "tunnel", "get", "--inner-src", "10.0.0.1", "--inner-dst", "10.0.0.2")
	if tn.Proto != "vxlan" || tn.VNI == nil || *tn.VNI != 100 {
		t.Errorf("tunnel after reload: %+v", tn)
	}
	c.ok("attach", "encap", "wl0")
	r := c.ok("unload", "encap")
	if !strings.Contains(r.Stdout, "1 links detached") {
		t.Errorf("unload: %s", r)
	}
	if _, err := os.Stat(filepath.Join(c.root, "encap")); !os.IsNotExist(err) {
		t.Errorf("unload left %s/encap", c.root)
	}
	c.wantXDP("wl0", false, "after unload")
	c.okSays("was not loaded", "unload", "encap")
}

func TestIncompatiblePinsAreRefusedAndNothingChanges(t *testing.T) {
	c := newCLI(t)
	c.ok("load", "encap")
	c.ok(append([]string{"tunnel", "add"}, tunnelArgs...)...)
	// (Another --max-entries is no longer a difference: load resizes in
	// place, TestLoadResizesInPlace.) A map whose value size changed (as a
	// future schema would).
	slots := filepath.Join(c.root, "encap", "map_slots")
	if err := os.Remove(slots); err != nil {
		t.Fatal(err)
	}
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Hash, KeySize: 4, ValueSize: 16, MaxEntries: 1024})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Pin(slots); err != nil {
		t.Fatal(err)
	}
	m.Close()
	before := c.snapshot()
	c.expect(1, []string{"load", "encap"}, "slots", "ValueSize is 16 pinned")
	c.expect(1, []string{"tunnel", "list"}, "slots", "incompatible")
	// Nor is an incompatible dataplane resized.
	c.expect(1, []string{"load", "encap", "--max-entries", "2048"}, "must be whole first", "ValueSize is 16 pinned")
	c.unchanged(before, "a refused load")
	// A schema this tunmux does not know.
	c.ok("unload", "encap")
	c.ok("load", "encap")
	meta, err := ebpf.LoadPinnedMap(filepath.Join(c.root, "encap", "map_meta"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer meta.Close()
	raw := make([]byte, meta.ValueSize())
	if err := meta.Lookup(uint32(0), &raw); err != nil {
		t.Fatal(err)
	}
	raw[0] = 99
	if err := meta.Put(uint32(0), raw); err != nil {
		t.Fatal(err)
	}
	c.expect(1, []string{"load", "encap"}, "schema 99")
	var st struct {
		Dataplanes []struct{ State string } `json:"dataplanes"`
	}
	c.jsonOut(&st, "status")
	if len(st.Dataplanes) != 1 || st.Dataplanes[0].State != "incompatible" {
		t.Errorf("status of an incompatible dataplane: %+v", st)
	}
}

func TestTunnelCRUDAcrossProcesses(t *testing.T) {
	c := newCLI(t)
	c.ok("load", "encap")
	key := []string{"--inner-src", "10.0.0.1", "--inner-dst", "10.0.0.2"}
	c.expect(exitNotFound, append([]string{"tunnel", "get"}, key...), "not found")
	c.ok(append([]string{"tunnel", "add"}, tunnelArgs...)...)
	c.expect(exitFailed, append([]string{"tunnel", "add"}, tunnelArgs...), "already exists")

	var tn maps.TunnelJSON
	c.jsonOut(&tn, append([]string{"tunnel", "get"}, key...)...)
	want := maps.TunnelJSON{InnerSrc: "10.0.0.1", InnerDst: "10.0.0.2", Proto: "vxlan", Underlay: "ul0", Overlay: "wl0"}
	if tn.InnerSrc != want.InnerSrc || tn.InnerDst != want.InnerDst || tn.Proto != want.Proto || tn.Underlay != want.Underlay ||
		tn.Overlay != want.Overlay || *tn.VNI != 100 || *tn.OuterSrc != "192.168.1.1" || *tn.OuterDst != "192.168.1.2" ||
		*tn.DstMAC != "02:00:00:00:00:02" || tn.SrcMAC == nil || tn.SrcPort != nil || tn.VlanID != nil || tn.InnerDstMAC != nil {
		t.Errorf("tunnel get: %+v", tn)
	}
	// Its src-mac defaulted to the underlay's address.
	var links []struct {
		Address string `json:"address"`
	}
	if err := json.Unmarshal([]byte(c.ns.Run(t, "ip", "-j", "link", "show", "ul0")), &links); err != nil || len(links) != 1 {
		t.Fatalf("ip -j link show ul0: %v", err)
	}
	mac := links[0].Address
	if *tn.SrcMAC != mac {
		t.Errorf("src-mac %s, want the underlay's %s", *tn.SrcMAC, mac)
	}

	c.ok(append([]string{"tunnel", "update", "--vni", "7", "--src-port", "4000"}, key...)...)
	c.jsonOut(&tn, append([]string{"tunnel", "get"}, key...)...)
	if *tn.VNI != 7 || *tn.SrcPort != 4000 || *tn.OuterDst != "192.168.1.2" {
		t.Errorf("after update: %+v", tn)
	}
	// Switching to VLAN drops the outer fields; a stale --vni is refused.
	c.expect(exitInvalid, append([]string{"tunnel", "update", "--proto", "vlan", "--vlan-id", "5", "--vni", "3"}, key...), "--vni")
	c.ok(append([]string{"tunnel", "update", "--proto", "vlan", "--vlan-id", "5"}, key...)...)
	c.jsonOut(&tn, append([]string{"tunnel", "get"}, key...)...)
	if tn.Proto != "vlan" || *tn.VlanID != 5 || tn.VNI != nil || tn.OuterSrc != nil || tn.SrcPort != nil {
		t.Errorf("after switching to vlan: %+v", tn)
	}
	c.ok(append([]string{"tunnel", "add", "--replace"}, tunnelArgs...)...)
	c.expect(exitNotFound, []string{"tunnel", "update", "--inner-src", "10.9.9.9", "--inner-dst", "10.0.0.2", "--vni", "5"}, "not found")
	c.expect(exitInvalid, []string{"tunnel", "update", "--inner-src", "10.9.9.9", "--inner-dst", "10.0.0.2", "--vni", "x"}, "--vni")

	c.ok(append([]string{"tunnel", "add"}, withFlag(tunnelArgs, "--inner-src", "10.0.0.0")...)...)
	var list []maps.TunnelJSON
	c.jsonOut(&list, "tunnel", "list")
	if len(list) != 2 || list[0].InnerSrc != "10.0.0.0" || list[1].InnerSrc != "10.0.0.1" {
		t.Errorf("list: %+v", list)
	}
	table := c.ok("tunnel", "list").Stdout
	if !strings.HasPrefix(table, "TUNNEL") || strings.Count(table, "\n") != 3 {
		t.Errorf("table:\n%s", table)
	}
	// The default table fits 80 columns; -o wide has every column.
	for _, line := range strings.Split(strings.TrimSpace(table), "\n") {
		if len(line) > 80 {
			t.Errorf("a line of %d columns:\n%s", len(line), table)
		}
	}
	if wide := c.ok("-o", "wide", "tunnel", "list").Stdout; !strings.HasPrefix(wide, "INNER-SRC") || !strings.Contains(wide, "DST-MAC") {
		t.Errorf("wide table:\n%s", wide)
	}
	c.ok(append([]string{"tunnel", "del"}, key...)...)
	c.expect(exitNotFound, append([]string{"tunnel", "del"}, key...), "not found")
	c.jsonOut(&list, "tunnel", "list")
	if len(list) != 1 {
		t.Errorf("after del: %+v", list)
	}
}

func TestRedirectSlotsAreReferenceCounted(t *testing.T) {
	c := newCLI(t)
	c.ok("load", "encap")
	c.ok(append([]string{"tunnel", "add"}, tunnelArgs...)...)
	c.ok(append([]string{"tunnel", "add"}, withFlag(tunnelArgs, "--inner-dst", "10.0.0.3")...)...)
	var slots []maps.Slot
	c.jsonOut(&slots, "devmap", "list")
	if len(slots) != 2 {
		t.Fatalf("slots: %+v", slots)
	}
	for _, s := range slots {
		if s.In != s.Out || len(s.Tunnels) != 2 || s.Explicit || s.Readiness != maps.ReadyGRO {
			t.Errorf("slot %+v: want an identity slot held by 2 tunnels, ready by GRO", s)
		}
	}
	// GRO is now on at the veth peers.
	if out := c.ns.Run(t, "ethtool", "-k", "ul1"); !strings.Contains(out, "generic-receive-offload: on") {
		t.Errorf("GRO not on at ul1:\n%s", out)
	}
	before := c.snapshot()
	c.expect(exitFailed, []string{"devmap", "del", "ul0"}, "10.0.0.1->10.0.0.2", "10.0.0.1->10.0.0.3")
	c.unchanged(before, "a refused devmap del")
	c.ok("tunnel", "del", "--inner-src", "10.0.0.1", "--inner-dst", "10.0.0.2")
	c.jsonOut(&slots, "devmap", "list")
	if len(slots) != 2 || len(slots[0].Tunnels) != 1 {
		t.Errorf("after one del: %+v", slots)
	}
	c.ok("tunnel", "del", "--inner-src", "10.0.0.1", "--inner-dst", "10.0.0.3")
	c.jsonOut(&slots, "devmap", "list")
	if len(slots) != 0 {
		t.Errorf("slots outlived their tunnels: %+v", slots)
	}

	// Plain slots.
	c.ok("devmap", "add", "x0", "ul0")
	c.expect(exitFailed, []string{"devmap", "add", "x0", "wl0"}, "already exists")
	var s maps.Slot
	c.jsonOut(&s, "devmap", "get", "x0")
	if s.InName != "x0" || s.OutName != "ul0" || !s.Explicit {
		t.Errorf("devmap get: %+v", s)
	}
	c.expect(exitFailed, append([]string{"tunnel", "add"}, withFlag(tunnelArgs, "--overlay", "x0")...), "devmap del x0")
	c.ok("devmap", "del", "x0")
	c.expect(exitNotFound, []string{"devmap", "get", "x0"}, "not found")
	c.expect(exitNotFound, []string{"devmap", "del", "x0"}, "not found")
	// A tunnel can share an identity slot added by hand, which then outlives it.
	c.ok("devmap", "add", "wl0", "wl0")
	c.ok(append([]string{"tunnel", "add"}, tunnelArgs...)...)
	c.ok("tunnel", "del", "--inner-src", "10.0.0.1", "--inner-dst", "10.0.0.2")
	c.jsonOut(&s, "devmap", "get", "wl0")
	if !s.Explicit {
		t.Errorf("the explicit slot went with the tunnel: %+v", s)
	}
}

func TestAttachDetach(t *testing.T) {
	c := newCLI(t)
	c.expect(exitFailed, []string{"attach", "encap", "wl0"}, "not loaded", c.ns.Name+" load encap'")
	c.ok("load", "encap")
	var res struct {
		Ifindex int    `json:"ifindex"`
		Mode    string `json:"mode"`
		LinkID  uint32 `json:"link_id"`
		Pin     string `json:"pin"`
		Already bool   `json:"already"`
	}
	c.jsonOut(&res, "attach", "encap", "wl0")
	if res.Mode != "native" || res.LinkID == 0 || res.Already {
		t.Errorf("attach: %+v", res)
	}
	if _, err := os.Stat(res.Pin); err != nil {
		t.Errorf("no link pin: %v", err)
	}
	c.wantXDP("wl0", true, "after attach")
	c.jsonOut(&res, "attach", "encap", "wl0")
	if !res.Already {
		t.Errorf("second attach: %+v", res)
	}
	c.expect(exitFailed, []string{"attach", "decap", "wl0"}, "owned by tunmux encap (program encap", "detach encap wl0'")
	c.expect(exitFailed, []string{"attach", "encap", "wl0", "--mode", "generic"}, "native mode")
	c.expect(exitNotFound, []string{"detach", "decap", "wl0"}, "not attached")
	c.ok("attach", "decap", "ul0", "--mode", "generic")
	if out := c.ns.Run(t, "ip", "link", "show", "ul0"); !strings.Contains(out, "xdpgeneric") {
		t.Errorf("generic XDP not attached:\n%s", out)
	}
	var st struct {
		Dataplanes []struct {
			Links []struct {
				Program, Interface, Mode, State, Netns string
			} `json:"links"`
		} `json:"dataplanes"`
	}
	c.jsonOut(&st, "status")
	links := st.Dataplanes[0].Links
	sort.Slice(links, func(i, j int) bool { return links[i].Program < links[j].Program })
	if len(links) != 2 || links[0].Program != "decap" || links[0].Mode != "generic" || links[1].Interface != "wl0" ||
		links[1].State != "attached" || links[1].Netns != c.ns.Name {
		t.Errorf("status links: %+v", links)
	}
	c.ok("detach", "encap", "wl0")
	c.expect(exitNotFound, []string{"detach", "encap", "wl0"}, "not attached")
	c.wantXDP("wl0", false, "after detach")
	// An interface that goes away leaves a defunct link, which detach still removes.
	c.ok("attach", "redirect", "wl0")
	c.ns.Run(t, "ip", "link", "del", "wl0")
	c.jsonOut(&st, "status")
	found := false
	for _, l := range st.Dataplanes[0].Links {
		if l.Program == "redirect" {
			found = true
			if l.State != "defunct" || l.Interface != "wl0" {
				t.Errorf("link of a deleted interface: %+v", l)
			}
		}
	}
	if !found {
		t.Errorf("status lost the redirect link")
	}
	c.ok("detach", "redirect", "wl0")
	c.jsonOut(&st, "status")
	if len(st.Dataplanes[0].Links) != 1 {
		t.Errorf("after detaching the defunct link: %+v", st.Dataplanes[0].Links)
	}
	// A program attached by someone else is named.
	c.ns.Run(t, "ip", "link", "set", "dev", "x0", "xdpgeneric", "pinned", filepath.Join(c.root, "encap", "prog_pass"))
	r := c.expect(exitFailed, []string{"attach", "encap", "x0", "--mode", "generic"}, "owned by tunmux encap (program pass",
		"free it with 'ip -n "+c.ns.Name+" link set dev x0 xdpgeneric off'")
	// The command the message gives does free it (issue 14: it used to say
	// "detach that first", which tunmux detach could not do).
	if r.Code == exitFailed {
		testnet.Run(t, "ip", "-n", c.ns.Name, "link", "set", "dev", "x0", "xdpgeneric", "off")
		c.ok("attach", "encap", "x0", "--mode", "generic")
	}
}

func TestBadInputExitsTwoAndChangesNothing(t *testing.T) {
	c := newCLI(t)
	c.ok("load", "encap")
	c.ok(append([]string{"tunnel", "add"}, tunnelArgs...)...)
	c.ok("attach", "encap", "wl0")
	before := c.snapshot()
	vlan := []string{"--inner-src", "10.0.5.1", "--inner-dst", "10.0.5.2", "--proto", "vlan", "--vlan-id", "10", "--underlay", "ul0", "--overlay", "wl0"}
	tunnelAdd := []string{"tunnel", "add"}
	add := func(args []string) []string { return slices.Concat(tunnelAdd, args) }
	fresh := withFlag(tunnelArgs, "--inner-dst", "10.0.0.9")
	geneve := withFlag(fresh, "--proto", "geneve")
	c.refuse(slices.Concat(
		badValues(tunnelAdd, fresh, "--inner-src", "abc", "10.0.0.256", "fd00::1", "224.0.0.1", "0.0.0.0", absent),
		badValues(tunnelAdd, fresh, "--inner-dst", "10.0.0.1", "255.255.255.255"),
		badValues(tunnelAdd, fresh, "--proto", "gre", absent),
		badValues(tunnelAdd, fresh, "--vni", "16777216", "-1", "0x10", absent),
		badValues(tunnelAdd, fresh, "--vlan-id", "5"),
		badValues(tunnelAdd, vlan, "--vlan-id", "0", "4095", "ten", absent),
		badValues(tunnelAdd, vlan, "--outer-src", "192.168.1.1"),
		badValues(tunnelAdd, vlan, "--dst-mac", "02:00:00:00:00:02"),
		badValues(tunnelAdd, vlan, "--vni", "3"),
		badValues(tunnelAdd, vlan, "--src-port", "3000"),
		badValues(tunnelAdd, fresh, "--outer-src", "1.2.3", "::1", absent),
		badValues(tunnelAdd, fresh, "--outer-dst", "192.168.1.1", absent),
		badValues(tunnelAdd, fresh, "--src-mac", "zz:00:00:00:00:01", "01:00:5e:00:00:01", "00:00:00:00:00:00", "02:00:00:00:00"),
		badValues(tunnelAdd, fresh, "--dst-mac", "nope", absent),
		badValues(tunnelAdd, fresh, "--inner-dst-mac", "ff:ff:ff:ff:ff:ff"),
		badValues(tunnelAdd, fresh, "--src-port", "70000", "-5", "http"),
		badValues(tunnelAdd, fresh, "--underlay", "nosuchif", "a/b", "waytoolonginterfacename", absent),
		badValues(tunnelAdd, fresh, "--overlay", "nosuchif"),
		[]badInput{
			{add(append(fresh, "--bogus", "1")), "--bogus"},
			{[]string{"tunnel", "update", "--inner-src", "10.0.0.1", "--inner-dst", "10.0.0.2", "--vni", "99999999"}, "--vni"},
			{[]string{"tunnel", "update", "--inner-src", "10.0.0.1", "--inner-dst", "10.0.0.2", "--proto", "vlan"}, "--vlan-id"},
			{[]string{"tunnel", "get", "--inner-src", "10.0.0.1"}, "--inner-dst"},
			{[]string{"tunnel", "del", "--inner-src", "x", "--inner-dst", "10.0.0.2"}, "--inner-src"},
			{[]string{"tunnel", "get", "--inner-src", "10.0.0.1", "--inner-dst", "10.0.0.2", "--vni", "5"}, "--vni"},
			{[]string{"attach", "encap", "nosuchif"}, "IFACE"},
			{[]string{"attach", "encap", "ul0", "--mode", "turbo"}, "--mode"},
			{[]string{"attach", "encap", "ul0", "--hook", "netfilter"}, "--hook"},
			{[]string{"attach", "encap", "ul0", "--hook", "TC"}, "--hook"},
			{[]string{"attach", "redirect", "ul0", "--hook", "tc"}, "--hook"},
			{[]string{"attach", "encap", "ul0", "--hook", "tc", "--mode", "native"}, "--mode"},
			{add(withFlag(fresh, "--outer-src", "fd01::1")), "--outer-"},
			{add(withFlag(withFlag(fresh, "--outer-src", "fd01::1"), "--outer-dst", "ff02::1")), "--outer-dst"},
			{add(withFlag(withFlag(fresh, "--inner-src", "fd00::1"), "--inner-dst", "fd00::1")), "--inner-dst"},
			{add(withFlag(withFlag(fresh, "--inner-src", "fd00::1"), "--inner-dst", "ff02::1:ff00:2")), "--inner-dst"},
		},
		badValues(tunnelAdd, fresh, "--geneve-opt", "0102:03:00000000"),
		badValues(tunnelAdd, geneve, "--geneve-opt", "0102:03", "0102:03:abc", "0102:03:aabbcc", "10000:03:00000000", "0102:100:00000000", "0102:03:"+strings.Repeat("00", 64)),
		[]badInput{
			{add(append(geneve, "--geneve-opt", "0102:03:"+strings.Repeat("00", 32), "--geneve-opt", "0102:04:"+strings.Repeat("00", 32))), "--geneve-opt"},
			{[]string{"attach", "tunnel", "ul0"}, "PROGRAM"},
			{[]string{"attach", "encap"}, "usage"},
			{[]string{"detach", "encap", "nosuchif"}, "IFACE"},
			{[]string{"devmap", "add", "nosuchif", "ul0"}, "IN"},
			{[]string{"devmap", "add", "x0", "nosuchif"}, "OUT"},
			{[]string{"devmap", "add", "x0"}, "usage"},
			{[]string{"load", "gre"}, "DATAPLANE"},
			{[]string{"load", "encap", "--max-entries", "0"}, "--max-entries"},
			{[]string{"load", "encap", "--max-entries", "lots"}, "--max-entries"},
			{[]string{"load", "encap", "--max-entries", "99999999"}, "--max-entries"},
			{[]string{"stats", "gre"}, "DATAPLANE"},
			{[]string{"-o", "yaml", "tunnel", "list"}, "-o"},
			{[]string{"--lock-timeout", "-1s", "tunnel", "list"}, "--lock-timeout"},
			{[]string{"--lock-timeout", "soon", "tunnel", "list"}, "--lock-timeout"},
			{[]string{"tunnel", "frobnicate"}, "frobnicate"},
			{[]string{"tunnel"}, "subcommand"},
			{[]string{"frobnicate"}, "frobnicate"},
			{[]string{"capture", "-w", "-"}, "IFACE"},
			{[]string{"capture", "wl0"}, "-w"},
			{[]string{"capture", "wl0", "--program", "encap", "-w", "-"}, "--program"},
			{[]string{"capture", "nosuchif", "-w", "-"}, "IFACE"},
			{[]string{"capture", "wl0", "--where", "middle", "-w", "-"}, "--where"},
			{[]string{"capture", "wl0", "--snaplen", "0", "-w", "-"}, "--snaplen"},
			{[]string{"capture", "wl0", "--snaplen", "70000", "-w", "-"}, "--snaplen"},
			{[]string{"capture", "wl0", "-c", "-1", "-w", "-"}, "-c"},
			{[]string{"capture", "wl0", "--tunnel", "10.0.0.1", "-w", "-"}, "--tunnel"},
			{[]string{"capture", "wl0", "--tunnel", "a-b", "-w", "-"}, "--tunnel"},
			{[]string{"capture", "wl0", "--inner-src", "10.0.0.1", "-w", "-"}, "--inner-src"},
			{[]string{"monitor", "--rate", "0"}, "--rate"},
			{[]string{"monitor", "--dataplane", "gre"}, "--dataplane"},
			{[]string{"monitor", "-c", "-2"}, "-c"},
			{[]string{"monitor", "wl0"}, "usage"},
		},
	))
	r := testnet.Tunmux(bin, "--bpffs", c.root, "--netns", "no-such-netns", "tunnel", "list")
	if r.Code != exitInvalid || !strings.Contains(r.Stderr, "--netns") {
		t.Errorf("bad --netns:\n%s", r)
	}
	c.unchanged(before, "bad input")
	// Every problem of one command line is listed at once.
	r = c.run(add(withFlag(withFlag(fresh, "--vni", "x"), "--dst-mac", "y"))...)
	if !strings.Contains(r.Stderr, "--vni") || !strings.Contains(r.Stderr, "--dst-mac") || !strings.Contains(r.Stderr, "2 problems") {
		t.Errorf("want both problems listed:\n%s", r)
	}
}

func TestLockContention(t *testing.T) {
	c := newCLI(t)
	c.ok("load", "encap")
	// This test process holds the lock: tunmux waits, then gives up.
	root, err := maps.OpenRoot(c.root, false)
	if err != nil {
		t.Fatal(err)
	}
	lock, err := root.Lock(time.Second)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	c.expect(exitFailed, append([]string{"--lock-timeout", "300ms", "tunnel", "add"}, tunnelArgs...), "lock", "--lock-timeout")
	if waited := time.Since(start); waited < 300*time.Millisecond {
		t.Errorf("gave up after %s, before the timeout", waited)
	}
	// Reads do not take the lock.
	c.ok("tunnel", "list")
	lock.Release()
	c.ok(append([]string{"tunnel", "add"}, tunnelArgs...)...)

	// Eight tunmux processes adding at once: all land.
	var wg sync.WaitGroup
	results := make([]testnet.Result, 8)
	for i := range results {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			results[i] = c.run(append([]string{"tunnel", "add"}, withFlag(tunnelArgs, "--inner-dst", fmt.Sprintf("10.0.1.%d", i))...)...)
		}(i)
	}
	wg.Wait()
	for _, r := range results {
		if r.Code != 0 {
			t.Errorf("concurrent add: %s", r)
		}
	}
	var list []maps.TunnelJSON
	c.jsonOut(&list, "tunnel", "list")
	if len(list) != 9 {
		t.Errorf("%d tunnels after 9 adds", len(list))
	}
}

func TestMountsTheBPFFSWhenMissing(t *testing.T) {
	testnet.RequireRoot(t)
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare (util-linux) is not installed; run make deps")
	}
	// In a private mount namespace with no bpffs at /sys/fs/bpf, load mounts one.
	script := fmt.Sprintf(`set -e
umount /sys/fs/bpf 2>/dev/null || true
if [ "$(stat -f -c %%T /sys/fs/bpf)" = bpf_fs ]; then echo still-mounted; exit 1; fi
%[1]s --bpffs /sys/fs/bpf/tunmux-mount-test load encap
stat -f -c %%T /sys/fs/bpf
%[1]s --bpffs /sys/fs/bpf/tunmux-mount-test unload encap`, bin)
	// A new PID namespace too, so that no ancestor process shows the host's bpffs.
	out, err := exec.Command("unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--mount-proc", "sh", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(string(out), "bpf_fs") || !strings.Contains(string(out), "created map_") {
		t.Errorf("load did not mount a bpffs:\n%s", out)
	}
	// Under ip netns exec (a private mount namespace whose /sys hides the
	// bpffs), tunmux pins into the host's bpffs all the same.
	c := newCLI(t)
	c.ns.Run(t, "ip", "link", "add", "name", "v0", "type", "veth", "peer", "name", "v1")
	c.ns.Run(t, "ip", "link", "set", "v0", "up")
	out, err = exec.Command("ip", "netns", "exec", c.ns.Name, bin, "--bpffs", c.root, "load", "encap").CombinedOutput()
	if err != nil {
		t.Fatalf("load under ip netns exec: %v\n%s", err, out)
	}
	out, err = exec.Command("ip", "netns", "exec", c.ns.Name, bin, "--bpffs", c.root, "attach", "encap", "v0").CombinedOutput()
	if err != nil {
		t.Fatalf("attach under ip netns exec: %v\n%s", err, out)
	}
	var st struct {
		Dataplanes []struct {
			Links []struct{ Interface, State string } `json:"links"`
		} `json:"dataplanes"`
	}
	c.jsonOut(&st, "status")
	if len(st.Dataplanes) != 1 || len(st.Dataplanes[0].Links) != 1 || st.Dataplanes[0].Links[0].State != "attached" {
		t.Errorf("the host does not see what ip netns exec loaded: %+v", st)
	}
	// Elsewhere than under /sys/fs/bpf, a folder that is not a bpffs is an error.
	r := testnet.Tunmux(bin, "--bpffs", t.TempDir()+"/x", "load", "encap")
	if r.Code != exitFailed || !strings.Contains(r.Stderr, "not on a bpffs") {
		t.Errorf("load on a non-bpffs folder:\n%s", r)
	}
}

func TestReadCommandsOnAnEmptyRoot(t *testing.T) {
	c := newCLI(t)
	r := c.ok("status")
	if !strings.Contains(r.Stdout, "nothing loaded") {
		t.Errorf("status: %s", r)
	}
	var st struct {
		Root       string `json:"root"`
		Dataplanes []any  `json:"dataplanes"`
	}
	c.jsonOut(&st, "status")
	if st.Root != c.root || st.Dataplanes == nil || len(st.Dataplanes) != 0 {
		t.Errorf("status JSON: %+v", st)
	}
	c.expect(exitFailed, []string{"tunnel", "list"}, "not loaded")
	var stats []any
	c.jsonOut(&stats, "stats")
	if len(stats) != 0 {
		t.Errorf("stats with nothing loaded: %v", stats)
	}
	c.ok("load", "encap")
	c.jsonOut(&stats, "stats", "encap")
	if len(stats) != 46 {
		t.Errorf("stats encap has %d counters, want 46", len(stats))
	}
}

func TestIPv6TunnelsGeneveOptionsAndHooks(t *testing.T) {
	c := newCLI(t)
	c.ok("load", "encap")
	v6 := []string{"--inner-src", "fd00::1", "--inner-dst", "fd00::2", "--proto", "geneve", "--vni", "7",
		"--outer-src", "fd01::1", "--outer-dst", "fd01::2", "--dst-mac", "02:00:00:00:00:02", "--underlay", "ul0", "--overlay", "wl0",
		"--geneve-opt", "0102:03:deadbeef", "--geneve-opt", "ffff:7f:0000000000000000"}
	// The workload side (wl1, MTU 1500) sends more than the tunnel carries:
	// 1500 - 14 - 40 - 8 - 8 - 20 bytes of options = 1410.
	if r := c.ok(append([]string{"tunnel", "add"}, v6...)...); !strings.Contains(r.Stderr, "wl1 has MTU 1500, but this tunnel carries at most 1410 bytes") {
		t.Errorf("no MTU warning:\n%s", r)
	}
	c.ns.Run(t, "ip", "link", "set", "wl1", "mtu", "1410")
	if r := c.ok("tunnel", "update", "--inner-src", "fd00::1", "--inner-dst", "fd00::2", "--vni", "8"); strings.Contains(r.Stderr, "MTU") {
		t.Errorf("an MTU warning although the MTU fits:\n%s", r)
	}
	// IPv4 workloads over the IPv6 underlay, and IPv6 workloads over IPv4.
	c.ok(append([]string{"tunnel", "add"}, withFlag(withFlag(v6, "--inner-src", "10.0.0.1"), "--inner-dst", "10.0.0.2")...)...)
	c.ok(append([]string{"tunnel", "add"}, withFlag(withFlag(tunnelArgs, "--inner-src", "fd00::5"), "--inner-dst", "fd00::6")...)...)
	var got struct {
		InnerSrc   string            `json:"inner_src"`
		OuterDst   string            `json:"outer_dst"`
		GeneveOpts []string          `json:"geneve_opts"`
		Counters   map[string]uint64 `json:"counters"`
	}
	c.jsonOut(&got, "tunnel", "get", "--inner-src", "fd00::1", "--inner-dst", "fd00::2")
	if got.InnerSrc != "fd00::1" || got.OuterDst != "fd01::2" || fmt.Sprint(got.GeneveOpts) != "[0102:03:deadbeef ffff:7f:0000000000000000]" {
		t.Errorf("tunnel get: %+v", got)
	}
	for _, k := range []string{"tx_packets", "tx_bytes", "rx_packets", "rx_bytes", "drop_too_big"} {
		if v, ok := got.Counters[k]; !ok || v != 0 {
			t.Errorf("counter %s of a new tunnel: %d (present %v), want 0", k, v, ok)
		}
	}
	c.ok("tunnel", "update", "--inner-src", "fd00::1", "--inner-dst", "fd00::2", "--geneve-opt", "none")
	c.jsonOut(&got, "tunnel", "get", "--inner-src", "fd00::1", "--inner-dst", "fd00::2")
	if len(got.GeneveOpts) != 0 {
		t.Errorf("--geneve-opt none left %v", got.GeneveOpts)
	}
	if out := c.ok("tunnel", "list").Stdout; !strings.Contains(out, "fd00::1") || !strings.Contains(out, "fd01::2") || !strings.Contains(out, "10.0.0.1") {
		t.Errorf("tunnel list misses the IPv6 tunnels:\n%s", out)
	}

	// One hook per program and interface: encap at TC ingress of wl0 blocks
	// encap at XDP there.
	c.ok("attach", "encap", "wl0", "--hook", "tc")
	c.expect(exitFailed, []string{"attach", "encap", "wl0"}, "one hook per interface")
	if out := c.ok("status").Stdout; !strings.Contains(out, "encap-tc") || !strings.Contains(out, "tc-ingress") {
		t.Errorf("status does not show encap-tc at tc-ingress:\n%s", out)
	}
	// Both TC programs at one hook of one interface: the second is refused.
	c.expect(exitFailed, []string{"attach", "decap", "wl0", "--hook", "tc"}, "encap-tc already runs at tc-ingress of wl0")
	c.ok("detach", "encap", "wl0")
	c.ok("attach", "encap", "wl0")
	c.ok("detach", "encap", "wl0")
	// A critical option is sent, with a warning that receivers drop what they do not understand.
	crit := withFlag(withFlag(v6, "--inner-src", "fd00::7"), "--inner-dst", "fd00::8")
	if r := c.ok(append(append([]string{"tunnel", "add"}, crit...), "--geneve-opt", "0102:80:00000000")...); !strings.Contains(r.Stderr, "0102:80:00000000 is critical") {
		t.Errorf("no warning for a critical option:\n%s", r)
	}
}
