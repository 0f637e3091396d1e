package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tunmux/tunmux/internal/testnet"
)

// routeNode is one node of the route tests: a namespace on the underlay
// bridge (e0: 192.168.60.N/24, fd60::N/64) with its own bpffs root.
type routeNode struct {
	t    *testing.T
	ns   *testnet.Netns
	root string
	n    int
}

func (r routeNode) tm(args ...string) testnet.Result {
	r.t.Helper()
	return testnet.MustTunmux(r.t, bin, append([]string{"--bpffs", r.root, "--netns", r.ns.Name}, args...)...)
}

func (r routeNode) v4() string { return fmt.Sprintf("192.168.60.%d", r.n) }
func (r routeNode) v6() string { return fmt.Sprintf("fd60::%d", r.n) }

// mac is the MAC its vxlan0 has by the rule, from its IPv4 address.
func (r routeNode) mac() string { return fmt.Sprintf("02:c0:a8:3c:%02x:ff", r.n) }

// routeNodes builds an underlay bridge and count nodes on it, each with
// tunmux route loaded, vxlan0 (flow-based, MAC from its IPv4 address) and,
// if routesDev, rt0 with the route program: exactly the steps of
// docs/route.md.
func routeNodes(t *testing.T, count int, routesDev bool) []routeNode {
	testnet.RequireRoot(t)
	w := testnet.NewNetns(t, "rtw")
	w.Run(t, "ip", "link", "add", "br0", "type", "bridge")
	w.Run(t, "ip", "link", "set", "br0", "up")
	var nodes []routeNode
	for i := 1; i <= count; i++ {
		r := routeNode{t: t, ns: testnet.NewNetns(t, fmt.Sprintf("rt%d", i)), n: i}
		port := fmt.Sprintf("p%d", i)
		testnet.Veth(t, r.ns, "e0", w, port)
		w.Run(t, "ip", "link", "set", port, "master", "br0", "up")
		r.ns.Run(t, "ip", "addr", "add", r.v4()+"/24", "dev", "e0")
		r.ns.Run(t, "ip", "addr", "add", r.v6()+"/64", "dev", "e0", "nodad")
		// Replies arrive on vxlan0 while routes point at rt0.
		r.ns.Run(t, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0")
		r.root = testnet.BPFRoot(t, func(root string) { testnet.Tunmux(bin, "--bpffs", root, "unload", "route") })
		r.tm("load", "route")
		r.tm("route", "dev", "create", "vxlan0", "--proto", "vxlan", "--local", r.v4())
		if routesDev {
			r.tm("route", "dev", "create", "rt0", "--routes")
			r.tm("attach", "route", "rt0")
		}
		nodes = append(nodes, r)
	}
	return nodes
}

// serveName answers every TCP connection to addr:7000 in r's namespace
// with the node's name, until the test ends.
func serveName(t *testing.T, r routeNode, addr string) {
	answerEach(t, r.ns, net.JoinHostPort(addr, "7000"), fmt.Sprintf("rt%d", r.n))
}

// answerEach answers every TCP connection to addr in ns with text, until
// the test ends.
func answerEach(t *testing.T, ns *testnet.Netns, addr, text string) {
	ln := inNetns(t, ns, func() (net.Listener, error) { return net.Listen("tcp", addr) })
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, text)
			c.Close()
		}
	}()
}

// whoServes opens n connections (n flows: new source ports) from c to
// addr:7000 and counts the answers by node name.
func whoServes(t *testing.T, c routeNode, addr string, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for _, name := range servedBy(t, c, addr, n) {
		got[name]++
	}
	return got
}

// servedBy opens n connections from c to addr:7000 and returns, by source
// port, the name of the node that answered.
func servedBy(t *testing.T, c routeNode, addr string, n int) map[int]string {
	t.Helper()
	got := map[int]string{}
	c.ns.Do(t, func() error {
		for i := 0; i < n; i++ {
			conn, err := net.DialTimeout("tcp", net.JoinHostPort(addr, "7000"), 5*time.Second)
			if err != nil {
				return fmt.Errorf("flow %d to %s: %w", i, addr, err)
			}
			_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
			b, err := io.ReadAll(conn)
			port := conn.LocalAddr().(*net.TCPAddr).Port
			conn.Close()
			if err != nil {
				return fmt.Errorf("flow %d to %s: %w", i, addr, err)
			}
			got[port] = string(b)
		}
		return nil
	})
	return got
}

// counter reads one route outcome counter of node r.
func (r routeNode) counter(outcome string) uint64 {
	r.t.Helper()
	var rows []struct {
		Outcome string `json:"outcome"`
		Packets uint64 `json:"packets"`
	}
	if err := json.Unmarshal([]byte(r.tm("-o", "json", "stats", "route").Stdout), &rows); err != nil {
		r.t.Fatal(err)
	}
	for _, row := range rows {
		if row.Outcome == outcome {
			return row.Packets
		}
	}
	r.t.Fatalf("no counter %s", outcome)
	return 0
}

// TestRouteSpreadsFlowsAndFollowsHealth: a client and two remotes serving
// the same overlay address; flows from the client spread over both, and
// marking one down moves every new flow to the other. IPv6 overlay routes
// (over the IPv4 underlay) and an IPv4 overlay over the IPv6 underlay work.
func TestRouteSpreadsFlowsAndFollowsHealth(t *testing.T) {
	nodes := routeNodes(t, 3, true)
	c, r1, r2 := nodes[0], nodes[1], nodes[2]
	c.ns.Run(t, "ip", "addr", "add", "10.100.0.1/32", "dev", "vxlan0")
	c.ns.Run(t, "ip", "addr", "add", "fd00:100::1/128", "dev", "vxlan0", "nodad")
	c.ns.Run(t, "ip", "route", "add", "10.200.0.0/24", "dev", "rt0", "src", "10.100.0.1")
	c.ns.Run(t, "ip", "route", "add", "10.201.0.0/24", "dev", "rt0", "src", "10.100.0.1")
	c.ns.Run(t, "ip", "route", "add", "fd00:200::/64", "dev", "rt0", "src", "fd00:100::1")
	c.tm("route", "add", "10.200.0.0/24", "--nexthop", r1.v4()+",vni=100", "--nexthop", r2.v4()+",vni=100")
	c.tm("route", "add", "fd00:200::/64", "--nexthop", r1.v4()+",vni=200", "--nexthop", r2.v4()+",vni=200")
	// Over the IPv6 underlay: r1's vxlan0 MAC follows its IPv4 address, so
	// the nexthop names it.
	c.tm("route", "add", "10.201.0.0/24", "--nexthop", r1.v6()+",vni=300,mac="+r1.mac())
	for _, r := range []routeNode{r1, r2} {
		r.ns.Run(t, "ip", "addr", "add", "10.200.0.1/32", "dev", "vxlan0")
		r.ns.Run(t, "ip", "addr", "add", "fd00:200::1/128", "dev", "vxlan0", "nodad")
		r.ns.Run(t, "ip", "route", "add", "10.100.0.0/24", "dev", "rt0", "src", "10.200.0.1")
		r.ns.Run(t, "ip", "route", "add", "fd00:100::/64", "dev", "rt0", "src", "fd00:200::1")
		r.tm("route", "add", "10.100.0.0/24", "--nexthop", c.v4()+",vni=100")
		r.tm("route", "add", "fd00:100::/64", "--nexthop", c.v4()+",vni=200")
		serveName(t, r, "10.200.0.1")
		serveName(t, r, "fd00:200::1")
	}
	r1.ns.Run(t, "ip", "addr", "add", "10.201.0.1/32", "dev", "vxlan0")
	serveName(t, r1, "10.201.0.1")

	pingUntil(t, c.ns, "10.200.0.1")
	for _, addr := range []string{"10.200.0.1", "fd00:200::1"} {
		got := whoServes(t, c, addr, 64)
		if got["rt2"] == 0 || got["rt3"] == 0 || got["rt2"]+got["rt3"] != 64 {
			t.Errorf("64 flows to %s: %v, want both remotes", addr, got)
		}
		t.Logf("64 flows to %s: %v", addr, got)
	}
	// route get --from says, for each flow, which remote answers it.
	names := map[string]string{r1.v4(): "rt2", r2.v4(): "rt3"}
	for _, src := range []string{"10.100.0.1", "fd00:100::1"} {
		dst := "10.200.0.1"
		if strings.Contains(src, ":") {
			dst = "fd00:200::1"
		}
		for port, who := range servedBy(t, c, dst, 8) {
			var got struct {
				Nexthops []struct{ Remote string } `json:"nexthops"`
				Flow     *int                      `json:"flow_nexthop"`
			}
			out := c.tm("-o", "json", "route", "get", dst, "--from", src, "--ip-proto", "tcp", "--sport", fmt.Sprint(port), "--dport", "7000").Stdout
			if err := json.Unmarshal([]byte(out), &got); err != nil || got.Flow == nil {
				t.Fatalf("route get --from: %v\n%s", err, out)
			}
			if said := names[got.Nexthops[*got.Flow].Remote]; said != who {
				t.Errorf("flow %s:%d -> %s:7000: route get says %s, %s answered", src, port, dst, said, who)
			}
		}
	}
	pingUntil(t, c.ns, "fd00:200::1")
	pingUntil(t, c.ns, "10.201.0.1")
	tcpTransfer(t, c.ns, r1.ns, "10.201.0.1") // 10.201.0.0/24 has one nexthop: r1
	if got := whoServes(t, c, "10.201.0.1", 4); got["rt2"] != 4 {
		t.Errorf("IPv4 over the IPv6 underlay: %v", got)
	}

	// r2 down: every new flow goes to r1; its packets are counted tunnelled.
	c.tm("peer", "set", r2.v4(), "--health", "down")
	for _, addr := range []string{"10.200.0.1", "fd00:200::1"} {
		if got := whoServes(t, c, addr, 32); got["rt2"] != 32 {
			t.Errorf("32 flows to %s with rt3 down: %v, want all on rt2", addr, got)
		}
	}
	// Both down: the route passes packets on into rt0, which drops them.
	c.tm("peer", "set", r1.v4(), "--health", "down")
	before := c.counter("pass_no_healthy")
	if _, err := c.ns.Try("ping", "-c", "2", "-W", "1", "10.200.0.1"); err == nil {
		t.Errorf("a ping crossed a route with every nexthop down")
	}
	if after := c.counter("pass_no_healthy"); after < before+2 {
		t.Errorf("pass_no_healthy moved %d, want 2", after-before)
	}
	// Back up: both remotes serve again.
	c.tm("peer", "set", r1.v4(), "--health", "up")
	c.tm("peer", "set", r2.v4(), "--health", "up")
	if got := whoServes(t, c, "10.200.0.1", 64); got["rt2"] == 0 || got["rt3"] == 0 {
		t.Errorf("after both came back: %v", got)
	}

	// The export contract: every node's state (devices with their addresses
	// and the kernel routes through rt0 among it) goes through a file,
	// unload --all (which deletes vxlan0 and rt0) and apply; flows spread
	// over both remotes again.
	for _, r := range nodes {
		testnet.Restore(t, bin, []string{"--bpffs", r.root, "--netns", r.ns.Name}, nil)
	}
	for _, addr := range []string{"10.200.0.1", "fd00:200::1"} {
		if got := whoServes(t, c, addr, 64); got["rt2"] == 0 || got["rt3"] == 0 {
			t.Errorf("64 flows to %s after the restore: %v, want both remotes", addr, got)
		}
	}
	tcpTransfer(t, c.ns, r1.ns, "10.201.0.1")
}

// TestRouteOnUnderlayEgress: the program on the underlay's egress, the
// seed's own placement. Overlay traffic the kernel routes out of e0 (via a
// gateway) is tunnelled; with the peer down it goes on as the kernel routed
// it, here straight to the gateway.
func TestRouteOnUnderlayEgress(t *testing.T) {
	nodes := routeNodes(t, 2, false)
	c, r1 := nodes[0], nodes[1]
	c.tm("attach", "route", "e0")
	c.ns.Run(t, "ip", "addr", "add", "10.100.0.1/32", "dev", "vxlan0")
	c.ns.Run(t, "ip", "route", "add", "10.200.0.0/24", "via", r1.v4(), "dev", "e0", "src", "10.100.0.1")
	c.tm("route", "add", "10.200.0.0/24", "--nexthop", r1.v4()+",vni=100,weight=2")
	r1.ns.Run(t, "ip", "addr", "add", "10.200.0.1/32", "dev", "vxlan0")
	r1.ns.Run(t, "ip", "route", "add", "10.100.0.0/24", "via", c.v4(), "dev", "e0")
	r1.tm("attach", "route", "e0")
	r1.tm("route", "add", "10.100.0.0/24", "--nexthop", c.v4()+",vni=100")

	rxOnVXLAN := func() uint64 {
		var links []struct {
			Stats struct {
				RX struct{ Packets uint64 } `json:"rx"`
			} `json:"stats64"`
		}
		if err := json.Unmarshal([]byte(r1.ns.Run(t, "ip", "-j", "-s", "link", "show", "vxlan0")), &links); err != nil || len(links) != 1 {
			t.Fatalf("ip -j -s link show vxlan0: %v", err)
		}
		return links[0].Stats.RX.Packets
	}
	before, rx := c.counter("tunnelled"), rxOnVXLAN()
	pingUntil(t, c.ns, "10.200.0.1")
	tcpTransfer(t, c.ns, r1.ns, "10.200.0.1")
	if c.counter("tunnelled") < before+6 || rxOnVXLAN() < rx+6 {
		t.Errorf("overlay traffic was not tunnelled: counter %d -> %d, rx on r1's vxlan0 %d -> %d", before, c.counter("tunnelled"), rx, rxOnVXLAN())
	}
	// The underlay's own traffic (and the tunnel's) passes as no route.
	if c.counter("pass_no_route") == 0 {
		t.Errorf("no underlay packet counted as no route")
	}

	c.tm("peer", "set", r1.v4(), "--health", "down")
	passed, rx := c.counter("pass_no_healthy"), rxOnVXLAN()
	// Kernel-routed now: the gateway r1 holds 10.200.0.1 and answers.
	pingUntil(t, c.ns, "10.200.0.1")
	if c.counter("pass_no_healthy") < passed+6 {
		t.Errorf("pass_no_healthy did not count the kernel-routed pings")
	}
	if got := rxOnVXLAN(); got != rx {
		t.Errorf("r1's vxlan0 received %d packets with the peer down", got-rx)
	}
}
