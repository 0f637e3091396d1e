package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/tunmux/tunmux/internal/testnet"
	"github.com/tunmux/tunmux/maps"
)

// TestApplyConflictsFoundBeforeWriting: an XDP slot held by another root's
// program is found in the check, so the dry run reports it and apply exits 1
// having written nothing (before, the tunnel was written and the pair not).
func TestApplyConflictsFoundBeforeWriting(t *testing.T) {
	c := newApplyCLI(t)
	other := testnet.BPFRoot(t, func(r string) { testnet.Tunmux(bin, "--bpffs", r, "unload", "--all") })
	testnet.MustTunmux(t, bin, "--bpffs", other, "--netns", c.ns.Name, "load", "xconnect")
	testnet.MustTunmux(t, bin, "--bpffs", other, "--netns", c.ns.Name, "xconnect", "add", "p0", "q0")
	c.ok("load", "encap")
	before := c.snapshot()
	file := writeFile(t, "both.yaml", `encap:
  tunnels:
    - {inner-src: 10.0.0.1, inner-dst: 10.0.0.2, proto: vlan, vlan-id: 7, underlay: ul0, overlay: wl0}
xconnect:
  pairs: [[p0, q0]]
`)
	for _, args := range [][]string{{"apply", "-f", file, "--dry-run"}, {"apply", "-f", file}} {
		c.expect(exitFailed, args, "the XDP slot of p0 is owned by", "not a tunmux program under this root", "in use")
	}
	if c.snapshot() != before {
		t.Errorf("a refused apply changed the pinned state")
	}
}

// TestApplyPruneAtFullCapacity: a file that replaces every tunnel of a full
// tunnel map fits once the removals are done, which then go first.
func TestApplyPruneAtFullCapacity(t *testing.T) {
	c := newCLI(t)
	c.ok("load", "encap", "--max-entries", "3")
	tunnels := func(first int) string {
		var b strings.Builder
		b.WriteString("encap:\n  tunnels:\n")
		for i := first; i < first+3; i++ {
			fmt.Fprintf(&b, "    - {inner-src: 10.0.%d.1, inner-dst: 10.0.%d.2, proto: vlan, vlan-id: %d, underlay: ul0, overlay: wl0}\n", i, i, 100+i)
		}
		return b.String()
	}
	c.ok("apply", "-f", writeFile(t, "a.yaml", tunnels(0)))
	c.ok("apply", "-f", writeFile(t, "b.yaml", tunnels(10)), "--prune")
	var ts []maps.TunnelJSON
	c.jsonOut(&ts, "tunnel", "list")
	if len(ts) != 3 || ts[0].InnerSrc != "10.0.10.1" {
		t.Errorf("tunnels after the prune: %+v", ts)
	}
	// Without prune the same file does not fit: refused, nothing written.
	before := c.snapshot()
	c.expect(exitFailed, []string{"apply", "-f", writeFile(t, "c.yaml", tunnels(20))}, "room for 3", "--max-entries 6")
	if c.snapshot() != before {
		t.Errorf("a refused apply changed the pinned state")
	}
}
