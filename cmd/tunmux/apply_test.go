package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/tunmux/tunmux/internal/testnet"
	"github.com/tunmux/tunmux/maps"
)

// applyResult is the JSON of tunmux apply.
type applyResult struct {
	DryRun  bool `json:"dry_run"`
	Applied bool `json:"applied"`
	Changes []struct {
		Action, Kind, Key string
		Line              int
	} `json:"changes"`
	Summary map[string]int `json:"summary"`
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const desiredYAML = `# desired state of the test namespace
encap:
  tunnels:
    - inner-src: 10.0.0.1
      inner-dst: 10.0.0.2
      proto: vxlan
      vni: 100
      outer-src: 192.168.1.1
      outer-dst: 192.168.1.2
      dst-mac: "02:00:00:00:00:02"
      underlay: ul0
      overlay: wl0
    - {inner-src: 10.0.0.1, inner-dst: 10.0.0.3, proto: vlan, vlan-id: 7, underlay: ul0, overlay: wl0}
  devmap:
    - {in: x0, out: ul0}
xconnect:
  pairs:
    - [p0, q0]
l2tp:
  sessions:
    - session-id: 11
      peer-session-id: 12
      encap: udp
      local: 172.16.0.1
      peer: 172.16.0.2
      eth-iface: x1
      tunnel-iface: ul1
      peer-mac: "02:00:00:00:0c:02"
`

func newApplyCLI(t *testing.T) *cli {
	c := newCLI(t)
	testnet.Veth(t, c.ns, "p0", c.ns, "p1")
	testnet.Veth(t, c.ns, "q0", c.ns, "q1")
	t.Cleanup(func() {
		testnet.Tunmux(bin, "--bpffs", c.root, "unload", "xconnect")
		testnet.Tunmux(bin, "--bpffs", c.root, "unload", "l2tp")
	})
	return c
}

func TestApplyDryRunIdempotencePrune(t *testing.T) {
	c := newApplyCLI(t)
	file := writeFile(t, "desired.yaml", desiredYAML)
	var res applyResult

	// A dry run on an empty root creates nothing at all.
	c.jsonOut(&res, "apply", "-f", file, "--dry-run")
	// 2 tunnels, their 2 slots, 1 plain slot, 1 pair, 1 session.
	if !res.DryRun || res.Applied || res.Summary["load"] != 3 || res.Summary["add"] != 7 {
		t.Errorf("dry run: %+v", res)
	}
	if _, err := os.Stat(c.root); !os.IsNotExist(err) {
		t.Errorf("a dry run created %s", c.root)
	}

	c.jsonOut(&res, "apply", "-f", file)
	if !res.Applied || res.Summary["add"] != 7 || res.Summary["load"] != 3 {
		t.Fatalf("apply: %+v", res)
	}
	var tunnels []maps.TunnelJSON
	c.jsonOut(&tunnels, "tunnel", "list")
	if len(tunnels) != 2 || tunnels[1].Proto != "vlan" || *tunnels[0].VNI != 100 {
		t.Errorf("tunnels after apply: %+v", tunnels)
	}
	var slots []maps.Slot
	c.jsonOut(&slots, "devmap", "list")
	if len(slots) != 3 {
		t.Errorf("slots after apply: %+v", slots)
	}
	var pairs []maps.Pair
	c.jsonOut(&pairs, "xconnect", "list")
	if len(pairs) != 1 || pairs[0].A.Name != "p0" || pairs[0].B.Name != "q0" {
		t.Errorf("pairs after apply: %+v", pairs)
	}
	var sessions []maps.SessionJSON
	c.jsonOut(&sessions, "l2tp", "session", "list")
	if len(sessions) != 1 || sessions[0].SessionID != 11 {
		t.Errorf("sessions after apply: %+v", sessions)
	}

	// The same file again: nothing to do.
	before := c.snapshot()
	c.jsonOut(&res, "apply", "-f", file)
	if res.Applied || len(res.Changes) != 0 {
		t.Errorf("second apply: %+v", res)
	}
	if r := c.ok("apply", "-f", file); !strings.Contains(r.Stdout, "no changes") {
		t.Errorf("second apply, table: %s", r)
	}
	c.unchanged(before, "a second apply of the same file")

	// Entries the file lacks stay without --prune and go with it, exactly those.
	c.ok(append([]string{"tunnel", "add"}, withFlag(tunnelArgs, "--inner-dst", "10.0.0.9")...)...)
	c.ok("devmap", "add", "x1", "ul1")
	c.jsonOut(&res, "apply", "-f", file)
	if len(res.Changes) != 0 {
		t.Errorf("apply without --prune touched entries the file lacks: %+v", res)
	}
	before = c.snapshot()
	c.jsonOut(&res, "apply", "-f", file, "--prune", "--dry-run")
	c.unchanged(before, "a dry run")
	got := []string{}
	for _, ch := range res.Changes {
		got = append(got, ch.Action+" "+ch.Kind+" "+ch.Key)
	}
	sort.Strings(got)
	if want := []string{"remove slot x1", "remove tunnel 10.0.0.1->10.0.0.9"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("prune would change %v, want %v", got, want)
	}
	c.jsonOut(&res, "apply", "-f", file, "--prune")
	c.jsonOut(&tunnels, "tunnel", "list")
	c.jsonOut(&slots, "devmap", "list")
	if len(tunnels) != 2 || len(slots) != 3 {
		t.Errorf("after prune: %d tunnels, %d slots; want 2 and 3", len(tunnels), len(slots))
	}
	// A section absent from the file is never touched, even with --prune.
	only := writeFile(t, "only-xconnect.yaml", "xconnect:\n  pairs:\n    - [p0, q0]\n")
	c.jsonOut(&res, "apply", "-f", only, "--prune")
	c.jsonOut(&tunnels, "tunnel", "list")
	if len(res.Changes) != 0 || len(tunnels) != 2 {
		t.Errorf("prune of a file without encap removed encap entries: %+v", res)
	}
	// An empty section with --prune empties that dataplane.
	empty := writeFile(t, "empty.yaml", "l2tp:\n  sessions: []\n")
	c.jsonOut(&res, "apply", "-f", empty, "--prune")
	c.jsonOut(&sessions, "l2tp", "session", "list")
	if len(sessions) != 0 {
		t.Errorf("sessions left after pruning with an empty section: %+v", sessions)
	}
}

func TestApplyListsEveryProblemByLine(t *testing.T) {
	c := newApplyCLI(t)
	c.ok(append([]string{"apply", "-f"}, writeFile(t, "good.yaml", desiredYAML))...)
	before := c.snapshot()
	bad := `encap:
  tunnels:
    - inner-src: 10.0.0.1
      inner-dst: 10.0.0.999
      proto: vxlan
      vni: 16777216
      outer-src: 192.168.1.1
      outer-dst: 192.168.1.2
      dst-mac: "02:00:00:00:00:02"
      underlay: nosuch0
      overlay: wl0
    - {inner-src: 10.0.0.1, inner-dst: 10.0.0.2, proto: gre, underlay: ul0, overlay: wl0, colour: red}
  devmap:
    - {in: x0, out: missing1}
xconnect:
  pairs:
    - [p0, q0]
    - [p0, p1]
    - just-one
l2tp:
  sessions:
    - {session-id: 0, peer-session-id: 12, encap: udp, local: 172.16.0.1, peer: fd00::2, eth-iface: x1, tunnel-iface: ul1}
frobnicate: {}
`
	r := c.run("apply", "-f", writeFile(t, "bad.yaml", bad))
	if r.Code != exitInvalid {
		t.Fatalf("want exit 2:\n%s", r)
	}
	for _, want := range []string{
		":4: encap.tunnels[0]: inner-dst", ":6: encap.tunnels[0]: vni", ":10: encap.tunnels[0]: underlay \"nosuch0\": no such interface",
		":12: encap.tunnels[1]: unknown key \"colour\"", ":12: encap.tunnels[1]: proto \"gre\"",
		":14: encap.devmap[0]: out \"missing1\"", ":18: xconnect.pairs[1]: p0 is already in the pair on line 17",
		":19: xconnect.pairs[2]: must be a pair", ":22: l2tp.sessions[0]: session-id \"0\"", ":22: l2tp.sessions[0]: peer",
		":23: unknown key \"frobnicate\"",
	} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.Stderr)
		}
	}
	c.unchanged(before, "a bad file")
	for _, tc := range []struct{ content, want string }{
		{"encap: [unclosed", "yaml"},
		{"- just\n- a list\n", "must be a mapping"},
		{"", "empty"},
	} {
		r := c.run("apply", "-f", writeFile(t, "x.yaml", tc.content))
		if r.Code != exitInvalid || !strings.Contains(r.Stderr, tc.want) {
			t.Errorf("file %q: want exit 2 with %q:\n%s", tc.content, tc.want, r)
		}
	}
	if r := c.run("apply", "-f", "/no/such/file.yaml"); r.Code != exitInvalid || !strings.Contains(r.Stderr, "-f") {
		t.Errorf("missing file:\n%s", r)
	}
	if r := c.run("apply"); r.Code != exitInvalid || !strings.Contains(r.Stderr, "-f") {
		t.Errorf("no -f:\n%s", r)
	}
}

func TestApplyRepairsARecreatedInterface(t *testing.T) {
	c := newApplyCLI(t)
	file := writeFile(t, "d.yaml", desiredYAML)
	c.ok("apply", "-f", file)
	// The kernel drops the devmap slot of an interface that goes away.
	c.ns.Run(t, "ip", "link", "del", "ul0")
	testnet.Veth(t, c.ns, "ul0", c.ns, "ul1")
	var res applyResult
	c.jsonOut(&res, "apply", "-f", file)
	kinds := map[string]int{}
	for _, ch := range res.Changes {
		kinds[ch.Kind+" "+ch.Key] = 1
		kinds[ch.Action+" "+ch.Kind]++
	}
	// Both tunnels and the session point at new ifindexes; ul0 gets a slot again.
	if kinds["change tunnel"] != 2 || kinds["change session"] != 1 || kinds["slot ul0"] != 1 {
		t.Errorf("re-apply after ul0 and ul1 were recreated: %+v", res.Changes)
	}
	var slots []maps.Slot
	c.jsonOut(&slots, "devmap", "list")
	if len(slots) != 3 {
		t.Errorf("slots after the repair: %+v (the old ul0's record should be gone)", slots)
	}
	for _, s := range slots {
		if s.InName == "ul0" && (s.Readiness != maps.ReadyGRO || len(s.Tunnels) != 2) {
			t.Errorf("slot of the new ul0: %+v", s)
		}
	}
	m, err := ebpf.LoadPinnedMap(filepath.Join(c.root, "encap", "map_devmap"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var ul0 struct{ Index int }
	if err := json.Unmarshal([]byte(strings.Trim(c.ns.Run(t, "ip", "-j", "link", "show", "ul0"), "[]\n")), &struct {
		Ifindex *int `json:"ifindex"`
	}{&ul0.Index}); err != nil {
		t.Fatal(err)
	}
	var v [8]byte
	if err := m.Lookup(uint32(ul0.Index), &v); err != nil {
		t.Errorf("the devmap has no slot for the new ul0 (ifindex %d): %v", ul0.Index, err)
	}
	c.jsonOut(&res, "apply", "-f", file)
	if len(res.Changes) != 0 {
		t.Errorf("a third apply still changes: %+v", res.Changes)
	}
}

func TestApplyKilledHalfwayConverges(t *testing.T) {
	c := newApplyCLI(t)
	const n = 60000
	var b strings.Builder
	b.WriteString("encap:\n  tunnels:\n")
	want := map[string]uint32{}
	for i := 0; i < n; i++ {
		src := fmt.Sprintf("10.%d.%d.%d", 1+i/62500, (i/250)%250, 1+i%250)
		fmt.Fprintf(&b, "    - {inner-src: %s, inner-dst: 10.200.0.1, proto: geneve, vni: %d, outer-src: 192.168.1.1, outer-dst: 192.168.1.2, dst-mac: \"02:00:00:00:00:02\", underlay: ul0, overlay: wl0}\n", src, i)
		want[src+"->10.200.0.1"] = uint32(i)
	}
	file := writeFile(t, "big.yaml", b.String())
	// Batches of 10 make the writing long enough to be cut in the middle:
	// kill it shortly after the first tunnel lands.
	cmd := exec.Command(bin, "--bpffs", c.root, "--netns", c.ns.Name, "apply", "-f", file, "--batch", "10")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pin := filepath.Join(c.root, "encap", "map_tunnels4")
	testnet.WaitFor(t, 60*time.Second, "apply to write its first tunnel", func() bool {
		m, err := ebpf.LoadPinnedMap(pin, nil)
		if err != nil {
			return false
		}
		defer m.Close()
		k := make([]byte, m.KeySize())
		return m.NextKey(nil, &k) == nil
	})
	time.Sleep(20 * time.Millisecond)
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	m, err := ebpf.LoadPinnedMap(pin, nil)
	if err != nil {
		t.Fatal(err)
	}
	partial := countKeys(m)
	m.Close()
	t.Logf("SIGKILL after %d of %d tunnels were written", partial, n)
	var res applyResult
	c.jsonOut(&res, "apply", "-f", file)
	if res.Summary["add"] != n-partial {
		t.Errorf("the re-run added %d tunnels, want the %d missing", res.Summary["add"], n-partial)
	}
	// Entry by entry, the state is the file.
	var tunnels []maps.TunnelJSON
	c.jsonOut(&tunnels, "tunnel", "list")
	if len(tunnels) != n {
		t.Fatalf("%d tunnels after the re-run, want %d", len(tunnels), n)
	}
	for _, tn := range tunnels {
		key := tn.InnerSrc + "->" + tn.InnerDst
		vni, ok := want[key]
		if !ok || tn.Proto != "geneve" || tn.VNI == nil || *tn.VNI != vni || *tn.OuterDst != "192.168.1.2" || tn.Underlay != "ul0" || tn.Overlay != "wl0" {
			t.Fatalf("tunnel %s differs from the file: %+v", key, tn)
		}
	}
	c.jsonOut(&res, "apply", "-f", file)
	if len(res.Changes) != 0 {
		t.Errorf("a third apply still changes %d entries", len(res.Changes))
	}
}

func countKeys(m *ebpf.Map) int {
	n := 0
	var k []byte
	it := m.Iterate()
	var v []byte
	for it.Next(&k, &v) {
		n++
	}
	return n
}

func TestApplyIPv6TunnelsWithGeneveOptions(t *testing.T) {
	c := newApplyCLI(t)
	file := writeFile(t, "v6.yaml", `encap:
  tunnels:
    - inner-src: fd00::1
      inner-dst: fd00::2
      proto: geneve
      vni: 9
      outer-src: fd01::1
      outer-dst: fd01::2
      dst-mac: "02:00:00:00:00:02"
      geneve-opt: ["0102:03:deadbeef", "0102:04:00000000"]
      underlay: ul0
      overlay: wl0
    - {inner-src: 10.0.0.1, inner-dst: 10.0.0.2, proto: geneve, vni: 9, outer-src: fd01::1, outer-dst: fd01::2,
       dst-mac: "02:00:00:00:00:02", geneve-opt: "0102:03:deadbeef", underlay: ul0, overlay: wl0}
`)
	var res applyResult
	c.jsonOut(&res, "apply", "-f", file)
	if !res.Applied || res.Summary["add"] != 4 { // two slots, two tunnels
		t.Fatalf("apply: %+v", res)
	}
	var got struct {
		GeneveOpts []string `json:"geneve_opts"`
	}
	c.jsonOut(&got, "tunnel", "get", "--inner-src", "fd00::1", "--inner-dst", "fd00::2")
	if strings.Join(got.GeneveOpts, " ") != "0102:03:deadbeef 0102:04:00000000" {
		t.Errorf("options after apply: %v", got.GeneveOpts)
	}
	c.jsonOut(&res, "apply", "-f", file)
	if len(res.Changes) != 0 {
		t.Errorf("a second apply changes: %+v", res.Changes)
	}
	// Only the options change: the change says so.
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte(strings.Replace(string(data), `"0102:04:00000000"`, `"0102:05:00000000"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	var changed struct {
		Changes []struct{ Action, Kind, Key, Detail string } `json:"changes"`
	}
	c.jsonOut(&changed, "apply", "-f", file)
	if len(changed.Changes) != 1 || changed.Changes[0].Action != "change" || !strings.Contains(changed.Changes[0].Detail, "geneve-opt") {
		t.Errorf("changing an option: %+v", changed.Changes)
	}
}
