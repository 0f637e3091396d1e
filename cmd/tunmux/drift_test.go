package main

import (
	"strings"
	"testing"
	"time"

	"github.com/tunmux/tunmux/internal/testnet"
	"github.com/tunmux/tunmux/maps"
)

// driftYAML is one tunnel and its attachments, and a pair: what the drift
// tests break by hand.
const driftYAML = `attach:
  - {program: encap, iface: wl0}
  - {program: decap, iface: ul0}
encap:
  tunnels:
    - {inner-src: 10.0.0.1, inner-dst: 10.0.0.2, proto: vxlan, vni: 100, outer-src: 192.168.1.1, outer-dst: 192.168.1.2,
       dst-mac: "02:00:00:00:00:02", underlay: ul0, overlay: wl0}
xconnect:
  pairs: [[p0, q0]]
`

// gro reports whether GRO is on at an interface of the test's namespace.
func (c *cli) gro(iface string) bool {
	return strings.Contains(c.ns.Run(c.t, "ethtool", "-k", iface), "generic-receive-offload: on")
}

// linkState returns the state status gives the link of program on iface.
func (c *cli) linkState(program, iface string) string {
	var st struct {
		Dataplanes []struct {
			Links []struct{ Program, Interface, State string } `json:"links"`
		} `json:"dataplanes"`
	}
	c.jsonOut(&st, "status")
	for _, d := range st.Dataplanes {
		for _, l := range d.Links {
			if l.Program == program && l.Interface == iface && l.State == "attached" {
				return "attached"
			}
		}
	}
	return "defunct or none"
}

// TestObservedReadinessAndDriftRepair: readiness is read from the kernel
// when a command runs, not from what was recorded; apply --dry-run reports
// the drift (GRO turned off at a veth peer, a link left defunct by a
// recreated interface) as changes, apply repairs it, and apply --watch
// repairs it by itself, a hand deletion too.
func TestObservedReadinessAndDriftRepair(t *testing.T) {
	c := newApplyCLI(t)
	file := writeFile(t, "drift.yaml", driftYAML)
	c.ok("apply", "-f", file)
	if !c.gro("wl1") || !c.gro("p1") {
		t.Fatalf("apply did not make the veth targets ready (GRO on at wl1 and p1)")
	}
	var res applyResult
	c.jsonOut(&res, "apply", "-f", file, "--dry-run")
	if len(res.Changes) != 0 {
		t.Fatalf("a second apply would change %+v", res.Changes)
	}

	// GRO off at the peers: status and the lists say so at once, the dry
	// run sees the drift, apply turns GRO on again.
	c.ns.Run(t, "ethtool", "-K", "wl1", "gro", "off")
	c.ns.Run(t, "ethtool", "-K", "p1", "gro", "off")
	var slots []maps.Slot
	c.jsonOut(&slots, "devmap", "list")
	for _, s := range slots {
		if s.OutName == "wl0" && s.Readiness != maps.NotReadyNoGRO {
			t.Errorf("devmap list says wl0 is %s with GRO off at its peer", s.Readiness)
		}
	}
	if r := c.ok("status"); !strings.Contains(r.Stdout, "NOT READY") {
		t.Errorf("status does not show the target that is not ready:\n%s", r.Stdout)
	}
	pairs := c.pairsOf()
	if len(pairs) != 1 || pairs[0].A.Readiness != maps.NotReadyNoGRO && pairs[0].B.Readiness != maps.NotReadyNoGRO {
		t.Errorf("xconnect list: %+v", pairs)
	}
	c.jsonOut(&res, "apply", "-f", file, "--dry-run")
	kinds := map[string]int{}
	for _, ch := range res.Changes {
		kinds[ch.Kind]++
	}
	if kinds["slot"] != 1 || kinds["pair"] != 1 {
		t.Errorf("dry run with GRO off at two peers: %+v", res.Changes)
	}
	c.ok("apply", "-f", file)
	if !c.gro("wl1") || !c.gro("p1") {
		t.Errorf("apply did not turn GRO on again")
	}

	// wl0 recreated: its encap link is defunct; status's program table says
	// so as its links table does, and apply attaches again.
	c.ns.Run(t, "ip", "link", "del", "wl0")
	testnet.Veth(t, c.ns, "wl0", c.ns, "wl1")
	if got := c.linkState("encap", "wl0"); got == "attached" {
		t.Fatalf("encap on the recreated wl0 reads as attached")
	}
	if r := c.ok("status"); !strings.Contains(r.Stdout, "defunct") {
		t.Errorf("status does not show the defunct link:\n%s", r.Stdout)
	}
	c.jsonOut(&res, "apply", "-f", file, "--dry-run")
	if res.Summary["change"] == 0 {
		t.Errorf("dry run after wl0 was recreated: %+v", res.Changes)
	}
	c.ok("apply", "-f", file)
	if got := c.linkState("encap", "wl0"); got != "attached" {
		t.Errorf("encap on wl0 after apply: %s", got)
	}
	c.jsonOut(&res, "apply", "-f", file, "--dry-run")
	if len(res.Changes) != 0 {
		t.Errorf("apply left drift: %+v", res.Changes)
	}

	// --watch repairs all of it by itself.
	w := c.startWatch(file, "--resync", "1s")
	w.waitLine("the first apply", func(l watchLine) bool { return l.Error == "" })
	c.ok("tunnel", "del", "--inner-src", "10.0.0.1", "--inner-dst", "10.0.0.2")
	c.ns.Run(t, "ethtool", "-K", "p1", "gro", "off")
	w.waitLine("a repair", func(l watchLine) bool { return l.Repaired })
	testnet.WaitFor(t, 30*time.Second, "the tunnel back and GRO on at p1", func() bool {
		r := c.run("tunnel", "get", "--inner-src", "10.0.0.1", "--inner-dst", "10.0.0.2")
		return r.Code == 0 && c.gro("p1")
	})
	c.ns.Run(t, "ip", "link", "del", "wl0")
	testnet.Veth(t, c.ns, "wl0", c.ns, "wl1")
	testnet.WaitFor(t, 30*time.Second, "encap attached to the recreated wl0", func() bool { return c.linkState("encap", "wl0") == "attached" })
}

// TestApplyChangesAPairsMode: a pair whose mode the file changes is
// connected again in the new mode.
func TestApplyChangesAPairsMode(t *testing.T) {
	c := newApplyCLI(t)
	c.ok("apply", "-f", writeFile(t, "native.yaml", "xconnect:\n  pairs: [[p0, q0]]\n"))
	generic := writeFile(t, "generic.yaml", "xconnect:\n  pairs: [{a: p0, b: q0, mode: generic}]\n")
	var res applyResult
	c.jsonOut(&res, "apply", "-f", generic)
	if res.Summary["change"] != 1 {
		t.Fatalf("changing the mode: %+v", res)
	}
	if out := c.ns.Run(t, "ip", "link", "show", "p0"); !strings.Contains(out, "xdpgeneric") {
		t.Errorf("p0 after the change to generic mode:\n%s", out)
	}
	c.jsonOut(&res, "apply", "-f", generic, "--dry-run")
	if len(res.Changes) != 0 {
		t.Errorf("a second apply would change %+v", res.Changes)
	}
}
