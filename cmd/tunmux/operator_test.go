package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"

	"github.com/tunmux/tunmux/internal/testnet"
	"github.com/tunmux/tunmux/maps"
)

// Defects an operator met (issue 14), each reproduced.

// 1: a suggested command carries the --bpffs and --netns given, so that
// pasting it acts on the same root and namespace.
func TestHintsCarryTheGlobalFlags(t *testing.T) {
	c := newCLI(t)
	r := c.expect(exitFailed, []string{"xconnect", "add", "x0", "x1"}, "not loaded")
	want := fmt.Sprintf("'tunmux --bpffs %s --netns %s load xconnect'", c.root, c.ns.Name)
	if !strings.Contains(r.Stderr, want) {
		t.Errorf("want the hint %s:\n%s", want, r)
	}
	// Pasted, it works.
	c.ok("load", "xconnect")
	c.ok("xconnect", "add", "x0", "x1")
}

// 3: typos get a suggestion; status takes a dataplane, as stats does.
func TestTyposAndStatusOfOneDataplane(t *testing.T) {
	c := newCLI(t)
	c.expect(exitInvalid, []string{"tunel"}, `unknown command "tunel"`, "did you mean tunnel?")
	c.expect(exitInvalid, []string{"tunnel", "ad"}, "did you mean add?")
	c.expect(exitInvalid, []string{"status", "gre"}, "DATAPLANE", "encap|l2tp")
	c.expect(exitFailed, []string{"status", "encap"}, "not loaded", "load encap")
	c.ok("load", "encap")
	c.ok("load", "xconnect")
	var st struct{ Dataplanes []struct{ Name string } }
	c.jsonOut(&st, "status", "xconnect")
	if len(st.Dataplanes) != 1 || st.Dataplanes[0].Name != "xconnect" {
		t.Errorf("status xconnect: %+v", st)
	}
	c.ok("unload", "xconnect")
}

// 5: under -o json an error is one JSON object on standard error, with the
// exit code, the flag and the accepted form; JSON output does not escape
// "->" as HTML.
func TestJSONErrors(t *testing.T) {
	c := newCLI(t)
	c.ok("load", "encap")
	c.ok(append([]string{"tunnel", "add"}, tunnelArgs...)...)
	r := c.run("-o", "json", "tunnel", "add", "--inner-src", "10.0.0.1", "--inner-dst", "10.0.0.9", "--proto", "gre")
	var e struct {
		Error struct {
			Code                    int
			Message, Flag, Accepted string
			Problems                []struct{ Flag string }
		}
	}
	if r.Code != exitInvalid || json.Unmarshal([]byte(r.Stderr), &e) != nil {
		t.Fatalf("want one JSON object on stderr, exit 2:\n%s", r)
	}
	if e.Error.Code != exitInvalid || !strings.Contains(e.Error.Message, "--proto") || len(e.Error.Problems) < 2 {
		t.Errorf("error object: %+v", e.Error)
	}
	r = c.run("-o", "json", "load", "encap", "--max-entries", "-1")
	if json.Unmarshal([]byte(r.Stderr), &e) != nil || e.Error.Flag != "--max-entries" || !strings.Contains(e.Error.Accepted, "whole number") {
		t.Errorf("flag-parser error under -o json:\n%s", r)
	}
	cmd := exec.Command(bin, c.args([]string{"-o", "json", "apply", "-f", "-", "--dry-run"})...)
	cmd.Stdin = strings.NewReader("encap:\n  tunnels:\n    - {inner-src: 10.0.0.1, inner-dst: 10.0.0.7, proto: vlan, vlan-id: 7, underlay: ul0, overlay: wl0}\n")
	if out, err := cmd.Output(); err != nil || !strings.Contains(string(out), "10.0.0.1->10.0.0.7") || strings.Contains(string(out), `\u003e`) {
		t.Errorf("HTML escaping in JSON output: %v\n%s", err, out)
	}
}

// 18: values a flag's type refuses name the flag and the accepted form.
func TestFlagParserErrorsNameTheAcceptedForm(t *testing.T) {
	c := newCLI(t)
	for _, tc := range []struct {
		args      []string
		flag, has string
	}{
		{[]string{"load", "encap", "--max-entries", "-1"}, "--max-entries", "whole number"},
		{[]string{"load", "encap", "--max-entries", "lots"}, "--max-entries", ""},
		{[]string{"--lock-timeout", "soon", "status"}, "--lock-timeout", "duration"},
		{[]string{"capture", "wl0", "-c", "many", "-w", "-"}, "--count", "whole number"},
		{[]string{"monitor", "--rate", "fast"}, "--rate", "whole number"},
		{[]string{"doctor", "--sample", "x"}, "--sample", "duration"},
	} {
		r := c.run(tc.args...)
		if r.Code != exitInvalid || !strings.Contains(r.Stderr, tc.flag) || !strings.Contains(r.Stderr, tc.has) || strings.Contains(r.Stderr, "strconv.") {
			t.Errorf("%v: want exit 2 naming %s and the accepted form:\n%s", tc.args, tc.flag, r)
		}
	}
}

// 8: apply reads standard input with -f -; a VLAN tunnel's dry-run detail
// says "vlan 300" once.
func TestApplyFromStandardInput(t *testing.T) {
	c := newCLI(t)
	c.ok("load", "encap") // a loaded dataplane's plan describes each entry
	file := "encap:\n  tunnels:\n    - {inner-src: 10.0.5.1, inner-dst: 10.0.5.2, proto: vlan, vlan-id: 300, underlay: ul0, overlay: wl0}\n"
	cmd := exec.Command(bin, c.args([]string{"apply", "-f", "-", "--dry-run"})...)
	cmd.Stdin = strings.NewReader(file)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "vlan 300 via ul0") || strings.Contains(string(out), "vlan vlan") {
		t.Fatalf("apply -f - --dry-run: %v\n%s", err, out)
	}
	cmd = exec.Command(bin, c.args([]string{"apply", "-f", "-"})...)
	cmd.Stdin = strings.NewReader(file)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("apply -f -: %v\n%s", err, out)
	}
	c.ok("tunnel", "get", "--inner-src", "10.0.5.1", "--inner-dst", "10.0.5.2")
	c.expect(exitInvalid, []string{"apply", "-f", "-", "--watch"}, "-f", "cannot be watched")
}

// 10: --netns takes a path to a namespace file as well as a name.
func TestNetnsTakesAPath(t *testing.T) {
	c := newCLI(t)
	path := filepath.Join("/var/run/netns", c.ns.Name)
	r := testnet.MustTunmux(t, bin, "--bpffs", c.root, "--netns", path, "load", "xconnect")
	_ = r
	testnet.MustTunmux(t, bin, "--bpffs", c.root, "--netns", path, "xconnect", "add", "x0", "x1")
	// A process's namespace file names the same namespace.
	sleep := c.ns.Cmd("sleep", "30")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sleep.Process.Kill(); _ = sleep.Wait() })
	proc := fmt.Sprintf("/proc/%d/ns/net", sleep.Process.Pid)
	if out := testnet.MustTunmux(t, bin, "--bpffs", c.root, "--netns", proc, "xconnect", "list").Stdout; !strings.Contains(out, "x0") {
		t.Errorf("xconnect list in %s:\n%s", proc, out)
	}
	for _, bad := range []string{"/proc/self/fd", "relative/path", filepath.Join(os.TempDir(), "no-such-ns")} {
		if r := testnet.Tunmux(bin, "--bpffs", c.root, "--netns", bad, "status"); r.Code != exitInvalid || !strings.Contains(r.Stderr, "--netns") {
			t.Errorf("--netns %s: want exit 2:\n%s", bad, r)
		}
	}
	c.ok("unload", "xconnect")
}

// 7: the documentation stands alone: it does not point outside the
// repository.
func TestDocsStandAlone(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(testnet.TopDir(), "docs", "*.md"))
	files = append(files, filepath.Join(testnet.TopDir(), "README.md"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, bad := range []string{"../shared", "DESIGN.md"} {
			if strings.Contains(string(b), bad) {
				t.Errorf("%s cites %s, which is not part of the repository", filepath.Base(f), bad)
			}
		}
	}
}

// 16: without the privileges, a command says so (exit 1) instead of
// claiming the dataplane is not loaded, and unload does not say it unloaded
// nothing.
func TestPermissionDeniedIsSaid(t *testing.T) {
	c := newCLI(t)
	c.ok("load", "encap")
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Fatalf("setpriv (util-linux) is needed to run as another user: %v", err)
	}
	// The binary, where user nobody may run it.
	dir, err := os.MkdirTemp("", "tunmux-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	exe, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	runnable := filepath.Join(dir, "tunmux")
	if err := os.WriteFile(runnable, exe, 0o755); err != nil || os.Chmod(dir, 0o755) != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"tunnel", "list"}, {"unload", "encap"}, {"stats"}} {
		cmd := exec.Command("setpriv", append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", runnable, "--bpffs", c.root}, args...)...)
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		if code != exitFailed || !strings.Contains(string(out), "tunmux needs root") || strings.Contains(string(out), "not loaded") {
			t.Errorf("%v as nobody: exit %d\n%s", args, code, out)
		}
	}
	c.ok("tunnel", "list") // nothing was changed
}

// 15: a key given twice in a pair is an error with its line (it was
// accepted, the last one winning); the other file forms are apply's
// parse tests.
func TestRepeatedKeyInAPair(t *testing.T) {
	c := newCLI(t)
	file := filepath.Join(t.TempDir(), "pairs.yaml")
	if err := os.WriteFile(file, []byte("xconnect:\n  pairs:\n    - {a: x0, a: x1, b: wl0}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.expect(exitInvalid, []string{"apply", "-f", file, "--dry-run"}, file+":3:", "a repeats the one on line 3")
}

// 14: apply refuses, before reading, what it must not read (a device, a
// FIFO with no writer, a folder, a file over --max-file-size) with exit 2,
// and quotes at most a short excerpt of a line it refuses.
func TestApplyRefusesWhatItMustNotRead(t *testing.T) {
	c := newCLI(t)
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := unixMkfifo(fifo); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, []byte("xconnect:\n  pairs: []\n"+strings.Repeat("# padding\n", 300)), 0o644); err != nil {
		t.Fatal(err)
	}
	long := filepath.Join(dir, "long.yaml")
	secret := strings.Repeat("s3cr3t", 1000)
	if err := os.WriteFile(long, []byte(secret+": x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		has  string
	}{
		{[]string{"apply", "-f", "/dev/zero", "--dry-run"}, "not a regular file"},
		{[]string{"apply", "-f", fifo, "--dry-run"}, "not a regular file"},
		{[]string{"apply", "-f", dir, "--dry-run"}, "is a folder"},
		{[]string{"apply", "-f", big, "--dry-run", "--max-file-size", "1K"}, "--max-file-size"},
		{[]string{"apply", "-f", big, "--max-file-size", "lots"}, "--max-file-size"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		out, err := exec.CommandContext(ctx, bin, c.args(tc.args)...).CombinedOutput()
		cancel()
		code := -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		if code != exitInvalid || !strings.Contains(string(out), tc.has) {
			t.Errorf("%v: exit %d, want 2 saying %q:\n%s", tc.args, code, tc.has, out)
		}
	}
	r := c.expect(exitInvalid, []string{"apply", "-f", long, "--dry-run"})
	if strings.Contains(r.Stderr, strings.Repeat("s3cr3t", 10)) {
		t.Errorf("the problem quotes the whole line:\n%.300s", r.Stderr)
	}
	// Standard input is capped too.
	cmd := exec.Command(bin, c.args([]string{"apply", "-f", "-", "--dry-run", "--max-file-size", "1K"})...)
	cmd.Stdin = strings.NewReader(strings.Repeat("# padding\n", 300))
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "--max-file-size") {
		t.Errorf("2,000 bytes on standard input past a 1K cap: %v\n%s", err, out)
	}
}

func unixMkfifo(path string) error { return unix.Mkfifo(path, 0o600) }

// tunmux version (and --version): the version, the Go version and a hash
// of every embedded BPF object, as text and as JSON.
func TestVersionNamesTheObjects(t *testing.T) {
	var v struct {
		Version string            `json:"version"`
		Go      string            `json:"go_version"`
		Objects map[string]string `json:"bpf_objects"`
	}
	root := []string{"--bpffs", "/sys/fs/bpf/unused-by-version"} // the test helper insists on a root
	r := testnet.MustTunmux(t, bin, append(root, "-o", "json", "version")...)
	if err := json.Unmarshal([]byte(r.Stdout), &v); err != nil {
		t.Fatal(err)
	}
	if v.Version == "" || !strings.HasPrefix(v.Go, "go") || len(v.Objects) != 10 || len(v.Objects["encap"]) != 16 || v.Objects["encap"] == v.Objects["encap/observed"] {
		t.Errorf("version: %+v", v)
	}
	text := testnet.MustTunmux(t, bin, append(root, "--version")...).Stdout
	if text != testnet.MustTunmux(t, bin, append(root, "version")...).Stdout || !strings.Contains(text, v.Objects["route"]) {
		t.Errorf("--version and version differ, or lack the hashes:\n%s", text)
	}
}

// 4: completion offers names from the machine and the pins, and the fixed
// sets of flag values; never file names where a name is wanted.
func TestCompletionIsDynamic(t *testing.T) {
	c := newCLI(t)
	c.ok("load", "encap")
	c.ok(append([]string{"tunnel", "add"}, tunnelArgs...)...)
	complete := func(args ...string) []string {
		t.Helper()
		out := c.ok(append([]string{"__complete"}, args...)...).Stdout
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) == 0 || lines[len(lines)-1] != ":4" { // ShellCompDirectiveNoFileComp
			t.Errorf("%v: directive %q, want :4 (no file names)", args, lines[len(lines)-1])
		}
		return lines[:len(lines)-1]
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"attach", ""}, []string{"encap", "decap", "l2tp-encap", "route"}},
		{[]string{"attach", "encap", ""}, []string{"wl0", "ul0", "x0"}}, // in --netns
		{[]string{"load", ""}, []string{"encap", "l2tp", "xconnect", "mux", "route"}},
		{[]string{"tunnel", "add", "--proto", ""}, []string{"geneve", "vxlan", "vlan"}},
		{[]string{"attach", "encap", "wl0", "--hook", ""}, []string{"xdp", "tc"}},
		{[]string{"tunnel", "get", "--inner-src", ""}, []string{"10.0.0.1"}},
		{[]string{"tunnel", "add", "--underlay", ""}, []string{"ul0"}},
		{[]string{"-o", ""}, []string{"table", "json"}},
	} {
		got := complete(tc.args...)
		for _, w := range tc.want {
			if !slicesContains(got, w) {
				t.Errorf("complete %v: %v lacks %s", tc.args, got, w)
			}
		}
	}
	if out := c.ok("completion", "bash").Stdout; !strings.Contains(out, "__start_tunmux") {
		t.Errorf("completion bash:\n%.200s", out)
	}
}

func slicesContains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// 17 (part): a --bpffs with a control character is bad input, for every
// command, and creates nothing.
func TestBPFFSWithAControlCharacter(t *testing.T) {
	c := newCLI(t)
	bad := c.root + "\nother"
	for _, args := range [][]string{{"load", "encap"}, {"status"}, {"tunnel", "list"}} {
		r := testnet.Tunmux(bin, append([]string{"--bpffs", bad}, args...)...)
		if r.Code != exitInvalid || !strings.Contains(r.Stderr, "control character") {
			t.Errorf("%v: want exit 2:\n%s", args, r)
		}
	}
	if _, err := os.Stat(bad); err == nil {
		t.Errorf("%q was created", bad)
	}
}

// 6: every default table fits 80 columns (detail is in -o wide and get),
// with every dataplane loaded and holding entries: status, stats and each
// list.
func TestTablesFitEightyColumns(t *testing.T) {
	c := newCLI(t)
	testnet.Veth(t, c.ns, "p0", c.ns, "p1")
	testnet.Veth(t, c.ns, "q0", c.ns, "q1")
	t.Cleanup(func() {
		for _, dp := range []string{"route", "mux", "xconnect", "l2tp"} {
			testnet.Tunmux(bin, "--bpffs", c.root, "--netns", c.ns.Name, "unload", dp)
		}
	})
	c.ok("load", "encap")
	c.ok("attach", "encap", "wl0")
	c.ok("attach", "decap", "ul0")
	c.ok(append([]string{"tunnel", "add"}, tunnelArgs...)...)
	c.ok("devmap", "add", "x0", "ul0")
	for _, dp := range []string{"l2tp", "xconnect", "mux", "route"} {
		c.ok("load", dp)
	}
	c.ok("l2tp", "session", "add", "--session-id", "4000000001", "--peer-session-id", "4000000002", "--encap", "udp",
		"--local", "[fd00:1234:5678::1]:1701", "--peer", "[fd00:1234:5678::2]:1701", "--cookie", "0102030405060708",
		"--peer-cookie", "0807060504030201", "--eth-iface", "x1", "--tunnel-iface", "ul1", "--peer-mac", "02:00:00:00:0c:02")
	c.ok("xconnect", "add", "p0", "q0")
	c.ok("mux", "carrier", "set", "p1", "--on-miss", "pass")
	c.ok("mux", "member", "add", "m1", "--label", "1", "--create")
	c.ok("mux", "member", "add", "wl1", "--label", "2")
	c.ok("route", "dev", "create", "vxlan0", "--proto", "vxlan", "--local", "192.168.60.1")
	c.ok("route", "dev", "create", "rt0", "--routes")
	c.ok("attach", "route", "rt0")
	c.ok("route", "add", "10.200.0.0/16", "--nexthop", "192.168.60.2,vni=100", "--nexthop", "192.168.60.3,vni=16000000,weight=3")
	c.ok("route", "add", "10.200.7.0/24", "--nexthop", "fd60:1234:5678:9abc::2,vni=7,mac=02:00:00:00:07:07")
	c.ok("peer", "set", "192.168.60.3", "--health", "down", "--probe-port", "9997")
	for _, args := range [][]string{
		{"status"}, {"stats"}, {"stats", "encap"}, {"stats", "l2tp"}, {"stats", "xconnect"}, {"stats", "mux"}, {"stats", "route"},
		{"tunnel", "list"}, {"devmap", "list"}, {"l2tp", "session", "list"}, {"xconnect", "list"},
		{"mux", "member", "list"}, {"mux", "carrier", "show"},
		{"route", "list"}, {"route", "get", "10.200.0.0/16"}, {"route", "dev", "list"}, {"peer", "list"},
	} {
		out := c.ok(args...).Stdout
		if strings.Count(out, "\n") < 1 {
			t.Errorf("%v printed nothing", args)
		}
		for _, line := range strings.Split(out, "\n") {
			if len(line) > 80 {
				t.Errorf("%v: a line of %d columns: %s", args, len(line), line)
			}
		}
	}
	// The detail the default tables leave out is in -o wide.
	if out := c.ok("route", "list", "-o", "wide").Stdout; !strings.Contains(out, "INNER-DST-MAC") || !strings.Contains(out, "02:00:00:00:07:07") {
		t.Errorf("route list -o wide lacks the MAC:\n%s", out)
	}
	if out := c.ok("xconnect", "list", "-o", "wide").Stdout; !strings.Contains(out, "A-TO-B-BYTES") || !strings.Contains(out, "ready (") {
		t.Errorf("xconnect list -o wide lacks the bytes or the readiness:\n%s", out)
	}
}

// 17 (part): a symbolic link inside a root is refused (a dataplane folder
// linked to another root's, a map pin linked to another root's map), so no
// command writes or unloads through it; a file that does not parse creates
// no root.
func TestSymlinksInARootAreRefused(t *testing.T) {
	c := newCLI(t)
	other := testnet.BPFRoot(t, func(r string) { testnet.Tunmux(bin, "--bpffs", r, "unload", "encap") })
	testnet.MustTunmux(t, bin, "--bpffs", other, "load", "encap")
	if err := os.MkdirAll(c.root, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(other, "encap"), filepath.Join(c.root, "encap")); err != nil {
		t.Fatal(err)
	}
	c.expect(exitFailed, append([]string{"tunnel", "add"}, tunnelArgs...), "symbolic link")
	c.expect(exitFailed, []string{"unload", "encap"}, "symbolic link")
	if _, err := os.Stat(filepath.Join(other, "encap", "map_tunnels4")); err != nil {
		t.Errorf("the other root's pins after unload through a link: %v", err)
	}
	os.Remove(filepath.Join(c.root, "encap"))
	// A map pin linked to the other root's map.
	c.ok("load", "encap")
	pin := filepath.Join(c.root, "encap", "map_tunnels4")
	if err := os.Remove(pin); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(other, "encap", "map_tunnels4"), pin); err != nil {
		t.Fatal(err)
	}
	c.expect(exitFailed, append([]string{"tunnel", "add"}, tunnelArgs...), "symbolic link")
	if out := testnet.MustTunmux(t, bin, "--bpffs", other, "tunnel", "list").Stdout; strings.Contains(out, "10.0.0.1") {
		t.Errorf("a tunnel reached the other root through the link:\n%s", out)
	}
	// A bad file creates no root.
	fresh := filepath.Join(filepath.Dir(c.root), "tmxt-never-"+filepath.Base(c.root))
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("encap: [unclosed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := testnet.Tunmux(bin, "--bpffs", fresh, "apply", "-f", bad); r.Code != exitInvalid {
		t.Errorf("apply of a bad file: %s", r)
	}
	if _, err := os.Stat(fresh); err == nil {
		os.RemoveAll(fresh)
		t.Errorf("apply of a bad file created the root %s", fresh)
	}
	// Nor does a file that parses but fails its checks (no such interface).
	unknown := filepath.Join(t.TempDir(), "unknown.yaml")
	if err := os.WriteFile(unknown, []byte("xconnect:\n  pairs: [[nosuch1, nosuch2]]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := testnet.Tunmux(bin, "--bpffs", fresh, "--netns", c.ns.Name, "apply", "-f", unknown); r.Code != exitInvalid || !strings.Contains(r.Stderr, "nosuch1") {
		t.Errorf("apply of a file naming no interface: %s", r)
	}
	if _, err := os.Stat(fresh); err == nil {
		os.RemoveAll(fresh)
		t.Errorf("apply of a file that fails its checks created the root %s", fresh)
	}
}

// 17 (rest): the root is tunmux's own. A root others may open (and so
// lock) is narrowed to 0700, with a warning; a root owned by another user
// is refused by every writer, and nothing under it changes.
func TestRootIsTunmuxsOwn(t *testing.T) {
	c := newCLI(t)
	if err := os.Mkdir(c.root, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(c.root, 0o777); err != nil { // past the umask
		t.Fatal(err)
	}
	if r := c.ok("load", "encap"); !strings.Contains(r.Stderr, "narrowed the mode of "+c.root+" from 0777 to 0700") {
		t.Errorf("load on a 0777 root did not say it narrowed it:\n%s", r)
	}
	if fi, err := os.Stat(c.root); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("root mode after load: %v %v, want 0700", fi.Mode(), err)
	}
	if r := c.ok("attach", "encap", "wl0"); strings.Contains(r.Stderr, "narrowed") {
		t.Errorf("a 0700 root was narrowed again:\n%s", r)
	}
	if err := os.Chown(c.root, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chown(c.root, 0, 0) })
	before := c.snapshot()
	for _, args := range [][]string{append([]string{"tunnel", "add"}, tunnelArgs...), {"detach", "encap", "wl0"}, {"unload", "encap"}, {"load", "xconnect"}} {
		c.expect(exitFailed, args, "owned by uid 65534", "chown 0 "+c.root)
	}
	c.unchanged(before, "writers on a root owned by another user")
}

// 17 (rest): unload removes only the pins tunmux's layout names; a pin or
// folder someone else put in a dataplane's folder is left, with the
// folder, and named in a warning.
func TestUnloadLeavesWhatItDidNotCreate(t *testing.T) {
	c := newCLI(t)
	c.ok("load", "encap")
	c.ok("attach", "encap", "wl0")
	dir := filepath.Join(c.root, "encap")
	for _, name := range []string{"map_foreign", "link_other"} {
		// A map of one's own per pin: pinning a map again moves its pin.
		foreign, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1})
		if err != nil {
			t.Fatal(err)
		}
		err = foreign.Pin(filepath.Join(dir, name))
		foreign.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	r := c.ok("unload", "encap", "-o", "json")
	var res struct {
		Detached, Removed, Left []string
	}
	if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil {
		t.Fatalf("%v: %s", err, r)
	}
	if strings.Join(res.Left, ",") != "link_other,map_foreign,sub" || len(res.Detached) != 1 || len(res.Removed) == 0 {
		t.Errorf("unload: %+v", res)
	}
	if !strings.Contains(r.Stderr, "kept "+dir+": it holds link_other, map_foreign, sub, which tunmux did not create") {
		t.Errorf("no warning naming what was left:\n%s", r)
	}
	left, _ := os.ReadDir(dir)
	var names []string
	for _, e := range left {
		names = append(names, e.Name())
	}
	if strings.Join(names, ",") != "link_other,map_foreign,sub" {
		t.Errorf("the folder after unload holds %v", names)
	}
	c.wantXDP("wl0", false, "unload")
}

// buildTunmux builds tunmux with the version and commit time given, as a
// release of that time would be.
func buildTunmux(t *testing.T, version string, built time.Time, ldflags ...string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "tunmux-"+version)
	flags := append([]string{fmt.Sprintf("-X main.version=%s -X main.commitTime=%d", version, built.Unix())}, ldflags...)
	if err := testnet.BuildTunmuxAt(out, strings.Join(flags, " ")); err != nil {
		t.Fatal(err)
	}
	return out
}

// pinOtherCode replaces a pinned XDP program with other code (as a newer
// build's would be), the way load does: pinned beside, renamed over.
func pinOtherCode(t *testing.T, pin string) {
	t.Helper()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.XDP, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2), asm.Return()}})
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	tmp := filepath.Join(filepath.Dir(pin), "tmp_"+filepath.Base(pin))
	if err := prog.Pin(tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, pin); err != nil {
		t.Fatal(err)
	}
}

// 9: an older tunmux does not silently replace a newer one's programs:
// load refuses (exit 1, nothing changed) unless --allow-downgrade; each load
// that writes programs records who wrote them and whose they replaced, and
// status shows it.
func TestDowngradeIsRefused(t *testing.T) {
	c := newCLI(t)
	newer := buildTunmux(t, "v-new", time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	older := buildTunmux(t, "v-old", time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC))
	t.Cleanup(func() { testnet.Tunmux(bin, "--bpffs", c.root, "unload", "xconnect") })
	as := func(b string, args ...string) testnet.Result {
		return testnet.Tunmux(b, append([]string{"--bpffs", c.root, "--netns", c.ns.Name}, args...)...)
	}
	if r := as(newer, "load", "xconnect"); r.Code != 0 {
		t.Fatal(r)
	}
	if out := c.ok("status", "xconnect").Stdout; !strings.Contains(out, "by tunmux v-new (of 2026-12-01)") {
		t.Errorf("status after the first load:\n%s", out)
	}
	// The newer build's programs are other code than the older build's.
	pin := filepath.Join(c.root, "xconnect", "prog_xconnect")
	pinOtherCode(t, pin)
	tag := func() string {
		p, err := ebpf.LoadPinnedProgram(pin, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		info, _ := p.Info()
		return info.Tag
	}
	before := tag()
	r := as(older, "load", "xconnect")
	if r.Code != exitFailed || !strings.Contains(r.Stderr, "tunmux v-new, built 2026-12-01") || !strings.Contains(r.Stderr, "newer than this tunmux v-old") ||
		!strings.Contains(r.Stderr, "--allow-downgrade") {
		t.Errorf("an older load over newer programs:\n%s", r)
	}
	if tag() != before {
		t.Errorf("the refused load replaced the program")
	}
	r = as(older, "load", "xconnect", "--allow-downgrade")
	if r.Code != 0 || !strings.Contains(r.Stdout, "replaced program code of xconnect (tunmux v-new's), a downgrade") {
		t.Errorf("load --allow-downgrade:\n%s", r)
	}
	if tag() == before {
		t.Errorf("load --allow-downgrade left the newer program")
	}
	if out := c.ok("status", "xconnect").Stdout; !strings.Contains(out, "by tunmux v-old (of 2026-06-01)") ||
		!strings.Contains(out, "a DOWNGRADE (--allow-downgrade), replacing newer tunmux v-new (of 2026-12-01)") {
		t.Errorf("status after the downgrade:\n%s", out)
	}
	var st struct {
		Dataplanes []struct{ Provenance maps.Provenance }
	}
	c.jsonOut(&st, "status", "xconnect")
	if p := st.Dataplanes[0].Provenance; p.Version != "v-old" || p.Replaced != "v-new" || !p.Downgrade {
		t.Errorf("status JSON provenance: %+v", p)
	}
	// An upgrade needs no flag, and says whose programs it replaced.
	pinOtherCode(t, pin)
	if r := as(newer, "load", "xconnect"); r.Code != 0 || !strings.Contains(r.Stdout, "(tunmux v-old's)") || strings.Contains(r.Stdout, "downgrade") {
		t.Errorf("an upgrade:\n%s", r)
	}
	// The same build again changes nothing, and keeps the record.
	if r := as(newer, "load", "xconnect"); r.Code != 0 || !strings.Contains(r.Stdout, "nothing changed") {
		t.Errorf("a second load:\n%s", r)
	}
	if out := c.ok("status", "xconnect").Stdout; !strings.Contains(out, "by tunmux v-new") || !strings.Contains(out, "  replacing tunmux v-old") {
		t.Errorf("status after the upgrade:\n%s", out)
	}
}

// 12: load --max-entries on a loaded dataplane resizes its maps in place:
// entries, counters and links kept; a size below the entries is refused
// (exit 2) and changes nothing.
func TestLoadResizesInPlace(t *testing.T) {
	c := newCLI(t)
	c.ok("load", "encap")
	c.ok("attach", "encap", "wl0")
	c.ok(append([]string{"tunnel", "add"}, tunnelArgs...)...)
	c.ok(append([]string{"tunnel", "add"}, withFlag(tunnelArgs, "--inner-dst", "10.0.0.9")...)...)
	c.ok("tunnel", "add", "--inner-src", "fd00::1", "--inner-dst", "fd00::2", "--proto", "vlan", "--vlan-id", "7", "--underlay", "ul0", "--overlay", "wl0")
	before := c.ok("tunnel", "list", "-o", "json").Stdout
	var st struct {
		Dataplanes []struct {
			Meta  maps.Meta
			Links []struct {
				LinkID int `json:"link_id"`
			}
			Maps []struct {
				Name     string
				Capacity uint32
			}
		}
	}
	c.jsonOut(&st, "status", "encap")
	links := fmt.Sprint(st.Dataplanes[0].Links)

	r := c.ok("load", "encap", "--max-entries", "4096")
	if !strings.Contains(r.Stdout, "resized tunnels tunnels4 tunnel_stats from 1024 to 4096 entries (3 entries moved, links kept)") {
		t.Errorf("grow:\n%s", r)
	}
	if after := c.ok("tunnel", "list", "-o", "json").Stdout; after != before {
		t.Errorf("tunnels after the resize:\n%s\nbefore:\n%s", after, before)
	}
	c.jsonOut(&st, "status", "encap")
	d := st.Dataplanes[0]
	if fmt.Sprint(d.Links) != links || d.Meta.MaxEntries != 4096 {
		t.Errorf("after the resize: links %v (before %s), meta %+v", d.Links, links, d.Meta)
	}
	for _, m := range d.Maps {
		if want := map[string]uint32{"tunnels": 4096, "tunnels4": 4096, "tunnel_stats": 4096, "devmap": 1024}[m.Name]; want != 0 && m.Capacity != want {
			t.Errorf("map %s holds %d, want %d", m.Name, m.Capacity, want)
		}
	}
	// The same size again changes nothing; a size below the entries is refused.
	c.okSays("already loaded, nothing changed", "load", "encap", "--max-entries", "4096")
	snap := c.snapshot()
	c.expect(exitInvalid, []string{"load", "encap", "--max-entries", "1"}, "--max-entries", "is below the 2 entries of encap's map tunnels4")
	c.unchanged(snap, "a refused shrink")
	// encap's counters are an array its tunnels index: it grows, never
	// shrinks, and the refusal gives the steps that do.
	c.expect(exitInvalid, []string{"load", "encap", "--max-entries", "2048"}, "tunnel_stats, an array", "export > state.yaml", "load encap --max-entries 2048")
	c.unchanged(snap, "a refused shrink of an array")
	// A tunnel added after the resize lands, and counts.
	c.ok("tunnel", "del", "--inner-src", "10.0.0.1", "--inner-dst", "10.0.0.9")
	c.ok(append([]string{"tunnel", "add"}, withFlag(tunnelArgs, "--inner-dst", "10.0.0.8")...)...)
	if out := c.ok("tunnel", "list").Stdout; !strings.Contains(out, "10.0.0.8") || !strings.Contains(out, "fd00::2") {
		t.Errorf("tunnels after the resize:\n%s", out)
	}
	// A dataplane whose maps are hashes shrinks to what fits.
	c.ok("load", "l2tp")
	t.Cleanup(func() { testnet.Tunmux(bin, "--bpffs", c.root, "unload", "l2tp") })
	c.ok("l2tp", "session", "add", "--session-id", "1", "--peer-session-id", "2", "--encap", "ip", "--local", "172.16.0.1",
		"--peer", "172.16.0.2", "--eth-iface", "x1", "--tunnel-iface", "ul1", "--peer-mac", "02:00:00:00:0c:02")
	c.okSays("from 1024 to 16 entries", "load", "l2tp", "--max-entries", "16")
	if out := c.ok("l2tp", "session", "list").Stdout; !strings.Contains(out, "172.16.0.2") {
		t.Errorf("sessions after shrinking:\n%s", out)
	}
}

// 13 (rest): the lock is held only to check against the pins and write: a
// command with a bad value says so (exit 2) without waiting for a lock
// another holds, a good one waits and says how long with TUNMUX_LOCK_TRACE.
func TestBadInputDoesNotWaitForTheLock(t *testing.T) {
	c := newCLI(t)
	c.ok("load", "encap")
	f, err := os.Open(c.root)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	// Were it waiting for the lock, it would fail with exit 1 "waited".
	c.expect(exitInvalid, append([]string{"--lock-timeout", "30s", "tunnel", "add"}, withFlag(tunnelArgs, "--underlay", "nosuch0")...), "nosuch0")
	c.expect(exitInvalid, append([]string{"--lock-timeout", "30s", "tunnel", "add"}, withFlag(tunnelArgs, "--vni", "99999999")...), "--vni")
	c.expect(exitFailed, append([]string{"--lock-timeout", "100ms", "tunnel", "add"}, tunnelArgs...), "waited 100ms for the lock")
	if err := unix.Flock(int(f.Fd()), unix.LOCK_UN); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, c.args(append([]string{"tunnel", "add"}, tunnelArgs...))...)
	cmd.Env = append(os.Environ(), "TUNMUX_LOCK_TRACE=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !regexp.MustCompile(`tunmux: lock on `+regexp.QuoteMeta(c.root)+`: waited \d+us, held \d+us`).Match(out) {
		t.Errorf("tunnel add with TUNMUX_LOCK_TRACE=1: %v\n%s", err, out)
	}
}
