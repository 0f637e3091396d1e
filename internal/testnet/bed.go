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

// Args are the global flags of tunmux for node n: its root and namespace.
func (b *Bed) Args(n int) []string {
	return []string{"--bpffs", b.Roots[n], "--netns", fmt.Sprintf("%sh%d", b.Prefix, n)}
}

// Tunmux runs tunmux for node n in its host namespace and requires exit 0.
func (b *Bed) Tunmux(n int, args ...string) Result {
	b.T.Helper()
	return MustTunmux(b.T, b.Bin, append(b.Args(n), args...)...)
}

// Rebuild deletes the testbed's namespaces and makes them again, as a
// reboot would: the same names and addresses, new interfaces.
func (b *Bed) Rebuild() {
	b.T.Helper()
	script := filepath.Join(TopDir(), "scripts", "testbed.sh")
	Run(b.T, "bash", script, "down", b.Prefix)
	Run(b.T, "bash", script, "up", b.Prefix)
}

// TunmuxNode makes node n a tunmux endpoint of one tunnel to the other
// node, as an operator would: load, attach encap and decap (XDP), add the
// tunnel between the workloads' IPv4 addresses over the IPv4 underlay.
func (b *Bed) TunmuxNode(n int, proto string, idArgs ...string) {
	b.T.Helper()
	b.TunmuxNodeWith(n, Node{Proto: proto, IDArgs: idArgs})
}

// Node is how TunmuxNodeWith sets a node up.
type Node struct {
	Proto  string   // geneve, vxlan or vlan
	IDArgs []string // --vni N or --vlan-id N, and any other tunnel flags
	Hook   string   // attach --hook: "" (XDP, the default), xdp or tc
	Outer6 bool     // the IPv6 underlay (fd01::n) instead of IPv4
	Inner  []int    // workload families with a tunnel: 4 and/or 6 (default 4)
}

// TunmuxNodeWith makes node n a tunmux endpoint as the Node says.
func (b *Bed) TunmuxNodeWith(n int, nd Node) {
	b.T.Helper()
	o := 3 - n
	b.Tunmux(n, "load", "encap")
	hook := []string{}
	if nd.Hook != "" {
		hook = []string{"--hook", nd.Hook}
	}
	b.Tunmux(n, append([]string{"attach", "encap", "wl0"}, hook...)...)
	b.Tunmux(n, append([]string{"attach", "decap", "ul0"}, hook...)...)
	if len(nd.Inner) == 0 {
		nd.Inner = []int{4}
	}
	for _, family := range nd.Inner {
		src, dst := fmt.Sprintf("10.0.0.%d", n), fmt.Sprintf("10.0.0.%d", o)
		if family == 6 {
			src, dst = fmt.Sprintf("fd00::%d", n), fmt.Sprintf("fd00::%d", o)
		}
		args := []string{"tunnel", "add", "--inner-src", src, "--inner-dst", dst, "--proto", nd.Proto, "--underlay", "ul0", "--overlay", "wl0"}
		args = append(args, nd.IDArgs...)
		if nd.Proto != "vlan" {
			osrc, odst := fmt.Sprintf("192.168.1.%d", n), fmt.Sprintf("192.168.1.%d", o)
			if nd.Outer6 {
				osrc, odst = fmt.Sprintf("fd01::%d", n), fmt.Sprintf("fd01::%d", o)
			}
			args = append(args, "--outer-src", osrc, "--outer-dst", odst, "--dst-mac", fmt.Sprintf("02:00:00:00:0a:0%d", o))
		}
		b.Tunmux(n, args...)
	}
}

// KernelVXLANNode makes node n an endpoint of the kernel's vxlan device
// over the IPv4 underlay.
func (b *Bed) KernelVXLANNode(n int, vni int) {
	b.T.Helper()
	b.KernelVXLANNodeOver(n, vni, 4)
}

// KernelVXLANNodeOver makes node n an endpoint of the kernel's vxlan device
// over the IPv4 (4) or IPv6 (6) underlay; over IPv6 it accepts the zero UDP
// checksums of tunmux's GSO frames (udp6zerocsumrx).
func (b *Bed) KernelVXLANNodeOver(n int, vni int, family int) {
	b.T.Helper()
	Run(b.T, "bash", filepath.Join(TopDir(), "scripts", "testbed.sh"), "kvxlan", b.Prefix, fmt.Sprint(n), fmt.Sprint(vni), fmt.Sprint(family))
}

// Offloads turns tx checksum offload (and with it TSO) back on at the
// senders, which the testbed turns off for XDP redirects.
func (b *Bed) Offloads() {
	b.T.Helper()
	for n := 1; n <= 2; n++ {
		b.NS(fmt.Sprintf("w%d", n)).Run(b.T, "ethtool", "-K", "eth0", "tx", "on")
		b.NS(fmt.Sprintf("h%d", n)).Run(b.T, "ethtool", "-K", "ul0", "tx", "on")
	}
}

// WorkloadMTU sets both workloads' MTU (1430 leaves room for the 70 bytes
// of a tunnel over IPv6).
func (b *Bed) WorkloadMTU(mtu int) {
	b.T.Helper()
	for n := 1; n <= 2; n++ {
		b.NS(fmt.Sprintf("w%d", n)).Run(b.T, "ip", "link", "set", "eth0", "mtu", fmt.Sprint(mtu))
	}
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
