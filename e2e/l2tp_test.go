package e2e

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tunmux/tunmux/internal/testnet"
)

// TestL2TPPseudowire runs the seed's four-namespace chain (host A - LCCE 1 -
// LCCE 2 - host B) for every underlay family and encapsulation: the hosts,
// configured only as docs/l2tp.md tells users (MTU, and offloads over IP),
// ping each other over IPv4 and IPv6 with ARP and ND resolved across the
// pseudowire, and move 8 MiB over TCP both ways.
func TestL2TPPseudowire(t *testing.T) {
	testnet.RequireRoot(t)
	for _, c := range []struct {
		family int
		encap  string
	}{{4, "udp"}, {4, "ip"}, {6, "udp"}, {6, "ip"}} {
		t.Run(fmt.Sprintf("ipv%d-%s", c.family, c.encap), func(t *testing.T) {
			prefix := testnet.Unique("tmxl") + "-"
			script := filepath.Join(testnet.TopDir(), "scripts", "testbed.sh")
			t.Cleanup(func() { testnet.Run(t, "bash", script, "down", prefix) })
			testnet.Run(t, "bash", script, "l2tp-up", prefix)
			ns := func(n string) *testnet.Netns { return &testnet.Netns{Name: prefix + n} }
			under := map[int][2]string{4: {"172.16.0.1", "172.16.0.2"}, 6: {"fd00::1", "fd00::2"}}[c.family]
			var overhead int
			var nodes [3][]string
			for n := 1; n <= 2; n++ {
				root := testnet.BPFRoot(t, func(root string) { testnet.Tunmux(bin, "--bpffs", root, "unload", "l2tp") })
				nodes[n] = []string{"--bpffs", root, "--netns", fmt.Sprintf("%sl%d", prefix, n)}
				tm := func(args ...string) testnet.Result {
					return testnet.MustTunmux(t, bin, append(nodes[n], args...)...)
				}
				tm("load", "l2tp")
				tm("attach", "l2tp-encap", "eth1")
				tm("attach", "l2tp-decap", "tun0")
				r := tm("-o", "json", "l2tp", "session", "add", "--session-id", fmt.Sprint(100+n), "--peer-session-id", fmt.Sprint(100+3-n),
					"--encap", c.encap, "--local", under[n-1], "--peer", under[2-n],
					"--cookie", fmt.Sprintf("c00c1e0%d", n), "--peer-cookie", fmt.Sprintf("c00c1e0%d", 3-n),
					"--eth-iface", "eth1", "--tunnel-iface", "tun0")
				// The hosts' MTU is set below, from the overhead this prints:
				// until then, the MTU warning is right; nothing else may warn.
				for _, w := range strings.Split(strings.TrimSpace(r.Stderr), "\n") {
					if strings.Contains(w, "warning") && !strings.Contains(w, "set that MTU to") {
						t.Errorf("session add warned: %s", w)
					}
				}
				var s struct{ Overhead int }
				if err := json.Unmarshal([]byte(r.Stdout), &s); err != nil {
					t.Fatal(err)
				}
				overhead = s.Overhead
			}
			// The hosts, as docs/l2tp.md says: MTU = tunnel MTU - 14 - overhead,
			// and over IP (no segmenter) no TSO/GSO.
			mtu := fmt.Sprint(1500 - 14 - overhead)
			for _, h := range []string{"a", "b"} {
				ns(h).Run(t, "ip", "link", "set", "eth0", "mtu", mtu)
				if c.encap == "ip" {
					ns(h).Run(t, "ethtool", "-K", "eth0", "tso", "off", "gso", "off")
				}
			}
			pingUntil(t, ns("a"), "10.1.0.2")
			pingUntil(t, ns("b"), "10.1.0.1")
			pingUntil(t, ns("a"), "fd01::2")
			pingUntil(t, ns("b"), "fd01::1")
			for _, ip := range []string{"10.1.0.2", "fd01::2"} {
				if out := ns("a").Run(t, "ip", "neigh", "show", ip); !strings.Contains(out, "02:00:00:00:0b:02") {
					t.Errorf("host A resolved %s to %q, want host B's 02:00:00:00:0b:02", ip, out)
				}
			}
			tcpTransfer(t, ns("a"), ns("b"), "10.1.0.2")
			tcpTransfer(t, ns("b"), ns("a"), "10.1.0.1")
			tcpTransfer(t, ns("a"), ns("b"), "fd01::2")
			// The export contract: both LCCEs' state goes through a file,
			// unload --all and apply, and the pseudowire carries again.
			for n := 1; n <= 2; n++ {
				testnet.Restore(t, bin, nodes[n], nil)
			}
			pingUntil(t, ns("a"), "10.1.0.2")
			pingUntil(t, ns("b"), "fd01::1")
			tcpTransfer(t, ns("a"), ns("b"), "10.1.0.2")
		})
	}
}
