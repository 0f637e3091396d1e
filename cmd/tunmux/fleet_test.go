package main

import (
	"encoding/json"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/tunmux/tunmux/internal/testnet"
)

// A fleet file for the CLI tests: every node cross-connects p0 with an
// end named by its environment; node a adds q0-q1 and replaces p0's pair.
const fleetYAML = `defaults:
  xconnect:
    pairs:
      - {a: p0, b: "${END}"}
nodes:
  a:
    xconnect:
      pairs:
        - {a: p0, b: p1, mode: generic}
        - [q0, q1]
  b:
`

// Per-node sections: --node picks the node (default $NODE_NAME), --dry-run
// shows that node's view, an unknown node without defaults exits 2 and
// creates nothing, and a variable no one set is a problem at its line.
func TestApplyPicksTheNode(t *testing.T) {
	c := newApplyCLI(t)
	file := writeFile(t, "fleet.yaml", fleetYAML)
	env := func(vars ...string) func(args ...string) testnet.Result {
		return func(args ...string) testnet.Result {
			return testnet.TunmuxEnv(bin, vars, c.args(args)...)
		}
	}

	r := env("END=q0")("apply", "-f", file, "--node", "a", "--dry-run")
	if r.Code != 0 || !strings.Contains(r.Stdout, "node a (nodes.a over defaults)") || !strings.Contains(r.Stdout, "q0") ||
		!strings.Contains(r.Stdout, "2 to add") {
		t.Errorf("node a's view:\n%s", r)
	}
	// $NODE_NAME picks the node when --node is not given; b gets the
	// defaults, with its END.
	var res struct {
		applyResult
		Fleet struct {
			Node   string
			Listed bool
			Nodes  []string
		}
	}
	r = env("NODE_NAME=b", "END=q1")("-o", "json", "apply", "-f", file, "--dry-run")
	if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil || r.Code != 0 {
		t.Fatalf("dry run as b: %v\n%s", err, r)
	}
	if res.Fleet.Node != "b" || !res.Fleet.Listed || strings.Join(res.Fleet.Nodes, ",") != "a,b" || len(res.Changes) != 2 ||
		res.Changes[1].Key != "p0<->q1" {
		t.Errorf("b's view: %+v", res)
	}
	// Another node gets the defaults alone, and says so.
	if r := env("END=q1")("apply", "-f", file, "--node", "c", "--dry-run"); r.Code != 0 || !strings.Contains(r.Stdout, "not among the file's nodes: defaults only") ||
		!strings.Contains(r.Stderr, "node c is not among the file's nodes (a, b): it gets the defaults alone") {
		t.Errorf("an unlisted node:\n%s", r)
	}
	// Without END, the defaults' pair is a problem at line 4; node a
	// replaces that pair, so it needs no END.
	c.expect(2, []string{"apply", "-f", file, "--node", "b"}, "fleet.yaml:4:", "${END} is not set")
	if r := c.run("apply", "-f", file, "--node", "a", "--dry-run"); r.Code != 0 {
		t.Errorf("node a without END:\n%s", r)
	}

	// A file without defaults: an unknown node is exit 2, nothing made.
	noDefaults := writeFile(t, "nodes.yaml", "nodes:\n  a: {xconnect: {pairs: [[p0, p1]]}}\n")
	os.RemoveAll(c.root)
	c.expect(2, []string{"apply", "-f", noDefaults, "--node", "zz"}, `--node "zz": is not among the file's nodes`, "one of a")
	if _, err := os.Stat(c.root); !os.IsNotExist(err) {
		t.Errorf("the refused apply made the root: %v", err)
	}
	c.expect(2, []string{"apply", "-f", noDefaults, "--node", ""}, "--node", "is empty")

	// Applied for real, as node a: its pairs, in its mode.
	r = env("END=q0")("apply", "-f", file, "--node", "a")
	if r.Code != 0 || !strings.Contains(r.Stdout, "applied "+file+", node a") {
		t.Fatalf("apply as a:\n%s", r)
	}
	var got []string
	for _, p := range c.pairsOf() {
		ends := []string{p.A.Name, p.B.Name}
		sort.Strings(ends)
		got = append(got, strings.Join(ends, "-"))
	}
	sort.Strings(got)
	if strings.Join(got, " ") != "p0-p1 q0-q1" {
		t.Errorf("pairs after node a's apply: %v", got)
	}
	if r := env("END=q0")("apply", "-f", file, "--node", "a"); r.Code != 0 || !strings.Contains(r.Stdout, "no changes") {
		t.Errorf("apply as a again:\n%s", r)
	}
}
