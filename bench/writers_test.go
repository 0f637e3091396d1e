package bench

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tunmux/tunmux/internal/testnet"
)

// lockTrace is what a command says on standard error with
// TUNMUX_LOCK_TRACE=1.
var lockTrace = regexp.MustCompile(`lock on \S+: waited (\d+)us, held (\d+)us`)

// writerRun is the outcome of concurrent writers: per operation, its wall
// time and the lock's wait and hold, and the operations that failed.
type writerRun struct {
	mu               sync.Mutex
	wall, wait, held []time.Duration
	failed           int
	firstFailure     string
	start, end       time.Time
}

func (r *writerRun) add(wall, wait, held time.Duration, err error, out []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.failed++
		if r.firstFailure == "" {
			r.firstFailure = fmt.Sprintf("%v: %s", err, out)
		}
		return
	}
	r.wall, r.wait, r.held = append(r.wall, wall), append(r.wait, wait), append(r.held, held)
}

// quantile returns the q quantile of ds in milliseconds.
func quantile(ds []time.Duration, q float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return float64(s[int(q*float64(len(s)-1))].Microseconds()) / 1000
}

// writers runs n writers at once, each running ops commands one after the
// other (args(writer, op) gives each), with TUNMUX_LOCK_TRACE=1.
func writers(b *testing.B, n, ops int, args func(w, op int) []string) *writerRun {
	r := &writerRun{start: time.Now()}
	var wg sync.WaitGroup
	for w := 0; w < n; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for op := 0; op < ops; op++ {
				cmd := exec.Command(bin, args(w, op)...)
				cmd.Env = append(os.Environ(), "TUNMUX_LOCK_TRACE=1")
				start := time.Now()
				out, err := cmd.CombinedOutput()
				wall := time.Since(start)
				var wait, held time.Duration
				if m := lockTrace.FindSubmatch(out); m != nil {
					us, _ := strconv.Atoi(string(m[1]))
					wait = time.Duration(us) * time.Microsecond
					us, _ = strconv.Atoi(string(m[2]))
					held = time.Duration(us) * time.Microsecond
				}
				r.add(wall, wait, held, err, out)
			}
		}()
	}
	wg.Wait()
	r.end = time.Now()
	return r
}

func (r *writerRun) report(b *testing.B) {
	if r.failed > 0 {
		b.Errorf("%d operations failed; the first: %s", r.failed, r.firstFailure)
	}
	b.ReportMetric(float64(r.failed), "failed")
	b.ReportMetric(float64(len(r.wall))/r.end.Sub(r.start).Seconds(), "ops/s")
	b.ReportMetric(quantile(r.wall, 0.5), "p50-ms")
	b.ReportMetric(quantile(r.wall, 0.99), "p99-ms")
	b.ReportMetric(quantile(r.wait, 0.5), "wait-p50-ms")
	b.ReportMetric(quantile(r.wait, 0.99), "wait-p99-ms")
	b.ReportMetric(quantile(r.wait, 1), "wait-max-ms")
	b.ReportMetric(quantile(r.held, 0.5), "held-p50-ms")
}

// BenchmarkWriters runs `tunnel add` processes from 16 writers at once, 500
// each (8,000 adds, the default lock timeout), beside one writer alone
// (500 adds), and 16 writers adding and deleting (150 each, 2,400 in all):
// no operation may fail; it reports the rate, each operation's wall time
// and its wait for the lock and hold of it (TUNMUX_LOCK_TRACE=1).
func BenchmarkWriters(b *testing.B) {
	ns := bpftoolBed(b, "wrb")
	root := testnet.BPFRoot(b, func(r string) { testnet.Tunmux(bin, "--bpffs", r, "unload", "encap") })
	testnet.MustTunmux(b, bin, "--bpffs", root, "load", "encap", "--max-entries", "16384")
	tunnel := func(verb string, w, op int) []string {
		args := []string{"--bpffs", root, "--netns", ns.Name, "tunnel", verb, "--inner-src", fmt.Sprintf("10.%d.%d.1", 1+w, op/250), "--inner-dst", fmt.Sprintf("10.200.%d.%d", op/250, 1+op%250)}
		if verb == "add" {
			args = append(args, "--proto", "vxlan", "--vni", fmt.Sprint(1+op), "--outer-src", "192.168.1.1", "--outer-dst", "192.168.1.2",
				"--dst-mac", "02:00:00:00:00:02", "--underlay", "ul0", "--overlay", "wl0")
		}
		return args
	}
	b.Run("one-writer-500-adds", func(b *testing.B) {
		writers(b, 1, 500, func(_, op int) []string { return tunnel("add", 100, op) }).report(b)
	})
	b.Run("16-writers-500-adds", func(b *testing.B) {
		writers(b, 16, 500, func(w, op int) []string { return tunnel("add", w, op) }).report(b)
	})
	b.Run("16-writers-150-add-del", func(b *testing.B) {
		writers(b, 16, 150, func(w, op int) []string {
			if op%2 == 0 {
				return tunnel("add", 20+w, op/2)
			}
			return tunnel("del", 20+w, op/2)
		}).report(b)
	})
}
