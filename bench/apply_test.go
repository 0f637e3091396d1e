package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/tunmux/tunmux/internal/testnet"
)

// run runs a command under /usr/bin/time, fails the benchmark if it
// fails, and returns its wall time and peak resident memory (MB). (The
// rusage of a child that Go starts counts the memory of this process,
// which it shares until exec.)
func run(b *testing.B, name string, args ...string) (time.Duration, float64) {
	report := filepath.Join(b.TempDir(), "rss")
	cmd := exec.Command("/usr/bin/time", append([]string{"-f", "%M", "-o", report, name}, args...)...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	d := time.Since(start)
	if err != nil {
		b.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	text, err := os.ReadFile(report)
	var kb float64
	if err == nil {
		_, err = fmt.Sscan(string(text), &kb)
	}
	if err != nil {
		b.Fatalf("/usr/bin/time's report %q: %v", text, err)
	}
	return d, kb / 1024
}

// BenchmarkApply measures `tunmux apply` of 100,000 encap tunnels from a
// fresh root and again with nothing to change, as YAML and as JSON, beside
// `bpftool batch file` writing the same 100,000 entries as raw `map update
// pinned` lines into a fresh map of the same dataplane (wall time and peak
// memory); and 10,000 `tunnel add` lines through `tunmux batch` beside one
// `tunmux tunnel add` process per entry (timed over 1,000 and
// extrapolated).
func BenchmarkApply(b *testing.B) {
	ns := bpftoolBed(b, "apb")
	const n = 100000
	line := func(i int) []string {
		return []string{"--inner-src", fmt.Sprintf("10.%d.%d.%d", 1+i/62500, (i/250)%250, 1+i%250), "--inner-dst", "10.200.0.1",
			"--proto", "vxlan", "--vni", fmt.Sprint(i), "--outer-src", "192.168.1.1", "--outer-dst", "192.168.1.2",
			"--dst-mac", "02:00:00:00:00:02", "--underlay", "ul0", "--overlay", "wl0"}
	}
	var yml strings.Builder
	yml.WriteString("encap:\n  tunnels:\n")
	tunnels := make([]map[string]any, 0, n)
	for i := 0; i < n; i++ {
		a := line(i)
		fmt.Fprintf(&yml, "    - {inner-src: %s, inner-dst: %s, proto: %s, vni: %s, outer-src: %s, outer-dst: %s, dst-mac: \"%s\", underlay: %s, overlay: %s}\n",
			a[1], a[3], a[5], a[7], a[9], a[11], a[13], a[15], a[17])
		tunnels = append(tunnels, map[string]any{"inner-src": a[1], "inner-dst": a[3], "proto": a[5], "vni": i, "outer-src": a[9],
			"outer-dst": a[11], "dst-mac": a[13], "underlay": a[15], "overlay": a[17]})
	}
	dir := b.TempDir()
	files := map[string]string{"yaml": filepath.Join(dir, "tunnels.yaml"), "json": filepath.Join(dir, "tunnels.json")}
	js, err := json.MarshalIndent(map[string]any{"encap": map[string]any{"tunnels": tunnels}}, "", " ")
	if err != nil {
		b.Fatal(err)
	}
	for format, text := range map[string][]byte{"yaml": []byte(yml.String()), "json": js} {
		if err := os.WriteFile(files[format], text, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	tunnels, js = nil, nil
	yml.Reset()
	debug.FreeOSMemory() // the files are written: give their text back before timing
	newRoot := func(b *testing.B) string {
		return testnet.BPFRoot(b, func(r string) { testnet.Tunmux(bin, "--bpffs", r, "unload", "encap") })
	}
	report := func(b *testing.B, d time.Duration, rss float64) {
		b.ReportMetric(d.Seconds(), "s")
		b.ReportMetric(n/d.Seconds(), "entries/s")
		b.ReportMetric(rss, "peak-MB")
	}
	var applied string // a root the JSON file was applied to, for bpftool's lines
	for _, format := range []string{"yaml", "json"} {
		suffix := map[string]string{"yaml": "", "json": "-json"}[format]
		// The root lives as long as the benchmark: "again" applies the file
		// to what the last fresh apply left (a sub-benchmark's cleanup
		// would remove it as soon as that sub-benchmark ends).
		root := newRoot(b)
		b.Run("apply-100000"+suffix, func(b *testing.B) {
			testnet.Tunmux(bin, "--bpffs", root, "unload", "encap") // fresh: nothing loaded (an error the first time)
			d, rss := run(b, bin, "--bpffs", root, "--netns", ns.Name, "apply", "-f", files[format])
			report(b, d, rss)
		})
		b.Run("reapply-100000"+suffix, func(b *testing.B) {
			d, rss := run(b, bin, "--bpffs", root, "--netns", ns.Name, "apply", "-f", files[format])
			report(b, d, rss)
		})
		applied = root
	}
	b.Run("bpftool-batch-100000", func(b *testing.B) {
		// The same 100,000 entries, as raw map updates into a fresh map.
		out, err := exec.Command("bpftool", "-j", "map", "dump", "pinned", filepath.Join(applied, "encap", "map_tunnels4")).Output()
		if err != nil {
			b.Fatal(err)
		}
		var entries []struct{ Key, Value []string }
		if err := json.Unmarshal(out, &entries); err != nil || len(entries) != n {
			b.Fatalf("bpftool map dump: %d entries, %v", len(entries), err)
		}
		root := newRoot(b)
		testnet.MustTunmux(b, bin, "--bpffs", root, "load", "encap", "--max-entries", fmt.Sprint(n))
		pin := filepath.Join(root, "encap", "map_tunnels4")
		var batch strings.Builder
		hex := func(words []string) string { return strings.ReplaceAll(strings.Join(words, " "), "0x", "") }
		for _, e := range entries {
			fmt.Fprintf(&batch, "map update pinned %s key hex %s value hex %s\n", pin, hex(e.Key), hex(e.Value))
		}
		file := filepath.Join(b.TempDir(), "batch.txt")
		if err := os.WriteFile(file, []byte(batch.String()), 0o644); err != nil {
			b.Fatal(err)
		}
		d, rss := run(b, "bpftool", "batch", "file", file)
		report(b, d, rss)
	})
	b.Run("batch-10000", func(b *testing.B) {
		// tunmux batch: 10,000 tunnel add lines in one process (the
		// tunnel-add-x1000 run below gives the rate of one process each).
		root := newRoot(b)
		testnet.MustTunmux(b, bin, "--bpffs", root, "load", "encap", "--max-entries", "16384")
		var lines strings.Builder
		for i := 0; i < 10000; i++ {
			fmt.Fprintf(&lines, "tunnel add %s\n", strings.Join(line(i), " "))
		}
		cmds := filepath.Join(b.TempDir(), "tunnels.txt")
		if err := os.WriteFile(cmds, []byte(lines.String()), 0o644); err != nil {
			b.Fatal(err)
		}
		d, _ := run(b, bin, "--bpffs", root, "--netns", ns.Name, "batch", "-f", cmds)
		b.ReportMetric(d.Seconds(), "s")
		b.ReportMetric(10000/d.Seconds(), "entries/s")
	})
	b.Run("tunnel-add-x1000", func(b *testing.B) {
		root := newRoot(b)
		testnet.MustTunmux(b, bin, "--bpffs", root, "load", "encap", "--max-entries", "2048")
		start := time.Now()
		for i := 0; i < 1000; i++ {
			testnet.MustTunmux(b, bin, append([]string{"--bpffs", root, "--netns", ns.Name, "tunnel", "add"}, line(i)...)...)
		}
		d := time.Since(start)
		b.ReportMetric(d.Seconds()*n/1000, "s")
		b.ReportMetric(1000/d.Seconds(), "entries/s")
	})
}
