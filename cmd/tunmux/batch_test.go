package main

import (
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestBatch: the commands of a file run in one process, as they would one
// by one; the batch stops at the first failure naming its line, or with
// --continue goes on; -o json prints a line each; standard input works.
func TestBatch(t *testing.T) {
	c := newCLI(t)
	add := func(dst, vlan string) string {
		return "tunnel add --inner-src 10.0.0.1 --inner-dst " + dst + " --proto vlan --vlan-id " + vlan + " --underlay ul0 --overlay wl0"
	}
	file := writeFile(t, "cmds.txt", strings.Join([]string{
		"# tunnels", "load encap", add("10.0.0.2", "7"), "tunmux " + add("10.0.0.3", "8") + "   # the word tunmux may stand first", "",
		add("10.0.0.4", "99999"), add("10.0.0.5", "9"),
	}, "\n"))
	r := c.expect(exitInvalid, []string{"batch", "-f", file}, "batch: line 6", "--vlan-id", "line 6 failed (exit 2)")
	if !strings.Contains(r.Stdout, "vlan 8") {
		t.Errorf("the commands' output is not there:\n%s", r.Stdout)
	}
	var ts []struct{ InnerDst string }
	c.jsonOut(&ts, "tunnel", "list")
	if len(ts) != 2 {
		t.Fatalf("after a batch stopped at line 6: %d tunnels, want 2", len(ts))
	}

	// --continue, -o json: every line reported, the code of the first failure.
	r = c.run("-o", "json", "batch", "-f", file, "--continue")
	if r.Code != exitFailed {
		t.Errorf("--continue: exit %d, want 1 (line 3 exists already)\n%s", r.Code, r)
	}
	var lines []batchLine
	for _, l := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
		var bl batchLine
		if err := json.Unmarshal([]byte(l), &bl); err != nil {
			t.Fatalf("not a JSON line: %q", l)
		}
		lines = append(lines, bl)
	}
	if len(lines) != 5 || lines[1].Line != 3 || lines[1].Exit != 1 || lines[3].Line != 6 || lines[3].Exit != 2 || lines[4].Exit != 0 || lines[4].Output == nil {
		t.Errorf("JSON lines: %+v", lines)
	}
	c.jsonOut(&ts, "tunnel", "list")
	if len(ts) != 3 {
		t.Errorf("after --continue: %d tunnels, want 3", len(ts))
	}

	// Standard input, and what a batch refuses.
	cmd := exec.Command(bin, c.args([]string{"batch", "-f", "-"})...)
	cmd.Stdin = strings.NewReader("tunnel del --inner-src 10.0.0.1 --inner-dst 10.0.0.5\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("batch -f -: %v\n%s", err, out)
	}
	c.expect(exitInvalid, []string{"batch", "-f", writeFile(t, "w.txt", "apply -f x.yaml --watch\n")}, "cannot run inside a batch")
	c.expect(exitInvalid, []string{"batch", "-f", writeFile(t, "q.txt", "tunnel list 'oops\n")}, "line 1", "not closed")
	c.expect(exitInvalid, []string{"batch"}, "-f")
	c.expect(exitInvalid, []string{"batch", "-f", "/no/such/file"}, "-f", "no such file")
}

func TestSplitLine(t *testing.T) {
	for _, tc := range []struct {
		line string
		want []string
	}{
		{"tunnel add --vni 5", []string{"tunnel", "add", "--vni", "5"}},
		{"  load encap   # a comment", []string{"load", "encap"}},
		{"# only a comment", nil},
		{`peer set fd00::2 --health 'down'`, []string{"peer", "set", "fd00::2", "--health", "down"}},
		{`route add 10.0.0.0/8 --nexthop "192.168.1.2,vni=7" --x a\ b`, []string{"route", "add", "10.0.0.0/8", "--nexthop", "192.168.1.2,vni=7", "--x", "a b"}},
		{`echo "a # not a comment"`, []string{"echo", "a # not a comment"}},
		{`a ""`, []string{"a", ""}},
	} {
		got, err := splitLine(tc.line)
		if err != nil || !slices.Equal(got, tc.want) || (got == nil) != (tc.want == nil) {
			t.Errorf("splitLine(%q) = %q, %v; want %q", tc.line, got, err, tc.want)
		}
	}
	for _, bad := range []string{`a 'b`, `a "b`} {
		if _, err := splitLine(bad); err == nil {
			t.Errorf("splitLine(%q): no error", bad)
		}
	}
}
