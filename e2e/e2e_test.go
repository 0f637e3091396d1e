// Package e2e runs tunmux end to end: the two-node testbed of
// scripts/testbed.sh, the real binary run as separate processes, real pings
// and TCP transfers, tshark decoding what crosses the wire, and the kernel's
// vxlan device as an interoperability peer.
package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tunmux/tunmux/internal/testnet"
)

var bin string

func TestMain(m *testing.M) { os.Exit(testnet.MainWithTunmux(m, &bin)) }

// bed wraps the shared two-node testbed with the checks of these tests.
type bed struct {
	*testnet.Bed
	t *testing.T
}

func newBed(t *testing.T) *bed {
	testnet.RequireRoot(t)
	for _, tool := range []string{"tshark", "ping", "ethtool"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed end to end; run 'make deps': %v", tool, err)
		}
	}
	return &bed{Bed: testnet.NewBed(t, bin), t: t}
}

func (b *bed) ns(name string) *testnet.Netns { return b.NS(name) }

// ping pings ip from workload `from` (see pingUntil).
func (b *bed) ping(from int, ip string) {
	b.t.Helper()
	pingUntil(b.t, b.ns(fmt.Sprintf("w%d", from)), ip)
}

// tcp sends 8 MiB over TCP from workload `from` to the other (see tcpTransfer).
func (b *bed) tcp(from int) {
	b.t.Helper()
	to := 3 - from
	tcpTransfer(b.t, b.ns(fmt.Sprintf("w%d", from)), b.ns(fmt.Sprintf("w%d", to)), fmt.Sprintf("10.0.0.%d", to))
}

// capture starts tshark on the wire's bridge and returns a function that
// waits for count frames and returns one line of fields per frame.
func (b *bed) capture(filter string, count int, fields ...string) func() [][]string {
	b.t.Helper()
	args := []string{"-i", "br0", "-f", filter, "-c", strconv.Itoa(count), "-a", "duration:60", "-l",
		"-o", "ip.check_checksum:TRUE", "-T", "fields", "-E", "separator=|"}
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	cmd := b.ns("wire").Cmd("tshark", args...)
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		b.t.Fatalf("tshark: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	b.t.Cleanup(func() { _ = cmd.Process.Kill() })
	testnet.WaitFor(b.t, 20*time.Second, "tshark to capture on the wire", func() bool {
		return strings.Contains(stderr.String(), "Capturing on")
	})
	return func() [][]string {
		b.t.Helper()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
			b.t.Fatalf("tshark saw fewer than %d frames:\n%s\n%s", count, stdout.String(), stderr.String())
		}
		var rows [][]string
		for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
			rows = append(rows, strings.Split(line, "|"))
		}
		if len(rows) < count {
			b.t.Fatalf("tshark decoded %d frames, want %d:\n%s\n%s", len(rows), count, stdout.String(), stderr.String())
		}
		return rows
	}
}

// neighbour returns the MAC that workload `from` resolved for ip.
func (b *bed) neighbour(from int, ip string) string {
	out := b.ns(fmt.Sprintf("w%d", from)).Run(b.t, "ip", "neigh", "show", ip)
	f := strings.Fields(out)
	for i := range f {
		if f[i] == "lladdr" && i+1 < len(f) {
			return f[i+1]
		}
	}
	return ""
}

// wireCase is a tunnel protocol and what its frames on the wire must show:
// tshark's fields of each frame that filter captures, checked by check.
type wireCase struct {
	proto  string
	id     []string
	filter string
	fields []string
	check  func(t *testing.T, row []string)
}

// udpWireCase is the case of a UDP tunnel (GENEVE, VXLAN; name as tshark
// and messages say it) with VNI vni on port dport: the outer source is
// node 1's or 2's, the IPv4 checksum good, the source port in the kernel's
// range.
func udpWireCase(proto, name string, vni int, dport string) wireCase {
	return wireCase{proto, []string{"--vni", strconv.Itoa(vni)}, "udp port " + dport,
		[]string{"ip.src", "udp.srcport", "udp.dstport", strings.ToLower(name) + ".vni", "ip.checksum.status", "_ws.malformed"},
		func(t *testing.T, r []string) {
			if !strings.HasPrefix(r[0], "192.168.1.") || r[2] != dport || !vniIs(r[3], vni) || !strings.HasPrefix(r[4], "1") || r[5] != "" {
				t.Errorf("%s frame on the wire: %v", name, r)
			}
			checkSourcePort(t, r[1])
		}}
}

func TestTunnelsEndToEnd(t *testing.T) {
	for _, tc := range []wireCase{
		udpWireCase("geneve", "GENEVE", 5001, "6081"),
		udpWireCase("vxlan", "VXLAN", 5002, "4789"),
		{"vlan", []string{"--vlan-id", "300"}, "vlan 300",
			[]string{"vlan.id", "vlan.priority", "vlan.etype", "ip.src", "_ws.malformed"},
			func(t *testing.T, r []string) {
				etype, _ := strconv.ParseUint(r[2], 0, 16)
				inner := (etype == 0x0800 && strings.HasPrefix(r[3], "10.0.0.")) || etype == 0x0806
				if r[0] != "300" || r[1] != "0" || !inner || r[4] != "" {
					t.Errorf("802.1Q frame on the wire: %v", r)
				}
			}},
	} {
		t.Run(tc.proto, func(t *testing.T) {
			b := newBed(t)
			b.TunmuxNode(1, tc.proto, tc.id...)
			b.TunmuxNode(2, tc.proto, tc.id...)
			done := b.capture(tc.filter, 6, tc.fields...)
			b.ping(1, "10.0.0.2")
			for _, row := range done() {
				tc.check(t, row)
			}
			// ARP crossed the tunnel: the real peer answered.
			if mac := b.neighbour(1, "10.0.0.2"); mac != "02:00:00:00:02:02" {
				t.Errorf("w1 resolved 10.0.0.2 to %q, want w2's 02:00:00:00:02:02", mac)
			}
			b.ping(2, "10.0.0.1")
			b.tcp(1)
			b.tcp(2)
			for n := 1; n <= 2; n++ {
				if b.Counter(n, "encap", tc.proto) == 0 || b.Counter(n, "decap", tc.proto) == 0 {
					t.Errorf("node %d counted no %s encap or decap", n, tc.proto)
				}
			}
			// The export contract: each node's state goes through a file,
			// unload --all and apply, and traffic flows again.
			for n := 1; n <= 2; n++ {
				testnet.Restore(t, bin, b.Args(n), nil)
			}
			b.ping(1, "10.0.0.2")
			b.tcp(2)
		})
	}
}

// TestRestoreAfterReboot saves both nodes' state with export -f, then does
// what a reboot does: empty bpffs roots, every namespace and interface made
// anew. Applying the saved files, and nothing else, makes traffic flow.
func TestRestoreAfterReboot(t *testing.T) {
	b := newBed(t)
	b.WorkloadMTU(1400)
	b.TunmuxNodeWith(1, testnet.Node{Proto: "geneve", IDArgs: []string{"--vni", "77", "--geneve-opt", "0102:03:c0ffee00"}, Inner: []int{4, 6}})
	b.TunmuxNodeWith(2, testnet.Node{Proto: "geneve", IDArgs: []string{"--vni", "77", "--geneve-opt", "0102:03:c0ffee00"}, Inner: []int{4, 6}})
	b.ping(1, "10.0.0.2")
	files := [3]string{}
	exported := [3]string{}
	for n := 1; n <= 2; n++ {
		files[n] = filepath.Join(t.TempDir(), "state.yaml")
		b.Tunmux(n, "export", "-f", files[n])
		data, err := os.ReadFile(files[n])
		if err != nil {
			t.Fatal(err)
		}
		exported[n] = string(data)
	}
	// The reboot: pins and interfaces are gone, then the interfaces (and the
	// namespaces holding them) come back with new indexes.
	for n := 1; n <= 2; n++ {
		b.Tunmux(n, "unload", "--all")
	}
	b.Rebuild()
	b.WorkloadMTU(1400) // room for the GENEVE option (the testbed's own setting)
	for n := 1; n <= 2; n++ {
		b.Tunmux(n, "apply", "-f", files[n])
		if got := b.Tunmux(n, "export").Stdout; got != exported[n] {
			t.Errorf("node %d: export after the restore differs:\n--- saved\n%s\n--- now\n%s", n, exported[n], got)
		}
	}
	b.ping(1, "10.0.0.2")
	b.ping(2, "10.0.0.1")
	pingUntil(t, b.ns("w1"), "fd00::2")
	b.tcp(1)
}

func TestInteropWithKernelVXLAN(t *testing.T) {
	b := newBed(t)
	b.TunmuxNode(1, "vxlan", "--vni", "4242")
	b.KernelVXLANNode(2, 4242)
	done := b.capture("udp port 4789", 6, "ip.src", "ip.dst", "vxlan.vni", "ip.checksum.status", "_ws.malformed")
	b.ping(1, "10.0.0.2")
	rows := done()
	from := map[string]bool{}
	for _, r := range rows {
		if !vniIs(r[2], 4242) || r[4] != "" {
			t.Errorf("VXLAN frame on the wire: %v", r)
		}
		from[strings.Split(r[0], ",")[0]] = true
	}
	if !from["192.168.1.1"] || !from["192.168.1.2"] {
		t.Errorf("want frames from tunmux (192.168.1.1) and the kernel's vxlan (192.168.1.2), saw %v", from)
	}
	b.ping(2, "10.0.0.1")
	b.tcp(1)
	b.tcp(2)
	if b.Counter(1, "decap", "vxlan") == 0 {
		t.Errorf("tunmux decapsulated nothing from the kernel's vxlan")
	}
}

func vniIs(field string, want int) bool {
	n, err := strconv.ParseUint(strings.Split(field, ",")[0], 0, 32)
	return err == nil && int(n) == want
}

// checkSourcePort checks a per-flow source port in the kernel vxlan's range.
func checkSourcePort(t *testing.T, field string) {
	p, err := strconv.Atoi(field)
	if err != nil || p < 32768 || p >= 61000 {
		t.Errorf("outer UDP source port %q, want a per-flow port in 32768..60999", field)
	}
}
