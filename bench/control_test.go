package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tunmux/tunmux/internal/testnet"
)

// hexWords formats bytes as bpftool takes them: "hex 0a 00 ...".
func hexWords(b []string) []string { return append([]string{"hex"}, b...) }

// timed runs a command and returns its wall time; it fails the benchmark if
// the command fails.
func timed(b *testing.B, name string, args ...string) time.Duration {
	start := time.Now()
	out, err := exec.Command(name, args...).CombinedOutput()
	d := time.Since(start)
	if err != nil {
		b.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return d
}

func median(ds []time.Duration) time.Duration {
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[len(ds)/2]
}

// bpftoolBed is where tunmux is set beside bpftool: a namespace with two
// veth pairs, ul0-ul1 and wl0-wl1 (root and bpftool required).
func bpftoolBed(b *testing.B, prefix string) *testnet.Netns {
	testnet.RequireRoot(b)
	if _, err := exec.LookPath("bpftool"); err != nil {
		b.Skip("bpftool is not installed (scripts/deps.sh installs it)")
	}
	ns := testnet.NewNetns(b, prefix)
	testnet.Veth(b, ns, "ul0", ns, "ul1")
	testnet.Veth(b, ns, "wl0", ns, "wl1")
	return ns
}

// BenchmarkControlPlane times tunmux commands as whole processes beside
// bpftool doing the same to the same pinned map, alternating, 30 runs each:
// tunnel get vs map lookup, tunnel update vs map update, tunnel add + del vs
// map update + delete of a new key, status vs map lookup; and, as the floor
// no change inside tunmux can go below, a program that only links tunmux's
// libraries (bench/importfloor) vs map lookup. It reports each median and
// each ratio (tunmux / bpftool).
func BenchmarkControlPlane(b *testing.B) {
	ns := bpftoolBed(b, "cpb")
	root := testnet.BPFRoot(b, func(r string) { testnet.Tunmux(bin, "--bpffs", r, "unload", "encap") })
	tm := []string{"--bpffs", root, "--netns", ns.Name}
	testnet.MustTunmux(b, bin, append(tm, "load", "encap")...)
	tunnel := func(dst string, vni int) []string {
		return []string{"--inner-src", "10.0.0.1", "--inner-dst", dst, "--proto", "vxlan", "--vni", fmt.Sprint(vni),
			"--outer-src", "192.168.1.1", "--outer-dst", "192.168.1.2", "--dst-mac", "02:00:00:00:00:02", "--underlay", "ul0", "--overlay", "wl0"}
	}
	for i := 2; i < 102; i++ {
		testnet.MustTunmux(b, bin, append(append(tm, "tunnel", "add"), tunnel(fmt.Sprintf("10.0.1.%d", i), i)...)...)
	}
	// The raw key and value of one tunnel (IPv4 inner pairs live in
	// map_tunnels4), for bpftool.
	pin := filepath.Join(root, "encap", "map_tunnels4")
	out, err := exec.Command("bpftool", "-j", "map", "dump", "pinned", pin).Output()
	if err != nil {
		b.Fatal(err)
	}
	var entries []struct{ Key, Value []string }
	if err := json.Unmarshal(out, &entries); err != nil || len(entries) == 0 {
		b.Fatalf("bpftool map dump: %v\n%s", err, out)
	}
	key, val := entries[0].Key, entries[0].Value
	newKey := append([]string(nil), key...)
	newKey[len(newKey)-1] = "fe" // a key no tunnel has: the last byte of the inner destination

	type pair struct {
		name    string
		tunmux  func() time.Duration
		bpftool func() time.Duration
	}
	get := append(append([]string{}, tm...), "tunnel", "get", "--inner-src", "10.0.0.1", "--inner-dst", "10.0.1.2")
	pairs := []pair{
		{"get", func() time.Duration { return timed(b, bin, get...) },
			func() time.Duration {
				return timed(b, "bpftool", append([]string{"map", "lookup", "pinned", pin, "key"}, hexWords(key)...)...)
			}},
		{"update", func() time.Duration {
			return timed(b, bin, append(append([]string{}, tm...), "tunnel", "update", "--inner-src", "10.0.0.1", "--inner-dst", "10.0.1.2", "--vni", "6")...)
		}, func() time.Duration {
			args := append([]string{"map", "update", "pinned", pin, "key"}, hexWords(key)...)
			return timed(b, "bpftool", append(append(args, "value"), hexWords(val)...)...)
		}},
		{"add-del", func() time.Duration {
			d := timed(b, bin, append(append(append([]string{}, tm...), "tunnel", "add"), tunnel("10.0.2.254", 9)...)...)
			return d + timed(b, bin, append(append([]string{}, tm...), "tunnel", "del", "--inner-src", "10.0.0.1", "--inner-dst", "10.0.2.254")...)
		}, func() time.Duration {
			args := append([]string{"map", "update", "pinned", pin, "key"}, hexWords(newKey)...)
			d := timed(b, "bpftool", append(append(args, "value"), hexWords(val)...)...)
			return d + timed(b, "bpftool", append([]string{"map", "delete", "pinned", pin, "key"}, hexWords(newKey)...)...)
		}},
		{"status", func() time.Duration { return timed(b, bin, "--bpffs", root, "status") },
			func() time.Duration {
				return timed(b, "bpftool", append([]string{"map", "lookup", "pinned", pin, "key"}, hexWords(key)...)...)
			}},
	}
	// The floor: a program that only links tunmux's libraries.
	floor := filepath.Join(b.TempDir(), "importfloor")
	build := exec.Command("go", "build", "-o", floor, "./bench/importfloor")
	build.Dir, build.Env = testnet.TopDir(), append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go build ./bench/importfloor: %v\n%s", err, out)
	}
	pairs = append(pairs, pair{"import-floor", func() time.Duration { return timed(b, floor) },
		func() time.Duration {
			return timed(b, "bpftool", append([]string{"map", "lookup", "pinned", pin, "key"}, hexWords(key)...)...)
		}})
	for _, p := range pairs {
		b.Run(p.name, func(b *testing.B) {
			var ts, bs []time.Duration
			for i := 0; i < 30; i++ {
				ts, bs = append(ts, p.tunmux()), append(bs, p.bpftool())
			}
			mt, mb := median(ts), median(bs)
			b.ReportMetric(float64(mt.Microseconds())/1000, "tunmux-ms")
			b.ReportMetric(float64(mb.Microseconds())/1000, "bpftool-ms")
			b.ReportMetric(float64(mt)/float64(mb), "x-bpftool")
		})
	}
}
