package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tunmux/tunmux/apply"
	"github.com/tunmux/tunmux/internal/testnet"
)

// fleetTunnels is the size of the fleet benchmarks' state: about what a
// ConfigMap holds (1 MiB).
const fleetTunnels = 5000

// fleetFiles writes the same state of fleetTunnels encap tunnels twice: as
// a plain file, and as a fleet file whose defaults hold them with the
// node's address as ${NODE_IP}, and whose three nodes each replace one.
func fleetFiles(b *testing.B) (plain, fleet string) {
	var p, f strings.Builder
	p.WriteString("encap:\n  tunnels:\n")
	f.WriteString("defaults:\n  encap:\n    tunnels:\n")
	entry := func(i int, outer string) string {
		return fmt.Sprintf("{inner-src: 10.%d.%d.%d, inner-dst: 10.200.0.1, proto: vxlan, vni: %d, outer-src: %s, outer-dst: 192.168.1.2, dst-mac: \"02:00:00:00:00:02\", underlay: ul0, overlay: wl0}",
			1+i/62500, (i/250)%250, 1+i%250, i, outer)
	}
	for i := 0; i < fleetTunnels; i++ {
		fmt.Fprintf(&p, "    - %s\n", entry(i, "192.168.1.1"))
		fmt.Fprintf(&f, "      - %s\n", entry(i, `"${NODE_IP}"`))
	}
	f.WriteString("nodes:\n")
	for n := 1; n <= 3; n++ {
		fmt.Fprintf(&f, "  node-%d:\n    encap:\n      tunnels:\n        - %s\n", n, entry(n, "192.168.1.1"))
	}
	dir := b.TempDir()
	plain, fleet = filepath.Join(dir, "plain.yaml"), filepath.Join(dir, "fleet.yaml")
	for path, text := range map[string]string{plain: p.String(), fleet: f.String()} {
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return plain, fleet
}

// BenchmarkFleet measures what a fleet costs beside the same state in a
// plain file: parsing one node's view of the fleet file (defaults merged
// with its section, variables expanded) beside parsing the plain file,
// in process; and an agent's start on a node whose state is in place
// (`apply --watch --settle 0` to its first report: the adoption, with the
// load that checks for other builds' programs) beside `apply` with nothing to
// change, and an agent of a build whose programs changed (the upgrade in
// place) beside the same.
func BenchmarkFleet(b *testing.B) {
	plain, fleet := fleetFiles(b)
	sel := apply.Selector{Node: "node-2", Lookup: func(string) (string, bool) { return "192.168.1.1", true }}
	for name, file := range map[string]string{"parse-plain": plain, "parse-fleet-node": fleet} {
		data, err := os.ReadFile(file)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				doc, err := apply.ParseFor(file, data, sel)
				if err != nil || doc.Encap == nil || len(doc.Encap.Tunnels) != fleetTunnels {
					b.Fatalf("parse %s: %v", file, err)
				}
			}
		})
	}

	ns := bpftoolBed(b, "flb")
	root := testnet.BPFRoot(b, func(r string) { testnet.Tunmux(bin, "--bpffs", r, "unload", "encap") })
	args := []string{"--bpffs", root, "--netns", ns.Name}
	env := []string{"NODE_IP=192.168.1.1"}
	if r := testnet.TunmuxEnv(bin, env, append(args, "apply", "-f", fleet, "--node", "node-2")...); r.Code != 0 {
		b.Fatal(r)
	}
	newer := filepath.Join(b.TempDir(), "tunmux-newer")
	if err := testnet.BuildTunmuxAt(newer, testnet.CodeVariant(1)); err != nil {
		b.Fatal(err)
	}
	// agentStart times an agent from its start to its first report.
	agentStart := func(b *testing.B, binary string, wantUpgrade bool) {
		start := time.Now()
		// --settle 0: the work of the start, not the default half second
		// a file must stay unchanged before it is applied.
		a := testnet.StartAgent(b, binary, env, append(args, "-o", "json", "apply", "-f", fleet, "--node", "node-2", "--watch", "--settle", "0")...)
		l := a.WaitLine("the agent's first apply", func(testnet.AgentLine) bool { return true })
		d := time.Since(start)
		_ = a.Stop(syscall.SIGTERM, 10*time.Second)
		upgraded := len(l.Result.Changes) == 1 && l.Result.Changes[0].Action == "upgrade"
		if l.Error != "" || upgraded != wantUpgrade || !upgraded && len(l.Result.Changes) != 0 {
			b.Fatalf("the agent's first apply: %+v", l)
		}
		b.ReportMetric(d.Seconds()*1000, "ms")
	}
	b.Run("reapply", func(b *testing.B) {
		d, _ := run(b, "env", append(append([]string{}, env...), append([]string{bin}, append(args, "apply", "-f", fleet, "--node", "node-2")...)...)...)
		b.ReportMetric(d.Seconds()*1000, "ms")
	})
	b.Run("agent-adopts", func(b *testing.B) { agentStart(b, bin, false) })
	// Each run upgrades (newer), then puts this build's programs back (an
	// agent of this build, unmeasured: its build time is unknown, so not
	// a downgrade).
	b.Run("agent-upgrades", func(b *testing.B) {
		agentStart(b, newer, true)
		a := testnet.StartAgent(b, bin, env, append(args, "-o", "json", "apply", "-f", fleet, "--node", "node-2", "--watch", "--settle", "0")...)
		a.WaitLine("the programs put back", func(testnet.AgentLine) bool { return true })
		_ = a.Stop(syscall.SIGTERM, 10*time.Second)
	})
}
