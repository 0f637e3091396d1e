package testnet

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"
)

// Bed is the two-node testbed of scripts/testbed.sh, with a bpffs root per
// node: workloads w1 (10.0.0.1) and w2 (10.0.0.2) behind hosts h1 and h2
// (underlay ul0 192.168.1.1 and .2, workload side wl0), joined by a bridge
// br0 in the namespace "wire".
type Bed struct {
	T      testing.TB
	Bin    string    // the tunmux binary
	Prefix string    // namespace name prefix
	Roots  [3]string // bpffs roots of node 1 and 2 (index 0 unused)
}

// NewBed builds a testbed with unique names; it is removed, and whatever
// tunmux loaded for it unloaded, when the test ends.
func NewBed(t testing.TB, bin string) *Bed {
	t.Helper()
	RequireRoot(t)
	b := &Bed{T: t, Bin: bin, Prefix: Unique("tmxe") + "-"}
	script := filepath.Join(TopDir(), "scripts", "testbed.sh")
	t.Cleanup(func() { _ = exec.Command("bash", script, "down", b.Prefix).Run() })
	Run(t, "bash", script, "up", b.Prefix)
	for n := 1; n <= 2; n++ {
		b.Roots[n] = BPFRoot(t, func(root string) { Tunmux(bin, "--bpffs", root, "unload", "encap") })
	}
	return b
}

// NS returns one of the testbed's namespaces: w1, h1, wire, h2 or w2.
func (b *Bed) NS(name string) *Netns { return &Netns{Name: b.Prefix + name} }

// Tunmux runs tunmux for node n in its host namespace and requires exit 0.
func (b *Bed) Tunmux(n int, args ...string) Result {
	b.T.Helper()
	return MustTunmux(b.T, b.Bin, append([]string{"--bpffs", b.Roots[n], "--netns", fmt.Sprintf("%sh%d", b.Prefix, n)}, args...)...)
}

// TunmuxNode makes node n a tunmux endpoint of one tunnel to the other
// node, as an operator would: load, attach encap and decap, add the tunnel.
func (b *Bed) TunmuxNode(n int, proto string, idArgs ...string) {
	b.T.Helper()
	o := 3 - n
	b.Tunmux(n, "load", "encap")
	b.Tunmux(n, "attach", "encap", "wl0")
	b.Tunmux(n, "attach", "decap", "ul0")
	args := []string{"tunnel", "add", "--inner-src", fmt.Sprintf("10.0.0.%d", n), "--inner-dst", fmt.Sprintf("10.0.0.%d", o),
		"--proto", proto, "--underlay", "ul0", "--overlay", "wl0"}
	args = append(args, idArgs...)
	if proto != "vlan" {
		args = append(args, "--outer-src", fmt.Sprintf("192.168.1.%d", n), "--outer-dst", fmt.Sprintf("192.168.1.%d", o),
			"--dst-mac", fmt.Sprintf("02:00:00:00:0a:0%d", o))
	}
	b.Tunmux(n, args...)
}

// KernelVXLANNode makes node n an endpoint of the kernel's vxlan device.
func (b *Bed) KernelVXLANNode(n int, vni int) {
	b.T.Helper()
	Run(b.T, "bash", filepath.Join(TopDir(), "scripts", "testbed.sh"), "kvxlan", b.Prefix, fmt.Sprint(n), fmt.Sprint(vni))
}

// Counter returns node n's packet count for program/outcome of encap.
func (b *Bed) Counter(n int, program, outcome string) uint64 {
	b.T.Helper()
	var cs []struct {
		Program, Outcome string
		Packets          uint64
	}
	r := b.Tunmux(n, "-o", "json", "stats", "encap")
	if err := json.Unmarshal([]byte(r.Stdout), &cs); err != nil {
		b.T.Fatal(err)
	}
	for _, c := range cs {
		if c.Program == program && c.Outcome == outcome {
			return c.Packets
		}
	}
	b.T.Fatalf("no counter %s/%s", program, outcome)
	return 0
}
