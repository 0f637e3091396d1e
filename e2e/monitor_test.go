package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tunmux/tunmux/internal/testnet"
)

// event is one line of tunmux monitor -o json.
type event struct {
	Dataplane, Program, Netns, Interface, Outcome, Action, Target, Key string
	Length, Suppressed                                                 uint32
}

// monitoring is a `tunmux monitor -o json` running in the background.
type monitoring struct {
	t      *testing.T
	cmd    *exec.Cmd
	events chan event
	stderr *syncBuffer
}

// stop ends the monitor as Ctrl-C does and requires it to exit 0.
func (m *monitoring) stop() {
	m.t.Helper()
	_ = m.cmd.Process.Signal(syscall.SIGINT)
	for range m.events { // drain until its output closes
	}
	if err := m.cmd.Wait(); err != nil {
		m.t.Errorf("tunmux monitor after SIGINT: %v\n%s", err, m.stderr.String())
	}
}

// startMonitor runs `tunmux GLOBALS -o json monitor FLAGS` and returns
// once it says it is monitoring.
func startMonitor(t *testing.T, globals []string, flags ...string) *monitoring {
	t.Helper()
	m := &monitoring{t: t, events: make(chan event, 256), stderr: &syncBuffer{}}
	args := append(append(append([]string{}, globals...), "-o", "json", "monitor", "--timeout", "2m"), flags...)
	cmd := exec.Command(bin, args...)
	cmd.Stderr = m.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	m.cmd = cmd
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var e event
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				e.Outcome = "unparsed: " + sc.Text()
			}
			m.events <- e
		}
		close(m.events)
	}()
	testnet.WaitFor(t, 20*time.Second, "tunmux monitor to start", func() bool {
		if strings.Contains(m.stderr.String(), "tunmux: ") && !strings.Contains(m.stderr.String(), "monitoring") {
			t.Fatalf("tunmux %s:\n%s", strings.Join(args, " "), m.stderr.String())
		}
		return strings.Contains(m.stderr.String(), "monitoring")
	})
	return m
}

// await returns the first event with outcome, while more pings are sent by
// traffic (called once a second until it comes).
func (m *monitoring) await(outcome string, traffic func()) event {
	m.t.Helper()
	deadline := time.After(30 * time.Second)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	go traffic()
	var seen []string
	for {
		select {
		case e, ok := <-m.events:
			if !ok {
				m.t.Fatalf("monitor ended before a %s event; saw %v\n%s", outcome, seen, m.stderr.String())
			}
			if e.Outcome == outcome {
				return e
			}
			seen = append(seen, e.Program+"/"+e.Outcome)
		case <-tick.C:
			go traffic()
		case <-deadline:
			m.t.Fatalf("no %s event in 30 s; saw %v\n%s", outcome, seen, m.stderr.String())
		}
	}
}

// TestMonitorNamesWhyFramesDrop: monitor --drops reports, with its reason
// and the entry's key, a frame dropped by the MTU rule (XDP encap), one
// passed because its l2tp cookie is wrong, and one passed because every
// nexthop of its route is down.
func TestMonitorNamesWhyFramesDrop(t *testing.T) {
	testnet.RequireRoot(t)
	t.Run("mtu", func(t *testing.T) {
		b := newBed(t)
		for n := 1; n <= 2; n++ {
			b.TunmuxNode(n, "geneve", "--vni", "5001")
		}
		b.ping(1, "10.0.0.2")
		// w1 sends more than the tunnel carries (1450 bytes of IP).
		b.ns("w1").Run(t, "ip", "link", "set", "eth0", "mtu", "1500")
		m := startMonitor(t, b.Args(1), "--drops")
		e := m.await("drop_too_big", func() { _, _ = b.ns("w1").Try("ping", "-c", "1", "-W", "1", "-M", "do", "-s", "1460", "10.0.0.2") })
		if e.Dataplane != "encap" || e.Program != "encap" || e.Interface != "wl0" || e.Action != "drop" || e.Key != "10.0.0.1->10.0.0.2" || e.Length != 1502 {
			t.Errorf("drop_too_big event: %+v", e)
		}
	})
	t.Run("l2tp-cookie", func(t *testing.T) {
		// Node 1 expects (--peer-cookie) a cookie node 2 does not send.
		ns, nodes := l2tpLCCEs(t, func(n int) []string {
			return []string{"--cookie", fmt.Sprintf("c00c1e0%d", n), "--peer-cookie", map[int]string{1: "deadbeef", 2: "c00c1e01"}[n]}
		})
		// The LCCEs know each other's MAC (l2tp_encap sends a non-IP frame,
		// the hosts' ARP, only to a known neighbour).
		ns("l1").Run(t, "ping", "-c", "1", "-W", "2", "172.16.0.2")
		m := startMonitor(t, nodes[1], "--drops", "--dataplane", "l2tp")
		a := ns("a")
		e := m.await("pass_bad_cookie", func() { _, _ = a.Try("ping", "-c", "1", "-W", "1", "10.1.0.2") })
		if e.Program != "l2tp_decap" || e.Interface != "tun0" || e.Action != "next" || e.Key != "session 101" {
			t.Errorf("pass_bad_cookie event: %+v", e)
		}
	})
	t.Run("route-peers-down", func(t *testing.T) {
		nodes := routeNodes(t, 2, true)
		c, r1 := nodes[0], nodes[1]
		c.ns.Run(t, "ip", "addr", "add", "10.100.0.1/32", "dev", "vxlan0")
		c.ns.Run(t, "ip", "route", "add", "10.200.0.0/24", "dev", "rt0", "src", "10.100.0.1")
		c.tm("route", "add", "10.200.0.0/24", "--nexthop", r1.v4()+",vni=100")
		r1.ns.Run(t, "ip", "addr", "add", "10.200.0.1/32", "dev", "vxlan0")
		r1.ns.Run(t, "ip", "route", "add", "10.100.0.0/24", "dev", "rt0", "src", "10.200.0.1")
		r1.tm("route", "add", "10.100.0.0/24", "--nexthop", c.v4()+",vni=100")
		pingUntil(t, c.ns, "10.200.0.1")
		ping := func() { _, _ = c.ns.Try("ping", "-c", "1", "-W", "1", "10.200.0.1") }
		// Without --drops, a tunnelled frame's key names the nexthop taken.
		node := []string{"--bpffs", c.root, "--netns", c.ns.Name}
		m := startMonitor(t, node)
		e := m.await("tunnelled", ping)
		// rt0 is a TUN device: the route program's L3 build runs there.
		if e.Program != "route_egress_l3" || !strings.HasPrefix(e.Key, "10.200.0.0/24 via "+r1.v4()) || e.Target != "vxlan0" {
			t.Errorf("tunnelled event: %+v", e)
		}
		m.stop()
		c.tm("peer", "set", r1.v4(), "--health", "down")
		m = startMonitor(t, node, "--drops")
		e = m.await("pass_no_healthy", ping)
		if e.Program != "route_egress_l3" || e.Interface != "rt0" || e.Key != "10.200.0.0/24" {
			t.Errorf("pass_no_healthy event: %+v", e)
		}
	})
}
