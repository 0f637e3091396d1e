package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/tunmux/tunmux/apply"
	"github.com/tunmux/tunmux/dataplane"
	"github.com/tunmux/tunmux/internal/testnet"
	"github.com/tunmux/tunmux/maps"
	"github.com/tunmux/tunmux/render"
)

// watchLine is one JSON line of `tunmux apply --watch -o json`.
type watchLine = testnet.AgentLine

// removes reports whether the line's apply removed (or would remove) entries.
func removes(l watchLine) bool {
	for _, ch := range l.Result.Changes {
		if ch.Action == "remove" {
			return true
		}
	}
	return false
}

// watchProc is a running `tunmux apply --watch -o json` in the test's root
// and namespace.
type watchProc struct{ *testnet.Agent }

func (c *cli) startWatch(file string, flags ...string) *watchProc {
	c.t.Helper()
	return c.startWatchOf(bin, file, flags...)
}

// startWatchOf is startWatch with another tunmux binary.
func (c *cli) startWatchOf(binary, file string, flags ...string) *watchProc {
	c.t.Helper()
	return &watchProc{testnet.StartAgent(c.t, binary, nil, c.args(append([]string{"-o", "json", "apply", "-f", file, "--watch"}, flags...))...)}
}

// all returns the lines printed so far.
func (w *watchProc) all() []watchLine { return w.Lines() }

// waitLine waits for a line, after those an earlier waitLine returned, that
// cond accepts, and returns it.
func (w *watchProc) waitLine(what string, cond func(watchLine) bool) watchLine {
	return w.WaitLine(what+" (apply --watch output)", cond)
}

// stop ends it as SIGINT does, and waits.
func (w *watchProc) stop() { _ = w.Stop(syscall.SIGINT, 10*time.Second) }

func applied(l watchLine) bool { return l.Error == "" && l.Result.Applied && !l.Repaired }

// pairsOf lists the xconnect pairs.
func (c *cli) pairsOf() []maps.Pair {
	c.t.Helper()
	var pairs []maps.Pair
	c.jsonOut(&pairs, "xconnect", "list")
	return pairs
}

// quietResyncs fails the test if --watch printed a line for a reconcile
// that found nothing to do.
func quietResyncs(t *testing.T, w *watchProc, firstApplies int) {
	t.Helper()
	for i, l := range w.all() {
		if i >= firstApplies && l.Error == "" && len(l.Result.Changes) == 0 {
			t.Errorf("line %d reports a reconcile with nothing to do: %+v", i+1, l)
		}
	}
}

func TestApplyWatchRepairsAHandDeletion(t *testing.T) {
	c := newApplyCLI(t)
	file := writeFile(t, "xc.yaml", "xconnect:\n  pairs:\n    - [p0, q0]\n")
	w := c.startWatch(file, "--resync", "1s")
	w.waitLine("the first apply", applied)

	c.ok("xconnect", "del", "p0")
	l := w.waitLine("a repair", func(l watchLine) bool { return l.Repaired })
	if len(l.Result.Changes) != 1 || l.Result.Changes[0].Action != "add" || l.Result.Changes[0].Kind != "pair" {
		t.Errorf("the repair: %+v", l.Result.Changes)
	}
	if pairs := c.pairsOf(); len(pairs) != 1 || pairs[0].A.Name != "p0" || pairs[0].B.Name != "q0" {
		t.Errorf("pairs after the repair: %+v", pairs)
	}
	quietResyncs(t, w, 1)
}

func TestApplyWatchReportsRepairs(t *testing.T) {
	var out, errw bytes.Buffer
	a := &app{out: &out, errw: &errw, printer: render.Printer{W: &out, Format: render.Table}}
	res := apply.Result{File: "x.yaml", Applied: true, Summary: map[string]int{"add": 1},
		Changes: []dataplane.Change{{Action: "add", Kind: "pair", Key: "p0<->q0"}}}
	a.reportApply(apply.Event{Result: res, Repaired: true})
	if !strings.Contains(out.String(), ": repaired x.yaml: 1 to add, 0 to change, 0 to remove\n") || !strings.Contains(out.String(), "p0<->q0") {
		t.Errorf("table report of a repair:\n%s", out.String())
	}
	out.Reset()
	a.reportApply(apply.Event{Result: res})
	if !strings.Contains(out.String(), ": applied x.yaml: 1 to add") {
		t.Errorf("table report of an apply:\n%s", out.String())
	}
	out.Reset()
	a.printer.Format = render.JSON
	a.reportApply(apply.Event{Result: res, Repaired: true})
	var line watchLine
	if err := json.Unmarshal(out.Bytes(), &line); err != nil || !line.Repaired || len(line.Result.Changes) != 1 {
		t.Errorf("JSON report of a repair (%v):\n%s", err, out.String())
	}
	out.Reset()
	a.reportApply(apply.Event{Result: apply.Result{File: "x.yaml"}, Err: &apply.MassPruneError{File: "x.yaml", MaxPercent: 50,
		Over: []apply.PruneShare{{Kind: "tunnel", Remove: 30, Pinned: 40}}}})
	if err := json.Unmarshal(out.Bytes(), &line); err != nil || !line.KeptLastGood || !strings.Contains(line.Error, "30 of the 40 tunnels pinned (75%)") {
		t.Errorf("JSON report of a refused prune (%v):\n%s", err, out.String())
	}
}

func TestApplyWatchRepairsOnLinkEvents(t *testing.T) {
	c := newApplyCLI(t)
	file := writeFile(t, "xc.yaml", "xconnect:\n  pairs:\n    - [p0, q0]\n")
	// No resync: only a link event can start the repair.
	w := c.startWatch(file, "--resync", "0")
	w.waitLine("the first apply", applied)
	before := c.pairsOf()
	if len(before) != 1 {
		t.Fatalf("pairs: %+v", before)
	}
	c.ns.Run(t, "ip", "link", "del", "p0")
	testnet.Veth(t, c.ns, "p0", c.ns, "p1")
	l := w.waitLine("a repair", func(l watchLine) bool { return l.Repaired })
	if len(l.Result.Changes) == 0 || l.Result.Changes[0].Kind != "pair" {
		t.Errorf("the repair: %+v", l.Result.Changes)
	}
	after := c.pairsOf()
	if len(after) != 1 || after[0].A.Name != "p0" && after[0].B.Name != "p0" {
		t.Fatalf("pairs after the repair: %+v", after)
	}
	ifindex := func(ps []maps.Pair) uint32 {
		if ps[0].A.Name == "p0" {
			return ps[0].A.Ifindex
		}
		return ps[0].B.Ifindex
	}
	if ifindex(after) == ifindex(before) {
		t.Errorf("the pair still holds p0's old ifindex %d", ifindex(before))
	}
}

// tunnelsYAML is an encap section of n tunnels, one a line, their VNIs
// counted from vni.
func tunnelsYAML(n, vni int) string {
	var b strings.Builder
	b.WriteString("encap:\n  tunnels:\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "    - {inner-src: 10.%d.%d.%d, inner-dst: 10.200.0.1, proto: geneve, vni: %d, outer-src: 192.168.1.1, outer-dst: 192.168.1.2, dst-mac: \"02:00:00:00:00:02\", underlay: ul0, overlay: wl0}\n",
			1+i/62500, (i/250)%250, 1+i%250, vni+i)
	}
	return b.String()
}

// rewriteInPlace rewrites a file as a slow writer does: truncate, then the
// content in chunks of whole lines (each state a valid, shorter file),
// flushed one by one with a pause between them.
func rewriteInPlace(path, content string, linesPerChunk int, pause time.Duration) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	lines := strings.SplitAfter(content, "\n")
	for i := 0; i < len(lines); i += linesPerChunk {
		if _, err := f.WriteString(strings.Join(lines[i:min(i+linesPerChunk, len(lines))], "")); err != nil {
			return err
		}
		if err := f.Sync(); err != nil {
			return err
		}
		time.Sleep(pause)
	}
	return f.Close()
}

func TestApplyWatchNeverAppliesAHalfWrittenFile(t *testing.T) {
	c := newApplyCLI(t)
	const n, rewrites = 1000, 4
	file := writeFile(t, "tunnels.yaml", tunnelsYAML(n, 0))
	c.ok("apply", "-f", file)
	// --allow-mass-prune: the settle time alone must keep the truncated
	// versions out.
	w := c.startWatch(file, "--prune", "--allow-mass-prune", "--settle", "2s")
	w.waitLine("the first apply", func(watchLine) bool { return true })

	done := make(chan error, 1)
	go func() {
		for k := 1; k <= rewrites; k++ {
			if err := rewriteInPlace(file, tunnelsYAML(n, k*10000), 25, 20*time.Millisecond); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	count := func() int {
		var tunnels []maps.TunnelJSON
		c.jsonOut(&tunnels, "tunnel", "list")
		return len(tunnels)
	}
	lowest := n
	for writing := true; writing; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			writing = false
		default:
			lowest = min(lowest, count())
		}
	}
	// The last version settles and is applied.
	final := uint32(rewrites * 10000)
	testnet.WaitFor(t, 60*time.Second, "the last version to be applied", func() bool {
		var tn maps.TunnelJSON
		c.jsonOut(&tn, "tunnel", "get", "--inner-src", "10.1.0.1", "--inner-dst", "10.200.0.1")
		return tn.VNI != nil && *tn.VNI == final
	})
	lowest = min(lowest, count())
	if lowest != n {
		t.Errorf("the tunnel count fell to %d of %d while the file was rewritten", lowest, n)
	}
	for i, l := range w.all() {
		if removes(l) || l.Error != "" {
			t.Errorf("line %d: a half-written file was acted on: error %q, %d changes, summary %v", i+1, l.Error, len(l.Result.Changes), l.Result.Summary)
		}
	}
}

func TestApplyMassPruneGuard(t *testing.T) {
	c := newApplyCLI(t)
	all := writeFile(t, "all.yaml", tunnelsYAML(20, 0))
	c.ok("apply", "-f", all)
	count := func() int {
		var tunnels []maps.TunnelJSON
		c.jsonOut(&tunnels, "tunnel", "list")
		return len(tunnels)
	}
	five := writeFile(t, "five.yaml", tunnelsYAML(5, 0))

	// 15 of 20 (75%) is more than the default 50%: refused, nothing changed.
	c.expect(exitFailed, []string{"apply", "-f", five, "--prune"}, "15 of the 20 tunnels pinned (75%)", "--max-prune 50%", "--allow-mass-prune")
	if got := count(); got != 20 {
		t.Fatalf("a refused prune left %d of 20 tunnels", got)
	}
	// A dry run says so, and exits 0.
	if r := c.ok("apply", "-f", five, "--prune", "--dry-run"); !strings.Contains(r.Stderr, "would be refused") {
		t.Errorf("dry run:\n%s", r)
	}
	// Bad values name the flag and the accepted form; they change nothing.
	c.expect(exitInvalid, []string{"apply", "-f", five, "--prune", "--max-prune", "150%"}, "--max-prune", "percentage from 0 to 100")
	c.expect(exitInvalid, []string{"apply", "-f", five, "--watch", "--resync", "-1s"}, "--resync", "a duration")
	c.expect(exitInvalid, []string{"apply", "-f", five, "--watch", "--settle", "soon"}, "--settle", "a duration")
	c.expect(exitInvalid, []string{"apply", "-f", five, "--settle", "1s"}, "--settle", "needs --watch")
	if got := count(); got != 20 {
		t.Fatalf("bad flags left %d of 20 tunnels", got)
	}

	// --watch reports the refusal and keeps the last state.
	watched := writeFile(t, "watched.yaml", tunnelsYAML(20, 0))
	w := c.startWatch(watched, "--prune")
	w.waitLine("the first apply", func(watchLine) bool { return true })
	tmp := watched + ".tmp"
	if err := os.WriteFile(tmp, []byte(tunnelsYAML(5, 0)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, watched); err != nil { // as editors save: applied at once
		t.Fatal(err)
	}
	l := w.waitLine("the refusal", func(l watchLine) bool { return l.Error != "" })
	if !l.KeptLastGood || !strings.Contains(l.Error, "--allow-mass-prune") {
		t.Errorf("the refusal: %+v", l)
	}
	if got := count(); got != 20 {
		t.Fatalf("a refused prune under --watch left %d of 20 tunnels", got)
	}

	w.stop()

	// A higher limit, or --allow-mass-prune, lets it through.
	c.ok("apply", "-f", five, "--prune", "--max-prune", "80%")
	if got := count(); got != 5 {
		t.Errorf("--max-prune 80%% left %d tunnels, want 5", got)
	}
	c.ok("apply", "-f", all)
	c.ok("apply", "-f", five, "--prune", "--allow-mass-prune")
	if got := count(); got != 5 {
		t.Errorf("--allow-mass-prune left %d tunnels, want 5", got)
	}
	// Fewer than 10 removals are never refused: 4 of 5 here.
	c.ok("apply", "-f", writeFile(t, "one.yaml", tunnelsYAML(1, 0)), "--prune", "--max-prune", "0")
	if got := count(); got != 1 {
		t.Errorf("a prune of 4 of 5 left %d tunnels, want 1", got)
	}
}

// kubelet updates a mounted ConfigMap by swapping the ..data symlink to a
// new folder: --watch applies each version, reports a bad one and keeps
// the last good state, and applies the next good one.
func TestApplyWatchFollowsConfigMapSwaps(t *testing.T) {
	c := newApplyCLI(t)
	cm := testnet.NewConfigMap(t, map[string]string{"state.yaml": "xconnect:\n  pairs:\n    - [p0, q0]\n", "other": "x"})
	w := c.startWatch(cm.Path("state.yaml"), "--prune", "--resync", "0")
	w.waitLine("the first apply", applied)
	ends := func() string {
		var out []string
		for _, p := range c.pairsOf() {
			out = append(out, p.A.Name+"-"+p.B.Name)
		}
		sort.Strings(out)
		return strings.Join(out, " ")
	}

	cm.Update(map[string]string{"state.yaml": "xconnect:\n  pairs:\n    - [p1, q1]\n", "other": "x"})
	l := w.waitLine("the second version applied", applied)
	if l.Result.Summary["add"] != 1 || l.Result.Summary["remove"] != 1 {
		t.Errorf("the swap's apply: %+v", l.Result)
	}
	if got := ends(); got != "p1-q1" && got != "q1-p1" {
		t.Errorf("pairs after the swap: %s", got)
	}

	// A version that names no such interface, then one that is not YAML:
	// each reported, the pair kept.
	for _, bad := range []string{"xconnect:\n  pairs:\n    - [p1, nosuch0]\n", "xconnect: [p1\n"} {
		cm.Update(map[string]string{"state.yaml": bad, "other": "x"})
		l = w.waitLine("the bad version reported", func(l watchLine) bool { return l.Error != "" })
		if !l.KeptLastGood || !strings.Contains(l.Error, "state.yaml") {
			t.Errorf("the bad version's report: %+v", l)
		}
		if got := ends(); got != "p1-q1" && got != "q1-p1" {
			t.Errorf("pairs after a bad version: %s", got)
		}
	}
	// Another key of the ConfigMap changing swaps the folder again with
	// this file's bytes unchanged: nothing to report.
	cm.Update(map[string]string{"state.yaml": "xconnect:\n  pairs:\n    - [p0, q0]\n    - [p1, q1]\n", "other": "y"})
	l = w.waitLine("the good version after the bad ones", applied)
	if l.Result.Summary["add"] != 1 || l.Result.Summary["remove"] != 0 {
		t.Errorf("the good version's apply: %+v", l.Result)
	}
	n := len(w.all())
	cm.Update(map[string]string{"state.yaml": "xconnect:\n  pairs:\n    - [p0, q0]\n    - [p1, q1]\n", "other": "z"})
	cm.Update(map[string]string{"state.yaml": "xconnect:\n  pairs:\n    - [p0, q0]\n", "other": "z"})
	l = w.waitLine("the last version applied", applied)
	if l.Result.Summary["remove"] != 1 {
		t.Errorf("the last version's apply: %+v", l.Result)
	}
	if all := w.all(); len(all) != n+1 {
		t.Errorf("a swap that left the file's bytes alone was reported: %+v", all[n:])
	}
}

// httpGet returns the status and body of a GET.
func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// The agent's probes: /healthz while its loop turns, /readyz once its file
// has applied (and still while a later bad version keeps the last good
// state); its tunmux_agent_* series say the same.
func TestApplyWatchServesHealth(t *testing.T) {
	c := newApplyCLI(t)
	bad := "xconnect:\n  pairs:\n    - [p0, nosuch0]\n"
	file := writeFile(t, "xc.yaml", bad)
	c.expect(2, []string{"apply", "-f", file, "--metrics-addr", ":9478"}, "--metrics-addr", "needs --watch")
	c.expect(2, []string{"apply", "-f", file, "--watch", "--metrics-addr", "9478"}, "--metrics-addr", "HOST:PORT")
	w := c.startWatch(file, "--metrics-addr", "127.0.0.1:0")
	base := "http://" + w.MetricsAddr()
	w.waitLine("the bad file reported", func(l watchLine) bool { return l.Error != "" })
	metric := func(series string) string {
		t.Helper()
		_, body := httpGet(t, base+"/metrics")
		for _, line := range strings.Split(body, "\n") {
			if v, ok := strings.CutPrefix(line, series+" "); ok {
				return v
			}
		}
		t.Fatalf("no series %s in:\n%s", series, body)
		return ""
	}
	if code, _ := httpGet(t, base+"/healthz"); code != 200 {
		t.Errorf("/healthz with a bad file: %d", code)
	}
	if code, body := httpGet(t, base+"/readyz"); code != 503 || !strings.Contains(body, "nosuch0") {
		t.Errorf("/readyz before any apply: %d %q", code, body)
	}
	if metric("tunmux_agent_ready") != "0" || metric(`tunmux_agent_runs_total{result="failed"}`) == "0" {
		t.Errorf("agent series before any apply")
	}

	if err := os.WriteFile(file, []byte("xconnect:\n  pairs:\n    - [p0, q0]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w.waitLine("the good file applied", applied)
	if code, body := httpGet(t, base+"/readyz"); code != 200 || body != "ok\n" {
		t.Errorf("/readyz after the apply: %d %q", code, body)
	}
	if metric("tunmux_agent_ready") != "1" || metric("tunmux_agent_file_applied") != "1" || metric(`tunmux_agent_runs_total{result="applied"}`) != "1" ||
		metric("tunmux_agent_last_success_timestamp_seconds") == "0" {
		t.Errorf("agent series after the apply")
	}
	metric(`tunmux_link_attached{dataplane="xconnect",program="xconnect",netns="` + c.ns.Name + `",interface="p0",hook="xdp",state="attached"}`)

	if err := os.WriteFile(file, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	w.waitLine("the bad version reported", func(l watchLine) bool { return l.Error != "" })
	if code, _ := httpGet(t, base+"/readyz"); code != 200 {
		t.Errorf("/readyz while the last good state runs: %d", code)
	}
	if metric("tunmux_agent_file_applied") != "0" {
		t.Errorf("tunmux_agent_file_applied with a bad version: %s", metric("tunmux_agent_file_applied"))
	}
}

// A new agent adopts what an older one left: its first apply replaces the
// programs of the other build in place (the maps, entries and links kept,
// nothing else written); an older agent leaves a newer build's programs.
func TestApplyWatchUpgradesProgramsOnStart(t *testing.T) {
	c := newApplyCLI(t)
	older := buildTunmux(t, "v-old", time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC))
	newer := buildTunmux(t, "v-new", time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), testnet.CodeVariant(1))
	file := writeFile(t, "xc.yaml", "xconnect:\n  pairs:\n    - [p0, q0]\n")
	if r := testnet.Tunmux(older, c.args([]string{"apply", "-f", file})...); r.Code != 0 {
		t.Fatal(r)
	}
	dir := filepath.Join(c.root, "xconnect")
	progTag := func() string {
		p, err := ebpf.LoadPinnedProgram(filepath.Join(dir, "prog_xconnect"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		info, _ := p.Info()
		return info.Tag
	}
	mapIDs := func() map[string]ebpf.MapID {
		out := map[string]ebpf.MapID{}
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if !strings.HasPrefix(e.Name(), maps.MapPrefix) {
				continue
			}
			m, err := ebpf.LoadPinnedMap(filepath.Join(dir, e.Name()), nil)
			if err != nil {
				t.Fatal(err)
			}
			info, _ := m.Info()
			id, _ := info.ID()
			out[e.Name()] = id
			m.Close()
		}
		return out
	}
	// p0's link: its id and state (the program it runs changes).
	linkOf := func() string {
		var st struct {
			Dataplanes []struct {
				Links []dataplane.LinkStatus `json:"links"`
			} `json:"dataplanes"`
		}
		c.jsonOut(&st, "status")
		for _, d := range st.Dataplanes {
			for _, l := range d.Links {
				if l.Interface == "p0" {
					return fmt.Sprintf("link %d %s", l.LinkID, l.State)
				}
			}
		}
		return "none"
	}
	tagBefore, mapsBefore, linkBefore := progTag(), mapIDs(), linkOf()

	// --prune, as the DaemonSet runs it: the mass-prune guard's dry run
	// foresees no change, and the upgrade still happens.
	w := c.startWatchOf(newer, file, "--prune")
	l := w.waitLine("the new agent's first apply", applied)
	if len(l.Result.Changes) != 1 || l.Result.Changes[0].Action != "upgrade" || l.Result.Changes[0].Key != "xconnect" {
		t.Errorf("the new agent's first apply: %+v", l.Result.Changes)
	}
	if progTag() == tagBefore {
		t.Errorf("the new agent left the old build's program")
	}
	if after := mapIDs(); fmt.Sprint(after) != fmt.Sprint(mapsBefore) {
		t.Errorf("the upgrade replaced maps: %v -> %v", mapsBefore, after)
	}
	if after := linkOf(); after != linkBefore {
		t.Errorf("p0's link: %q -> %q", linkBefore, after)
	}
	if pairs := c.pairsOf(); len(pairs) != 1 {
		t.Errorf("pairs after the upgrade: %+v", pairs)
	}
	w.stop()

	// The same build again: nothing to write.
	w = c.startWatchOf(newer, file)
	if l := w.waitLine("the same build's first apply", func(l watchLine) bool { return l.Error == "" }); len(l.Result.Changes) != 0 {
		t.Errorf("the same build again: %+v", l.Result.Changes)
	}
	w.stop()
	// An older agent leaves the newer programs, and says so.
	tagNewer := progTag()
	w = c.startWatchOf(older, file)
	if l := w.waitLine("the older agent's first apply", func(l watchLine) bool { return l.Error == "" }); len(l.Result.Changes) != 0 {
		t.Errorf("the older agent's first apply: %+v", l.Result.Changes)
	}
	testnet.WaitFor(t, 10*time.Second, "the downgrade warning", func() bool {
		return strings.Contains(w.Stderr(), "newer than this tunmux v-old") && strings.Contains(w.Stderr(), "left as they are")
	})
	if progTag() != tagNewer {
		t.Errorf("the older agent replaced the newer build's program")
	}
}
