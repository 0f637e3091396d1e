package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"gopkg.in/yaml.v3"

	"github.com/tunmux/tunmux/dataplane"
	"github.com/tunmux/tunmux/internal/testnet"
	"github.com/tunmux/tunmux/maps"
)

// fleetNode is one simulated Kubernetes node: a namespace on the underlay
// bridge with its own bpffs root, and the agent that runs there.
type fleetNode struct {
	t       *testing.T
	name    string // its node name in the fleet file
	ns      *testnet.Netns
	root    string
	ip      string // underlay (NODE_IP)
	overlay string // its overlay address in the example fleet file
	file    string // the fleet file, as mounted
	agent   *testnet.Agent
}

func (n *fleetNode) args(extra ...string) []string {
	return append([]string{"--bpffs", n.root, "--netns", n.ns.Name}, extra...)
}

func (n *fleetNode) tm(args ...string) testnet.Result {
	n.t.Helper()
	return testnet.MustTunmux(n.t, bin, n.args(args...)...)
}

// start runs the agent, as the DaemonSet does (apply --watch --prune on the
// mounted file), with binary; it returns the agent's first apply.
func (n *fleetNode) start(binary string) testnet.AgentLine {
	n.t.Helper()
	n.agent = testnet.StartAgent(n.t, binary, []string{"NODE_IP=" + n.ip},
		n.args("-o", "json", "apply", "-f", n.file, "--watch", "--prune", "--node", n.name)...)
	return n.agent.WaitLine(n.name+"'s first apply", func(l testnet.AgentLine) bool { return true })
}

// routeProgram is what identifies the node's route program and its state:
// the tag of the program tmx-rt runs (a TUN device: route's L3 build,
// route-l3), its link's id, and the id of every pinned map.
func (n *fleetNode) routeProgram() (tag string, link uint32, mapIDs string) {
	n.t.Helper()
	dir := filepath.Join(n.root, "route")
	p, err := ebpf.LoadPinnedProgram(filepath.Join(dir, "prog_route-l3"), nil)
	if err != nil {
		n.t.Fatal(err)
	}
	info, _ := p.Info()
	p.Close()
	var st struct {
		Dataplanes []struct {
			Links []dataplane.LinkStatus `json:"links"`
		} `json:"dataplanes"`
	}
	if err := json.Unmarshal([]byte(n.tm("-o", "json", "status", "route").Stdout), &st); err != nil || len(st.Dataplanes) != 1 {
		n.t.Fatalf("status: %v", err)
	}
	for _, l := range st.Dataplanes[0].Links {
		if l.Interface == "tmx-rt" && l.State == "attached" {
			link = l.LinkID
		}
	}
	entries, _ := os.ReadDir(dir)
	var ids []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), maps.MapPrefix) {
			continue
		}
		m, err := ebpf.LoadPinnedMap(filepath.Join(dir, e.Name()), nil)
		if err != nil {
			n.t.Fatal(err)
		}
		mi, _ := m.Info()
		id, _ := mi.ID()
		m.Close()
		ids = append(ids, fmt.Sprintf("%s=%d", e.Name(), id))
	}
	return info.Tag, link, strings.Join(ids, " ")
}

// exampleFleetFile is the fleet file of deploy/kubernetes's ConfigMap.
func exampleFleetFile(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testnet.TopDir(), "deploy", "kubernetes", "20-configmap.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cm struct{ Data map[string]string }
	if err := yaml.Unmarshal(data, &cm); err != nil || cm.Data["fleet.yaml"] == "" {
		t.Fatalf("the example ConfigMap's fleet.yaml: %v", err)
	}
	return cm.Data["fleet.yaml"]
}

// edit replaces each old string, which must occur once, by its new one.
func edit(t *testing.T, text string, pairs ...string) string {
	t.Helper()
	for i := 0; i+1 < len(pairs); i += 2 {
		if strings.Count(text, pairs[i]) != 1 {
			t.Fatalf("the fleet file holds %q %d times, want once", pairs[i], strings.Count(text, pairs[i]))
		}
		text = strings.Replace(text, pairs[i], pairs[i+1], 1)
	}
	return text
}

// serveNodeName answers every TCP connection to port 7000 in the node's
// namespace with its node name, until the test ends.
func serveNodeName(t *testing.T, n *fleetNode) { answerEach(t, n.ns, "0.0.0.0:7000", n.name) }

// whoAnswers connects from n to addr:7000 and returns the node that
// answered ("" if none did).
func whoAnswers(t *testing.T, n *fleetNode, addr string) string {
	t.Helper()
	var name string
	n.ns.Do(t, func() error {
		c, err := net.DialTimeout("tcp4", net.JoinHostPort(addr, "7000"), 2*time.Second)
		if err != nil {
			return nil
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		b, _ := io.ReadAll(c)
		name = string(b)
		return nil
	})
	return name
}

// flood pings dst from n every 5 ms, count times; the function it returns
// waits for the end and returns the packets sent and received.
func flood(t *testing.T, n *fleetNode, dst string, count int) func() (sent, received int) {
	t.Helper()
	cmd := n.ns.Cmd("ping", "-i", "0.005", "-c", fmt.Sprint(count), "-W", "2", dst)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return func() (int, int) {
		_ = cmd.Wait()
		m := regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`).FindStringSubmatch(out.String())
		if m == nil {
			t.Fatalf("ping %s from %s:\n%s", dst, n.name, out.String())
		}
		return atoi(m[1]), atoi(m[2])
	}
}

// TestFleetOfThreeNodes simulates a DaemonSet on three nodes: namespaces
// on one bridge, each with its own bpffs root and its agent (apply --watch
// --node NAME) on one shared folder laid out like a ConfigMap mount,
// holding deploy/kubernetes's example fleet file. File changes converge on
// every node and traffic follows; a bad file keeps every node's last good
// state; an agent killed and restarted during a ping flood loses nothing,
// nor does a rolling upgrade to a build whose programs changed.
func TestFleetOfThreeNodes(t *testing.T) {
	testnet.RequireRoot(t)
	w := testnet.NewNetns(t, "flw")
	w.Run(t, "ip", "link", "add", "br0", "type", "bridge")
	w.Run(t, "ip", "link", "set", "br0", "up")
	example := exampleFleetFile(t)
	cm := testnet.NewConfigMap(t, map[string]string{"fleet.yaml": example})
	var nodes []*fleetNode
	for i, name := range []string{"node-a", "node-b", "node-c"} {
		n := &fleetNode{t: t, name: name, ns: testnet.NewNetns(t, fmt.Sprintf("fl%d", i+1)),
			ip: fmt.Sprintf("192.168.61.%d", 11+i), overlay: fmt.Sprintf("10.250.%d.1", i+1), file: cm.Path("fleet.yaml")}
		port := fmt.Sprintf("p%d", i+1)
		testnet.Veth(t, n.ns, "e0", w, port)
		w.Run(t, "ip", "link", "set", port, "master", "br0", "up")
		n.ns.Run(t, "ip", "addr", "add", n.ip+"/24", "dev", "e0")
		// Replies arrive on tmx-vxlan while routes point at tmx-rt.
		n.ns.Run(t, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0")
		n.root = testnet.BPFRoot(t, func(root string) { testnet.Tunmux(bin, "--bpffs", root, "unload", "route", "--all") })
		nodes = append(nodes, n)
	}
	a, b, c := nodes[0], nodes[1], nodes[2]
	for _, n := range nodes {
		if l := n.start(bin); !l.OK() || !l.Result.Applied || l.Result.Fleet == nil || l.Result.Fleet.Node != n.name {
			t.Fatalf("%s's first apply: %+v\n%s", n.name, l, n.agent.Stderr())
		}
		serveNodeName(t, n)
	}
	for _, from := range nodes {
		for _, to := range nodes {
			if from != to {
				pingUntil(t, from.ns, to.overlay)
			}
		}
	}

	// A change: 10.250.9.0/24 on node-b, routed to it from node-a.
	converged := func(what string) {
		t.Helper()
		for _, n := range nodes {
			if l := n.agent.WaitLine(n.name+": "+what, func(l testnet.AgentLine) bool { return l.Result.Applied || l.Error != "" }); !l.OK() {
				t.Fatalf("%s: %s: %+v", n.name, what, l)
			}
		}
	}
	onB := edit(t, example,
		`address: [10.250.2.1/32]`, `address: [10.250.2.1/32, 10.250.9.1/32]`,
		`- {prefix: 10.250.3.0/24, nexthops: ["192.168.61.13,vni=250"]}`,
		"- {prefix: 10.250.3.0/24, nexthops: [\"192.168.61.13,vni=250\"]}\n      - {prefix: 10.250.9.0/24, nexthops: [\"192.168.61.12,vni=250\"]}",
		`"10.250.3.0/24 src 10.250.1.1"]`, `"10.250.3.0/24 src 10.250.1.1", "10.250.9.0/24 src 10.250.1.1"]`)
	cm.Update(map[string]string{"fleet.yaml": onB})
	// node-a and node-b change; node-c gets the route too (defaults).
	converged("the version with 10.250.9.0/24 on node-b")
	testnet.WaitFor(t, 15*time.Second, "node-b to answer at 10.250.9.1", func() bool { return whoAnswers(t, a, "10.250.9.1") == "node-b" })
	// It moves to node-c: the route, the address and node-c's routes back.
	onC := edit(t, onB,
		`address: [10.250.2.1/32, 10.250.9.1/32]`, `address: [10.250.2.1/32]`,
		`address: [10.250.3.1/32]`, `address: [10.250.3.1/32, 10.250.9.1/32]`,
		`{prefix: 10.250.9.0/24, nexthops: ["192.168.61.12,vni=250"]}`, `{prefix: 10.250.9.0/24, nexthops: ["192.168.61.13,vni=250"]}`)
	cm.Update(map[string]string{"fleet.yaml": onC})
	converged("the version with 10.250.9.0/24 on node-c")
	testnet.WaitFor(t, 15*time.Second, "node-c to answer at 10.250.9.1", func() bool { return whoAnswers(t, a, "10.250.9.1") == "node-c" })

	// Bad versions: a value no node takes, then not YAML. Every agent
	// reports it and keeps its last good state.
	for _, bad := range []string{
		edit(t, onC, `{prefix: 10.250.9.0/24,`, `{prefix: 10.250.300.0/24,`),
		onC + "\n  oops: [\n",
	} {
		cm.Update(map[string]string{"fleet.yaml": bad})
		for _, n := range nodes {
			l := n.agent.WaitLine(n.name+": the bad version", func(l testnet.AgentLine) bool { return l.Error != "" || l.Result.Applied })
			if l.Error == "" || !l.KeptLastGood {
				t.Errorf("%s on a bad version: %+v", n.name, l)
			}
		}
		if who := whoAnswers(t, a, "10.250.9.1"); who != "node-c" {
			t.Errorf("10.250.9.1 with a bad version: answered by %q, want node-c", who)
		}
	}
	cm.Update(map[string]string{"fleet.yaml": onC})
	for _, n := range nodes {
		// The last good version again: nothing to write.
		l := n.agent.WaitLine(n.name+": the good version again", func(l testnet.AgentLine) bool { return l.OK() })
		if len(l.Result.Changes) != 0 {
			t.Errorf("%s: the good version after the bad ones wrote %+v", n.name, l.Result.Changes)
		}
	}

	// node-b's agent killed (SIGKILL) and restarted during a ping flood
	// through it: the dataplane runs from its pins meanwhile, and the new
	// agent adopts them, writing nothing.
	done := flood(t, a, b.overlay, 1500)
	pingUntil(t, c.ns, b.overlay)
	_ = b.agent.Stop(syscall.SIGKILL, 10*time.Second)
	pingUntil(t, c.ns, b.overlay) // no agent on node-b: traffic goes on
	if l := b.start(bin); !l.OK() || len(l.Result.Changes) != 0 {
		t.Errorf("node-b's new agent: %+v", l)
	}
	if sent, got := done(); got != sent {
		t.Errorf("%d of %d pings lost while node-b's agent was killed and restarted", sent-got, sent)
	} else {
		t.Logf("%d of %d pings answered across node-b's agent's kill and restart", got, sent)
	}

	// A rolling upgrade, node by node (SIGTERM, as a pod deletion does),
	// to a build whose programs changed, during floods from node-a to
	// node-b and node-c: each new agent replaces the programs in place,
	// keeping the link and the maps.
	newer := filepath.Join(t.TempDir(), "tunmux-newer")
	if err := testnet.BuildTunmuxAt(newer, testnet.CodeVariant(1)+fmt.Sprintf(" -X main.version=v-newer -X main.commitTime=%d", time.Now().Unix())); err != nil {
		t.Fatal(err)
	}
	toB, toC := flood(t, a, b.overlay, 2000), flood(t, a, c.overlay, 2000)
	for _, n := range nodes {
		tag, link, mapIDs := n.routeProgram()
		if err := n.agent.Stop(syscall.SIGTERM, 10*time.Second); err != nil {
			t.Errorf("%s's agent after SIGTERM: %v", n.name, err)
		}
		l := n.start(newer)
		if !l.OK() || len(l.Result.Changes) != 1 || l.Result.Changes[0].Action != "upgrade" || l.Result.Changes[0].Key != "route" {
			t.Errorf("%s's newer agent's first apply: %+v", n.name, l)
		}
		newTag, newLink, newMapIDs := n.routeProgram()
		if newTag == tag || newLink != link || newMapIDs != mapIDs {
			t.Errorf("%s's upgrade: tag %s -> %s, link %d -> %d, maps %s -> %s", n.name, tag, newTag, link, newLink, mapIDs, newMapIDs)
		}
	}
	for to, wait := range map[string]func() (int, int){"node-b": toB, "node-c": toC} {
		if sent, got := wait(); got != sent {
			t.Errorf("%d of %d pings to %s lost during the rolling upgrade", sent-got, sent, to)
		} else {
			t.Logf("%d of %d pings to %s answered during the rolling upgrade", got, sent, to)
		}
	}
	if who := whoAnswers(t, a, "10.250.9.1"); who != "node-c" {
		t.Errorf("10.250.9.1 after the upgrade: answered by %q", who)
	}
	// Every agent stopped: the dataplanes go on.
	for _, n := range nodes {
		if err := n.agent.Stop(syscall.SIGTERM, 10*time.Second); err != nil {
			t.Errorf("%s's agent after SIGTERM: %v", n.name, err)
		}
	}
	pingUntil(t, b.ns, c.overlay)
	pingUntil(t, c.ns, a.overlay)
}
