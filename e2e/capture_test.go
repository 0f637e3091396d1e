package e2e

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tunmux/tunmux/internal/testnet"
)

// capturing is a `tunmux capture` running in the background.
type capturing struct {
	t      *testing.T
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan error
	file   string
}

// startCapture runs `tunmux ARGS capture ... -w FILE` and returns once it
// says it is capturing (its links run the observed programs).
func startCapture(t *testing.T, args ...string) *capturing {
	t.Helper()
	c := &capturing{t: t, stderr: &syncBuffer{}, done: make(chan error, 1), file: filepath.Join(t.TempDir(), "capture.pcapng")}
	c.cmd = exec.Command(bin, append(args, "-w", c.file)...)
	c.cmd.Stderr = c.stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.done <- c.cmd.Wait() }()
	t.Cleanup(func() { _ = c.cmd.Process.Kill() })
	testnet.WaitFor(t, 20*time.Second, "tunmux capture to start", func() bool {
		select {
		case err := <-c.done:
			t.Fatalf("tunmux capture ended: %v\n%s", err, c.stderr.String())
		default:
		}
		return strings.Contains(c.stderr.String(), "capturing")
	})
	return c
}

// wait waits for the capture to end by itself (-c) and returns tshark's
// fields of each frame of the file, checking IPv4 checksums.
func (c *capturing) wait(fields ...string) [][]string {
	c.t.Helper()
	return c.waitDecoded(nil, fields...)
}

// waitDecoded is wait with tshark options (preferences, decode-as).
func (c *capturing) waitDecoded(options []string, fields ...string) [][]string {
	c.t.Helper()
	select {
	case err := <-c.done:
		if err != nil {
			c.t.Fatalf("tunmux capture: %v\n%s", err, c.stderr.String())
		}
	case <-time.After(60 * time.Second):
		c.t.Fatalf("tunmux capture wrote too few frames in 60 s:\n%s", c.stderr.String())
	}
	args := append([]string{"-r", c.file, "-o", "ip.check_checksum:TRUE", "-T", "fields", "-E", "separator=|"}, options...)
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	out, err := exec.Command("tshark", args...).CombinedOutput()
	if err != nil {
		c.t.Fatalf("tshark -r %s: %v\n%s", c.file, err, out)
	}
	var rows [][]string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.HasPrefix(line, "Running as user") {
			continue
		}
		rows = append(rows, strings.Split(line, "|"))
	}
	return rows
}

// rowsWith returns the rows whose first field (the comment) starts with
// prefix and whose field icmp (tshark's icmp.type) is set: the pings'
// frames, not an ARP refresh that may cross at the same time.
func rowsWith(rows [][]string, prefix string, icmp int) [][]string {
	var out [][]string
	for _, r := range rows {
		if strings.HasPrefix(r[0], prefix) && len(r) > icmp && r[icmp] != "" {
			out = append(out, r)
		}
	}
	return out
}

// requireRunsPinned requires every link of the root to run its pinned
// program again, as status reports them (status fails on a split).
func requireRunsPinned(t *testing.T, args ...string) {
	t.Helper()
	r := testnet.MustTunmux(t, bin, append(args, "status")...)
	if strings.Contains(r.Stdout, "observed") {
		t.Errorf("a link still runs an observed program after the capture:\n%s", r.Stdout)
	}
}

// TestCaptureSeesWhatTcpdumpCannot captures, on an XDP-hook and a TC-hook
// GENEVE tunnel, the inner frame at encap's entry and the GENEVE frame at
// its exit (XDP redirects it past every tap), and tshark decodes both with
// no malformed field; the links run the plain programs again afterwards.
func TestCaptureSeesWhatTcpdumpCannot(t *testing.T) {
	for _, hook := range []string{"xdp", "tc"} {
		t.Run(hook, func(t *testing.T) {
			b := newBed(t)
			for n := 1; n <= 2; n++ {
				b.TunmuxNodeWith(n, testnet.Node{Proto: "geneve", IDArgs: []string{"--vni", "5001"}, Hook: hook})
			}
			b.ping(1, "10.0.0.2") // ARP resolved: what follows is ICMP
			c := startCapture(t, append(b.Args(1), "capture", "wl0", "-c", "4", "--tunnel", "10.0.0.1-10.0.0.2")...)
			// Commands go on while it runs; status says what is observed.
			st := b.Tunmux(1, "status")
			if !strings.Contains(st.Stdout, "observed") {
				t.Errorf("status during the capture does not say the link is observed:\n%s", st.Stdout)
			}
			b.Tunmux(1, "tunnel", "update", "--inner-src", "10.0.0.1", "--inner-dst", "10.0.0.2", "--vni", "5001")
			b.ns("w1").Run(t, "ping", "-c", "3", "-i", "0.2", "10.0.0.2")
			rows := c.wait("frame.comment", "frame.interface_name", "ip.src", "ip.dst", "geneve.vni", "icmp.type", "ip.checksum.status", "_ws.malformed")
			prog := map[string]string{"xdp": "encap", "tc": "encap_tc"}[hook]
			entry, exit := rowsWith(rows, prog+" entry", 5), rowsWith(rows, prog+" exit", 5)
			if len(entry) == 0 || len(exit) == 0 {
				t.Fatalf("want frames at entry and exit of %s, got:\n%v", prog, rows)
			}
			for _, r := range entry {
				if r[2] != "10.0.0.1" || r[3] != "10.0.0.2" || r[4] != "" || r[7] != "" {
					t.Errorf("entry frame: %v", r)
				}
			}
			for _, r := range exit {
				// Outer then inner addresses; the GENEVE VNI; sums good.
				if !strings.Contains(r[0], "redirect->ul0 geneve") || r[2] != "192.168.1.1,10.0.0.1" || r[3] != "192.168.1.2,10.0.0.2" ||
					!vniIs(r[4], 5001) || !strings.HasPrefix(r[6], "1") || r[7] != "" {
					t.Errorf("exit frame: %v", r)
				}
			}
			if !strings.Contains(c.stderr.String(), "0 records lost") {
				t.Errorf("capture summary: %s", c.stderr.String())
			}
			requireRunsPinned(t, b.Args(1)...)
			b.ping(1, "10.0.0.2")
		})
	}
}

// TestCaptureL2TPAndXconnect captures at the TC l2tp encap (the Ethernet
// frame at entry, L2TPv3 over UDP at exit) and at an XDP cross-connect
// (the frame at entry, the same frame redirected at exit).
func TestCaptureL2TPAndXconnect(t *testing.T) {
	testnet.RequireRoot(t)
	t.Run("l2tp", func(t *testing.T) {
		ns, nodes := l2tpLCCEs(t, nil)
		pingUntil(t, ns("a"), "10.1.0.2")
		c := startCapture(t, append(nodes[1], "capture", "eth1", "-c", "4")...)
		ns("a").Run(t, "ping", "-c", "3", "-i", "0.2", "10.1.0.2")
		// tshark learns a session's pseudowire type from control messages,
		// which tunmux's static sessions have none of: say it (Ethernet, no
		// cookie, the default sublayer).
		rows := c.waitDecoded([]string{"-o", "l2tp.cookie_size:None", "-o", "l2tp.l2_specific:Default L2-Specific", "-d", "l2tp.pw_type==0,eth"},
			"frame.comment", "ip.src", "ip.dst", "udp.dstport", "l2tp.sid", "icmp.type", "_ws.malformed")
		entry, exit := rowsWith(rows, "l2tp_encap entry", 5), rowsWith(rows, "l2tp_encap exit", 5)
		if len(entry) == 0 || len(exit) == 0 {
			t.Fatalf("want frames at entry and exit of l2tp_encap, got:\n%v", rows)
		}
		for _, r := range entry {
			if r[1] != "10.1.0.1" || r[2] != "10.1.0.2" || r[3] != "" || r[6] != "" {
				t.Errorf("entry frame: %v", r)
			}
		}
		for _, r := range exit {
			if !strings.Contains(r[0], "redirect->tun0") || r[1] != "172.16.0.1,10.1.0.1" || r[2] != "172.16.0.2,10.1.0.2" || r[3] != "1701" || r[4] != "0x00000066" || r[6] != "" {
				t.Errorf("exit frame: %v", r)
			}
		}
		requireRunsPinned(t, nodes[1]...)
		pingUntil(t, ns("a"), "10.1.0.2")
	})
	t.Run("xconnect", func(t *testing.T) {
		var ends [3]string
		var nss [3]*testnet.Netns
		for i := 1; i <= 2; i++ {
			nss[i], ends[i] = behindRootEnd(t, fmt.Sprintf("xcc%d", i), fmt.Sprintf("tc%d", i), fmt.Sprintf("10.9.0.%d/24", i))
		}
		root := testnet.BPFRoot(t, func(r string) { testnet.Tunmux(bin, "--bpffs", r, "unload", "xconnect") })
		testnet.MustTunmux(t, bin, "--bpffs", root, "load", "xconnect")
		testnet.MustTunmux(t, bin, "--bpffs", root, "xconnect", "add", ends[1], ends[2])
		pingUntil(t, nss[1], "10.9.0.2")
		c := startCapture(t, "--bpffs", root, "capture", "--program", "xconnect", "-c", "8")
		nss[1].Run(t, "ping", "-c", "3", "-i", "0.2", "10.9.0.2")
		rows := c.wait("frame.comment", "ip.src", "ip.dst", "icmp.type", "_ws.malformed")
		entry, exit := rowsWith(rows, "xconnect entry on "+ends[1], 3), rowsWith(rows, "xconnect exit redirect->"+ends[2], 3)
		if len(entry) == 0 || len(exit) == 0 {
			t.Fatalf("want frames at entry on %s and exit to %s, got:\n%v", ends[1], ends[2], rows)
		}
		for _, r := range append(entry, exit...) {
			if r[1] != "10.9.0.1" || r[2] != "10.9.0.2" || r[3] != "8" || r[4] != "" {
				t.Errorf("frame: %v", r)
			}
		}
		requireRunsPinned(t, "--bpffs", root)
	})
}

// TestKilledObserverIsTakenOver: a capture killed with SIGKILL cannot put
// its links back; they keep running the observed build (traffic flows,
// status says observed), and the next capture takes them over and puts
// the plain programs back when it ends. A monitor rate-limits its events
// and says how many it left out.
func TestKilledObserverIsTakenOver(t *testing.T) {
	b := newBed(t)
	for n := 1; n <= 2; n++ {
		b.TunmuxNode(n, "vxlan", "--vni", "6400")
	}
	b.ping(1, "10.0.0.2")
	c := startCapture(t, append(b.Args(1), "capture", "wl0")...)
	if err := c.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-c.done
	if st := b.Tunmux(1, "status"); !strings.Contains(st.Stdout, "observed") {
		t.Errorf("status after the capture was killed:\n%s", st.Stdout)
	}
	b.ping(1, "10.0.0.2")
	again := startCapture(t, append(b.Args(1), "capture", "wl0", "-c", "2")...)
	b.ns("w1").Run(t, "ping", "-c", "2", "-i", "0.2", "10.0.0.2")
	if rows := again.wait("frame.comment"); len(rows) < 2 {
		t.Errorf("the second capture: %v", rows)
	}
	requireRunsPinned(t, b.Args(1)...)

	// Rate limit: 5 events a second per CPU against ~200 frames a second.
	m := startMonitor(t, b.Args(1), "--rate", "5")
	flood := func() { _, _ = b.ns("w1").Try("ping", "-c", "100", "-i", "0.005", "10.0.0.2") }
	deadline := time.Now().Add(30 * time.Second)
	go flood()
	for left := 0; left == 0; {
		select {
		case e, ok := <-m.events:
			if !ok {
				t.Fatalf("monitor ended:\n%s", m.stderr.String())
			}
			left = int(e.Suppressed)
		case <-time.After(time.Second):
			go flood()
		}
		if time.Now().After(deadline) {
			t.Fatalf("no event said it followed left-out ones in 30 s")
		}
	}
	m.stop()
	if !regexp.MustCompile(`[1-9][0-9]* left out by the rate limit`).MatchString(m.stderr.String()) {
		t.Errorf("monitor's summary: %s", m.stderr.String())
	}
}

// l2tpLCCEs brings up the l2tp testbed (hosts a and b, LCCEs l1 and l2)
// with both LCCEs tunmux endpoints of one UDP session over IPv4 (ids 101
// and 102), each given the extra session flags extra returns for it (nil:
// none). It returns the namespaces by short name and each node's global
// flags.
func l2tpLCCEs(t *testing.T, extra func(n int) []string) (func(string) *testnet.Netns, [3][]string) {
	t.Helper()
	prefix := testnet.Unique("tmxc") + "-"
	script := filepath.Join(testnet.TopDir(), "scripts", "testbed.sh")
	t.Cleanup(func() { testnet.Run(t, "bash", script, "down", prefix) })
	testnet.Run(t, "bash", script, "l2tp-up", prefix)
	var nodes [3][]string
	for n := 1; n <= 2; n++ {
		root := testnet.BPFRoot(t, func(root string) { testnet.Tunmux(bin, "--bpffs", root, "unload", "l2tp") })
		nodes[n] = []string{"--bpffs", root, "--netns", fmt.Sprintf("%sl%d", prefix, n)}
		tm := func(args ...string) { testnet.MustTunmux(t, bin, append(nodes[n], args...)...) }
		tm("load", "l2tp")
		tm("attach", "l2tp-encap", "eth1")
		tm("attach", "l2tp-decap", "tun0")
		args := []string{"l2tp", "session", "add", "--session-id", fmt.Sprint(100 + n), "--peer-session-id", fmt.Sprint(100 + 3 - n),
			"--encap", "udp", "--local", fmt.Sprintf("172.16.0.%d", n), "--peer", fmt.Sprintf("172.16.0.%d", 3-n),
			"--eth-iface", "eth1", "--tunnel-iface", "tun0"}
		if extra != nil {
			args = append(args, extra(n)...)
		}
		tm(args...)
	}
	return func(n string) *testnet.Netns { return &testnet.Netns{Name: prefix + n} }, nodes
}
