package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tunmux/tunmux/internal/testnet"
)

// TestXconnectWatchSwap is xdp-xconnect's three-namespace demo, driven by
// `tunmux apply --watch`: ns1 pings through the cross-connect to ns2; the
// file is changed to connect ns1 to ns3 (the same address and MAC: a
// replacement) and the pings go on, to ns3; the pings lost during the swap
// are counted and printed; then a bad file leaves the ns3 connection up. The
// swap is written in xdp-xconnect's own form (links: {A: B}).
// The cross-connected veth ends live in the root namespace, as two NICs
// would.
func TestXconnectWatchSwap(t *testing.T) {
	testnet.RequireRoot(t)
	ends := map[int]string{}
	nss := map[int]*testnet.Netns{}
	for i := 1; i <= 3; i++ {
		mac, ip := "02:00:00:00:09:01", "10.9.0.1/24"
		if i > 1 {
			mac, ip = "02:00:00:00:09:02", "10.9.0.2/24" // ns3 replaces ns2
		}
		nss[i], ends[i] = behindRootEnd(t, fmt.Sprintf("xc%d", i), fmt.Sprintf("tx%d", i), ip, "address", mac)
	}
	bpffs := testnet.BPFRoot(t, func(r string) { testnet.Tunmux(bin, "--bpffs", r, "unload", "xconnect") })
	file := filepath.Join(t.TempDir(), "xconnect.yaml")
	// The first file is tunmux's form; the swap and the bad file are
	// xdp-xconnect's own (links: {A: B}), as its users would point apply at.
	form := "xconnect:\n  pairs:\n    - [%s, %s]\n"
	write := func(a, b string) {
		t.Helper()
		tmp := file + ".tmp"
		if err := os.WriteFile(tmp, []byte(fmt.Sprintf(form, a, b)), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, file); err != nil { // as editors save
			t.Fatal(err)
		}
	}
	write(ends[1], ends[2])

	watch := exec.Command(bin, "--bpffs", bpffs, "apply", "-f", file, "--watch", "-o", "json")
	stdout, err := watch.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	watch.Stderr = &stderr
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = watch.Process.Kill(); _ = watch.Wait() })
	events := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			events <- sc.Text()
		}
		close(events)
	}()
	next := func(what string) string {
		t.Helper()
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("apply --watch ended while waiting for %s:\n%s", what, stderr.String())
			}
			return ev
		case <-time.After(30 * time.Second):
			t.Fatalf("no apply for %s:\n%s", what, stderr.String())
		}
		return ""
	}
	if ev := next("the first file"); !strings.Contains(ev, `"applied":true`) {
		t.Fatalf("first apply: %s\n%s", ev, stderr.String())
	}
	pingUntil(t, nss[1], "10.9.0.2")

	// Ping steadily (50 per second) while the file swaps ns2 for ns3.
	ping := nss[1].Cmd("ping", "-i", "0.02", "-c", "250", "-W", "1", "10.9.0.2")
	var pingOut syncBuffer
	ping.Stdout, ping.Stderr = &pingOut, &pingOut
	if err := ping.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // a second of pings through ns2 first
	form = "links:\n    %s: %s\n"
	write(ends[1], ends[3])
	if ev := next("the swap"); !strings.Contains(ev, `"applied":true`) || !strings.Contains(ev, ends[3]) {
		t.Fatalf("swap: %s\n%s", ev, stderr.String())
	}
	_ = ping.Wait()
	m := regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`).FindStringSubmatch(pingOut.String())
	if m == nil {
		t.Fatalf("ping output:\n%s", pingOut.String())
	}
	sent, got := atoi(m[1]), atoi(m[2])
	lost := sent - got
	fmt.Printf("xconnect swap ns2 -> ns3 under `apply --watch`: %d of %d pings lost (one every 20 ms)\n", lost, sent)
	t.Logf("pings lost during the swap: %d of %d", lost, sent)
	if got < sent/2 {
		t.Errorf("the pings did not go on after the swap: %d of %d answered", got, sent)
	}
	// The answers after the swap came from ns3.
	if out := testnet.MustTunmux(t, bin, "--bpffs", bpffs, "xconnect", "list").Stdout; !strings.Contains(out, ends[3]) || strings.Contains(out, ends[2]) {
		t.Errorf("pairs after the swap:\n%s", out)
	}
	c3 := rxPackets(t, nss[3])
	pingUntil(t, nss[1], "10.9.0.2")
	if rxPackets(t, nss[3]) <= c3 {
		t.Errorf("ns3 received none of the pings")
	}

	// A bad file: reported, and the ns1 <-> ns3 connection keeps working.
	write(ends[1], "nosuch0")
	if ev := next("the bad file"); !strings.Contains(ev, `"kept_last_good":true`) || !strings.Contains(ev, "nosuch0") {
		t.Fatalf("bad file: %s", ev)
	}
	pingUntil(t, nss[1], "10.9.0.2")
	_ = watch.Process.Signal(syscall.SIGINT)
	if err := watch.Wait(); err != nil {
		t.Errorf("apply --watch did not end cleanly on SIGINT: %v\n%s", err, stderr.String())
	}
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// rxPackets is the number of packets eth0 received in ns.
func rxPackets(t *testing.T, ns *testnet.Netns) int {
	t.Helper()
	out := ns.Run(t, "cat", "/proc/net/dev")
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(strings.Replace(line, ":", " ", 1)); len(f) > 2 && f[0] == "eth0" {
			return atoi(f[2])
		}
	}
	t.Fatalf("no eth0 in /proc/net/dev of %s", ns.Name)
	return 0
}

// TestXconnectRestore: the export contract on the xconnect dataplane. Host
// A and host B are cross-connected through namespace M (ends a0 and b0,
// one pair in generic mode); M's state goes through a file, unload --all and
// apply, and the hosts reach each other again.
func TestXconnectRestore(t *testing.T) {
	testnet.RequireRoot(t)
	m := testnet.NewNetns(t, "xrm")
	hosts := map[string]*testnet.Netns{"a": testnet.NewNetns(t, "xra"), "b": testnet.NewNetns(t, "xrb")}
	for i, name := range []string{"a", "b"} {
		testnet.Veth(t, m, name+"0", hosts[name], "eth0")
		hosts[name].Run(t, "ip", "addr", "add", fmt.Sprintf("10.9.1.%d/24", i+1), "dev", "eth0")
		hosts[name].WaitUp(t, "eth0")
	}
	args := []string{"--bpffs", testnet.BPFRoot(t, func(r string) { testnet.Tunmux(bin, "--bpffs", r, "unload", "--all") }), "--netns", m.Name}
	testnet.MustTunmux(t, bin, append(args, "load", "xconnect")...)
	testnet.MustTunmux(t, bin, append(args, "xconnect", "add", "a0", "b0", "--mode", "generic")...)
	pingUntil(t, hosts["a"], "10.9.1.2")
	exported := testnet.Restore(t, bin, args, nil)
	if !strings.Contains(exported, "mode: generic") {
		t.Errorf("the pair's mode is not in the file:\n%s", exported)
	}
	pingUntil(t, hosts["a"], "10.9.1.2")
	pingUntil(t, hosts["b"], "10.9.1.1")
}

// TestXconnectResizeUnderTraffic: load --max-entries on a loaded xconnect
// grows (then shrinks) its maps in place while ns1 pings ns2 through the
// pair every 10 ms: the pair, its counters and its links stay, and no ping
// is lost.
func TestXconnectResizeUnderTraffic(t *testing.T) {
	testnet.RequireRoot(t)
	var ends [3]string
	var nss [3]*testnet.Netns
	for i := 1; i <= 2; i++ {
		nss[i], ends[i] = behindRootEnd(t, fmt.Sprintf("rz%d", i), fmt.Sprintf("rz%d", i), fmt.Sprintf("10.9.1.%d/24", i))
	}
	bpffs := testnet.BPFRoot(t, func(r string) { testnet.Tunmux(bin, "--bpffs", r, "unload", "xconnect") })
	tm := func(args ...string) testnet.Result {
		return testnet.MustTunmux(t, bin, append([]string{"--bpffs", bpffs}, args...)...)
	}
	tm("load", "xconnect")
	tm("xconnect", "add", ends[1], ends[2])
	pingUntil(t, nss[1], "10.9.1.2")
	linkIDs := func() string {
		var st struct {
			Dataplanes []struct {
				Links []struct {
					LinkID int `json:"link_id"`
				}
			}
		}
		if err := json.Unmarshal([]byte(tm("status", "xconnect", "-o", "json").Stdout), &st); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(st.Dataplanes[0].Links)
	}
	counted := func() int {
		var pairs []struct {
			AtoB struct{ Packets int } `json:"a_to_b"`
		}
		if err := json.Unmarshal([]byte(tm("xconnect", "list", "-o", "json").Stdout), &pairs); err != nil || len(pairs) != 1 {
			t.Fatalf("xconnect list: %v %+v", err, pairs)
		}
		return pairs[0].AtoB.Packets
	}
	links, before := linkIDs(), counted()

	ping := nss[1].Cmd("ping", "-i", "0.01", "-c", "300", "-W", "1", "10.9.1.2")
	var pingOut syncBuffer
	ping.Stdout, ping.Stderr = &pingOut, &pingOut
	if err := ping.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // pings flowing before the first swap
	grow := tm("load", "xconnect", "--max-entries", "4096")
	shrink := tm("load", "xconnect", "--max-entries", "64")
	_ = ping.Wait()
	if !strings.Contains(grow.Stdout, "from 1024 to 4096 entries") || !strings.Contains(shrink.Stdout, "from 4096 to 64 entries") {
		t.Errorf("the resizes:\n%s\n%s", grow, shrink)
	}
	m := regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`).FindStringSubmatch(pingOut.String())
	if m == nil {
		t.Fatalf("ping output:\n%s", pingOut.String())
	}
	sent, got := atoi(m[1]), atoi(m[2])
	fmt.Printf("xconnect resized twice under a ping every 10 ms: %d of %d pings lost\n", sent-got, sent)
	if got != sent {
		t.Errorf("%d of %d pings lost across the resizes", sent-got, sent)
	}
	if now := linkIDs(); now != links {
		t.Errorf("links %s after the resizes, %s before", now, links)
	}
	if after := counted(); after < before+got {
		t.Errorf("the pair counted %d packets after the resizes, %d before and %d pings answered since", after, before, got)
	}
	if out := tm("status", "xconnect").Stdout; !strings.Contains(out, "2/64") {
		t.Errorf("status after the resizes:\n%s", out)
	}
}

// behindRootEnd makes a namespace whose eth0, addressed addr (a CIDR) and
// set as ethSettings say ("address", MAC), is a veth to an end in the root
// namespace (a unique name from endPrefix), as a NIC would be; it returns
// both, and removes the end when the test ends.
func behindRootEnd(t *testing.T, nsPrefix, endPrefix, addr string, ethSettings ...string) (*testnet.Netns, string) {
	t.Helper()
	ns := testnet.NewNetns(t, nsPrefix)
	end := testnet.Unique(endPrefix) // 9 characters or so, in the root namespace
	testnet.Run(t, "ip", "link", "add", end, "type", "veth", "peer", "eth0", "netns", ns.Name)
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", end).Run() })
	testnet.Run(t, "ip", "link", "set", end, "up")
	if len(ethSettings) > 0 {
		ns.Run(t, "ip", append([]string{"link", "set", "eth0"}, ethSettings...)...)
	}
	ns.Run(t, "ip", "addr", "add", addr, "dev", "eth0")
	ns.Run(t, "ip", "link", "set", "eth0", "up")
	ns.WaitUp(t, "eth0")
	return ns, end
}
