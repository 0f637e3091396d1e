package main

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/tunmux/tunmux/internal/testnet"
	"github.com/tunmux/tunmux/maps"
	"github.com/tunmux/tunmux/netdev"
)

// equivalenceNS makes a namespace with the interfaces of the equivalence
// corpus, in a fixed order and with fixed MAC addresses, so that two such
// namespaces number and address their interfaces alike.
func equivalenceNS(t *testing.T, prefix string) *testnet.Netns {
	ns := testnet.NewNetns(t, prefix)
	for i, p := range [][2]string{{"ul0", "ul1"}, {"wl0", "wl1"}, {"x0", "x1"}, {"p0", "p1"}, {"q0", "q1"}, {"e0", "e1"}, {"t0", "t1"}, {"c0", "c1"}, {"v0", "v1"}} {
		testnet.Veth(t, ns, p[0], ns, p[1])
		for j, end := range p {
			ns.Run(t, "ip", "link", "set", end, "address", fmt.Sprintf("02:00:00:00:%02x:%02x", i+1, j+1))
		}
	}
	ns.Run(t, "ip", "addr", "add", "192.168.60.1/24", "dev", "ul0")
	return ns
}

// equivalenceCLI is the corpus as commands, in the order apply writes the
// same entries (so that the devices they create get the same indexes).
var equivalenceCLI = [][]string{
	{"load", "encap"}, {"load", "l2tp"}, {"load", "xconnect"}, {"load", "mux"}, {"load", "route"},
	{"route", "dev", "create", "vxlan0", "--proto", "vxlan", "--local", "192.168.60.1", "--address", "10.100.0.1/32"},
	{"route", "dev", "create", "rt0", "--routes", "--kernel-route", "10.200.0.0/24 src 10.100.0.1"},
	{"mux", "carrier", "set", "c0"},
	{"mux", "member", "add", "m1", "--label", "1", "--create", "--mtu", "1400", "--address", "10.11.1.1/24"},
	{"mux", "member", "add", "v0", "--label", "2"},
	{"attach", "encap", "wl0"},
	{"attach", "decap", "ul0", "--hook", "tc"},
	{"attach", "route", "rt0"},
	{"tunnel", "add", "--inner-src", "10.0.0.1", "--inner-dst", "10.0.0.2", "--proto", "vxlan", "--vni", "100",
		"--outer-src", "192.168.60.1", "--outer-dst", "192.168.60.2", "--dst-mac", "02:00:00:00:0a:02", "--underlay", "ul0", "--overlay", "wl0"},
	{"tunnel", "add", "--inner-src", "fd00::1", "--inner-dst", "fd00::2", "--proto", "geneve", "--vni", "7",
		"--outer-src", "192.168.60.1", "--outer-dst", "192.168.60.3", "--dst-mac", "02:00:00:00:0a:03", "--underlay", "ul0", "--overlay", "wl0",
		"--geneve-opt", "0102:83:c0ffee00", "--src-port", "5555"},
	{"tunnel", "add", "--inner-src", "10.0.0.1", "--inner-dst", "10.0.0.3", "--proto", "vlan", "--vlan-id", "300", "--underlay", "ul0", "--overlay", "wl0"},
	{"devmap", "add", "x0", "ul0"},
	{"xconnect", "add", "p0", "q0"},
	{"l2tp", "session", "add", "--session-id", "11", "--peer-session-id", "12", "--encap", "udp", "--local", "172.16.0.1",
		"--peer", "172.16.0.2:1702", "--cookie", "c00c1e01", "--eth-iface", "e0", "--tunnel-iface", "t0", "--peer-mac", "02:00:00:00:0c:02"},
	{"peer", "set", "192.168.60.3", "--health", "down", "--probe-port", "9997"},
	{"route", "add", "10.200.0.0/24", "--nexthop", "192.168.60.2,vni=100", "--nexthop", "192.168.60.3,vni=100,weight=3"},
}

// equivalenceYAML is the same corpus as one file.
const equivalenceYAML = `load: {encap: {}, l2tp: {}, xconnect: {}, mux: {}, route: {}}
route:
  devices:
    - {name: vxlan0, proto: vxlan, local: 192.168.60.1, address: 10.100.0.1/32}
    - {name: rt0, routes: true, kernel-route: "10.200.0.0/24 src 10.100.0.1"}
  peers:
    - {remote: 192.168.60.3, health: down, probe-port: 9997}
  routes:
    - {prefix: 10.200.0.0/24, nexthops: ["192.168.60.2,vni=100", "192.168.60.3,vni=100,weight=3"]}
mux:
  carrier: c0
  members:
    - {name: m1, label: 1, create: true, mtu: 1400, address: 10.11.1.1/24}
    - {name: v0, label: 2}
attach:
  - {program: encap, iface: wl0}
  - {program: decap, iface: ul0, hook: tc}
  - {program: route, iface: rt0}
encap:
  tunnels:
    - {inner-src: 10.0.0.1, inner-dst: 10.0.0.2, proto: vxlan, vni: 100, outer-src: 192.168.60.1, outer-dst: 192.168.60.2,
       dst-mac: "02:00:00:00:0a:02", underlay: ul0, overlay: wl0}
    - {inner-src: "fd00::1", inner-dst: "fd00::2", proto: geneve, vni: 7, outer-src: 192.168.60.1, outer-dst: 192.168.60.3,
       dst-mac: "02:00:00:00:0a:03", underlay: ul0, overlay: wl0, geneve-opt: "0102:83:c0ffee00", src-port: 5555}
    - {inner-src: 10.0.0.1, inner-dst: 10.0.0.3, proto: vlan, vlan-id: 300, underlay: ul0, overlay: wl0}
  devmap:
    - {in: x0, out: ul0}
xconnect:
  pairs: [[p0, q0]]
l2tp:
  sessions:
    - {session-id: 11, peer-session-id: 12, encap: udp, local: 172.16.0.1, peer: "172.16.0.2:1702", cookie: c00c1e01,
       eth-iface: e0, tunnel-iface: t0, peer-mac: "02:00:00:00:0c:02"}
`

// TestCLIAndApplyWriteTheSameState writes one corpus of entries of every
// dataplane through the commands into one bpffs root and namespace, and
// through apply into another, made alike: the maps must hold the same bytes
// (the namespaces' names and inodes aside) and the warnings must be the
// same. Per-CPU counter maps (zero in both) and the records of attachment
// times and link ids are left out.
func TestCLIAndApplyWriteTheSameState(t *testing.T) {
	testnet.RequireRoot(t)
	unloadAll := func(root string) { testnet.Tunmux(bin, "--bpffs", root, "unload", "--all") }
	nsA, nsB := equivalenceNS(t, "eqa"), equivalenceNS(t, "eqb")
	rootA, rootB := testnet.BPFRoot(t, unloadAll), testnet.BPFRoot(t, unloadAll)

	var warnA []string
	for _, cmd := range equivalenceCLI {
		r := testnet.MustTunmux(t, bin, append([]string{"--bpffs", rootA, "--netns", nsA.Name}, cmd...)...)
		warnA = append(warnA, warnings(r.Stderr)...)
	}
	file := writeFile(t, "corpus.yaml", equivalenceYAML)
	r := testnet.MustTunmux(t, bin, "--bpffs", rootB, "--netns", nsB.Name, "apply", "-f", file)
	warnB := warnings(r.Stderr)

	for i := range warnA {
		warnA[i] = strings.ReplaceAll(warnA[i], nsA.Name, nsB.Name)
	}
	sort.Strings(warnA)
	sort.Strings(warnB)
	if strings.Join(warnA, "\n") != strings.Join(warnB, "\n") {
		t.Errorf("warnings differ:\n--- commands\n%s\n--- apply\n%s", strings.Join(warnA, "\n"), strings.Join(warnB, "\n"))
	}
	if len(warnB) < 3 {
		t.Errorf("the corpus should warn (MTU, critical option, checksum offload); apply warned:\n%s", strings.Join(warnB, "\n"))
	}

	inoA, inoB := inode(t, nsA), inode(t, nsB)
	dumpA, dumpB := dumpRoot(t, rootA), dumpRoot(t, rootB)
	if len(dumpB) < 20 {
		t.Fatalf("apply's root has only %d maps", len(dumpB))
	}
	for name, a := range dumpA {
		a = bytes.ReplaceAll(a, []byte(nsA.Name), []byte(nsB.Name))
		a = bytes.ReplaceAll(a, le64(inoA), le64(inoB))
		a = bytes.ReplaceAll(a, []byte(hex.EncodeToString(le64(inoA))), []byte(hex.EncodeToString(le64(inoB))))
		if b, ok := dumpB[name]; !ok {
			t.Errorf("%s: only the commands wrote it", name)
		} else if !bytes.Equal(a, b) {
			t.Errorf("%s differs (hex):\n--- commands\n%x\n--- apply\n%x", name, a, b)
		}
	}
	for name := range dumpB {
		if _, ok := dumpA[name]; !ok {
			t.Errorf("%s: only apply wrote it", name)
		}
	}
	// The devices and their configuration are alike too.
	for _, dev := range []string{"vxlan0", "rt0", "m1"} {
		a := nsA.Run(t, "ip", "-br", "addr", "show", "dev", dev)
		b := nsB.Run(t, "ip", "-br", "addr", "show", "dev", dev)
		if a != b {
			t.Errorf("%s: %q by the commands, %q by apply", dev, a, b)
		}
	}
	if a, b := nsA.Run(t, "ip", "route", "show", "dev", "rt0"), nsB.Run(t, "ip", "route", "show", "dev", "rt0"); a != b || !strings.Contains(a, "10.200.0.0/24") {
		t.Errorf("routes through rt0: %q by the commands, %q by apply", a, b)
	}
}

// warnings returns the warning lines of a command's standard error.
func warnings(stderr string) []string {
	var out []string
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(l, "tunmux: warning: ") {
			out = append(out, l)
		}
	}
	return out
}

func inode(t *testing.T, ns *testnet.Netns) uint64 {
	var ino uint64
	ns.Do(t, func() error {
		var err error
		ino, err = netdev.CurrentInode()
		return err
	})
	return ino
}

func le64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

// dumpRoot returns every map of a root that is not per-CPU, by dataplane and
// name: its entries as sorted "key: value" lines of hex. Meta records are
// left out (they hold the load time), and attachment records are shown
// without their link id and time.
func dumpRoot(t *testing.T, root string) map[string][]byte {
	out := map[string][]byte{}
	pins, _ := filepath.Glob(filepath.Join(root, "*", maps.MapPrefix+"*"))
	for _, pin := range pins {
		name := filepath.Base(filepath.Dir(pin)) + "/" + filepath.Base(pin)
		m, err := ebpf.LoadPinnedMap(pin, nil)
		if err != nil {
			t.Fatalf("open %s: %v", pin, err)
		}
		if m.Type() == ebpf.PerCPUArray || m.Type() == ebpf.PerCPUHash || strings.HasSuffix(name, "map_meta") || strings.HasSuffix(name, "map_provenance") {
			// Records of when and by whom, not state: both roots have them.
			m.Close()
			continue
		}
		if strings.HasSuffix(name, "map_attachments") {
			atts, err := maps.ListAttachments(m)
			if err != nil {
				t.Fatal(err)
			}
			var lines []string
			for _, a := range atts {
				lines = append(lines, fmt.Sprintf("%x %d %d %s %s %s %d", le64(a.Netns), a.Ifindex, a.Hook, a.Program, a.Ifname, a.NetnsName, a.Mode))
			}
			sort.Strings(lines)
			out[name] = []byte(strings.Join(lines, "\n"))
			m.Close()
			continue
		}
		var lines []string
		key, val := make([]byte, m.KeySize()), make([]byte, m.ValueSize())
		it := m.Iterate()
		for it.Next(&key, &val) {
			lines = append(lines, hex.EncodeToString(key)+": "+hex.EncodeToString(val))
		}
		if err := it.Err(); err != nil {
			t.Fatalf("iterate %s: %v", pin, err)
		}
		m.Close()
		sort.Strings(lines)
		// Raw bytes again, where the namespaces' names and inodes can be
		// swapped; the sort by key holds, keys not holding an inode.
		var b bytes.Buffer
		for _, l := range lines {
			k, v, _ := strings.Cut(l, ": ")
			kb, _ := hex.DecodeString(k)
			vb, _ := hex.DecodeString(v)
			b.Write(kb)
			b.WriteString(" = ")
			b.Write(vb)
			b.WriteString("\n")
		}
		out[name] = b.Bytes()
	}
	return out
}
