package bench

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/tunmux/tunmux/internal/testnet"
	"github.com/tunmux/tunmux/maps"
	"github.com/tunmux/tunmux/netdev"
	"github.com/tunmux/tunmux/progs/xconnect"
)

// xdpProgram is an XDP program that returns verdict.
func xdpProgram(b *testing.B, verdict int32) *ebpf.Program {
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type: ebpf.XDP, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, verdict), asm.Return()},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	return p
}

// liveBed is where the live-frame benchmarks run: frames "arrive" on veth
// in0 and go to veth out0, whose peer out1 runs an XDP program returning
// peerVerdict.
type liveBed struct {
	ns  *testnet.Netns
	in  netdev.Iface
	out netdev.Iface
}

func newLiveBed(b *testing.B, prefix string, peerVerdict int32) *liveBed {
	testnet.RequireRoot(b)
	e := &liveBed{ns: testnet.NewNetns(b, prefix)}
	testnet.Veth(b, e.ns, "in0", e.ns, "in1")
	testnet.Veth(b, e.ns, "out0", e.ns, "out1")
	peer := xdpProgram(b, peerVerdict)
	e.ns.Do(b, func() error {
		var err error
		if e.in, err = netdev.Lookup("in0"); err != nil {
			return err
		}
		if e.out, err = netdev.Lookup("out0"); err != nil {
			return err
		}
		out1, err := netdev.Lookup("out1")
		if err != nil {
			return err
		}
		l, err := link.AttachXDP(link.XDPOptions{Program: peer, Interface: out1.Index, Flags: link.XDPDriverMode})
		if err != nil {
			return err
		}
		b.Cleanup(func() { l.Close() })
		return nil
	})
	return e
}

// liveCPU is the CPU the live-frame runs are pinned to (the last one; CPU
// 0 takes most of a machine's housekeeping): the frames are made, run and
// redirected on it, so that rounds spread less and the floor is not
// limited by migrations between CPUs.
var liveCPU = runtime.NumCPU() - 1

// run runs prog b.N times on frame in live-frame mode, as if received on
// in0, with the benchmark timer on and the thread pinned to liveCPU (after
// an untimed tenth, to settle caches), and returns how long the runs took
// and the program's own run time per run (from bpf_stats, 0 unless
// enableStats turned it on: timing each run costs the kernel two clock
// reads, which on this class of machine is more than the floor program,
// so packet rates are measured with it off).
func (e *liveBed) run(b *testing.B, prog *ebpf.Program, frame []byte) (time.Duration, float64) {
	var elapsed time.Duration
	var runNs float64
	b.ResetTimer()
	e.ns.Do(b, func() error {
		// ns.Do runs this on a thread of its own, discarded afterwards.
		var cpus unix.CPUSet
		cpus.Set(liveCPU)
		if err := unix.SchedSetaffinity(0, &cpus); err != nil {
			return fmt.Errorf("pin to CPU %d: %w", liveCPU, err)
		}
		opts := &ebpf.RunOptions{Data: frame, Repeat: uint32(max(b.N/10, 1)), Flags: unix.BPF_F_TEST_XDP_LIVE_FRAMES, Context: testnet.XDPIn(frame, e.in.Index)}
		if _, err := prog.Run(opts); err != nil {
			return err
		}
		before, err := prog.Stats()
		if err != nil {
			return err
		}
		opts.Repeat = uint32(b.N)
		start := time.Now()
		_, err = prog.Run(opts)
		elapsed = time.Since(start)
		if err != nil {
			return err
		}
		after, err := prog.Stats()
		if err != nil {
			return err
		}
		if n := after.RunCount - before.RunCount; n > 0 {
			runNs = float64((after.Runtime - before.Runtime).Nanoseconds()) / float64(n)
		}
		return nil
	})
	b.StopTimer()
	return elapsed, runNs
}

// enableStats turns bpf_stats on (the kernel then times every program
// run) until the returned function is called.
func enableStats(b *testing.B) (disable func()) {
	closer, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		b.Fatalf("enable bpf_stats: %v", err)
	}
	return func() { closer.Close() }
}

// BenchmarkXconnect measures frames per second from veth in0 to veth out0
// (whose peer drops them at XDP) with XDP live frames: through the xconnect
// program, and through a Linux bridge joining the same two veths (the
// frames enter the stack with XDP_PASS and the bridge forwards them).
func BenchmarkXconnect(b *testing.B) {
	for _, path := range []string{"xconnect", "bridge"} {
		b.Run(path, func(b *testing.B) {
			e := newLiveBed(b, "xcb", testnet.XDPDrop)
			ns, in, out := e.ns, e.in, e.out
			var prog *ebpf.Program
			var hits func() uint64
			if path == "bridge" {
				ns.Run(b, "ip", "link", "add", "br0", "type", "bridge")
				ns.Run(b, "ip", "link", "set", "in0", "master", "br0")
				ns.Run(b, "ip", "link", "set", "out0", "master", "br0")
				ns.Run(b, "ip", "link", "set", "br0", "up")
				ns.WaitUp(b, "br0")
				prog = xdpProgram(b, testnet.XDPPass)
				hits = func() uint64 { return txPackets(b, ns, "out0") }
			} else {
				var objs xconnect.XconnectObjects
				if err := xconnect.LoadXconnectObjects(&objs, nil); err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { objs.Close() })
				st, err := maps.NewXconnectState(map[string]*ebpf.Map{"ports": objs.Ports, "port_stats": objs.PortStats, "port_names": objs.PortNames})
				if err != nil {
					b.Fatal(err)
				}
				ns.Do(b, func() error {
					return st.PutPair(nil, maps.Pair{A: maps.PairEnd{Name: "in0", Ifindex: uint32(in.Index)}, B: maps.PairEnd{Name: "out0", Ifindex: uint32(out.Index)}})
				})
				prog = objs.Xconnect
				hits = func() uint64 { return testnet.Counters(b, objs.Stats)[xconnect.XconnectStatS_XCONNECT__REDIRECT] }
			}
			frame := frame64(b, 9, 1, 2)
			before := hits()
			elapsed, _ := e.run(b, prog, frame)
			// The frames that reached out0, counted where they leave: the
			// bridge may drop some under load, so count what crossed.
			n := hits() - before
			if n == 0 {
				b.Fatalf("no frame crossed from in0 to out0")
			}
			b.ReportMetric(float64(n)/elapsed.Seconds(), "pps")
			b.ReportMetric(float64(n)/float64(b.N), "delivered")
		})
	}
}

// txPackets is the number of packets dev transmitted in ns.
func txPackets(b *testing.B, ns *testnet.Netns, dev string) uint64 {
	out := ns.Run(b, "cat", "/proc/net/dev")
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(strings.Replace(line, ":", " ", 1))
		if len(f) > 10 && f[0] == dev {
			var n uint64
			fmt.Sscan(f[10], &n)
			return n
		}
	}
	b.Fatalf("no %s in /proc/net/dev", dev)
	return 0
}

// BenchmarkMux measures TCP throughput and the rate of 64-byte UDP
// datagrams through a mux member beside the same carrier used directly, in
// the same namespaces: over an Ethernet carrier (a veth pair), and over an
// L3 carrier (two TUN devices relayed by a forwarder in this process, a
// stand-in for a WireGuard link).
func BenchmarkMux(b *testing.B) {
	testnet.RequireRoot(b)
	for _, carrier := range []string{"veth", "tun-relay"} {
		b.Run(carrier, func(b *testing.B) {
			sides := [2]*testnet.Netns{testnet.NewNetns(b, "mba"), testnet.NewNetns(b, "mbb")}
			if carrier == "veth" {
				testnet.Veth(b, sides[0], "c0", sides[1], "c0")
				for i, ns := range sides {
					ns.Run(b, "ip", "addr", "add", fmt.Sprintf("10.250.0.%d/30", i+1), "dev", "c0")
				}
			} else {
				testnet.TUNRelay(b, sides[0], sides[1], "c0", "10.250.0.1/30", "10.250.0.2/30")
			}
			for i, ns := range sides {
				root := testnet.BPFRoot(b, func(r string) { testnet.Tunmux(bin, "--bpffs", r, "unload", "mux") })
				tm := func(args ...string) {
					testnet.MustTunmux(b, bin, append([]string{"--bpffs", root, "--netns", ns.Name}, args...)...)
				}
				tm("load", "mux")
				tm("mux", "carrier", "set", "c0")
				tm("mux", "member", "add", "m1", "--label", "1", "--create")
				ns.Run(b, "ip", "addr", "add", fmt.Sprintf("10.11.1.%d/24", i+1), "dev", "m1")
			}
			benchMuxPaths(b, sides)
		})
	}
}

// benchMuxPaths measures the carrier used directly, then member m1, with
// the default netdev_max_backlog and with 10000.
func benchMuxPaths(b *testing.B, sides [2]*testnet.Netns) {
	for _, path := range []struct {
		name, ip string
		backlog  string
	}{{"carrier", "10.250.0.2", ""}, {"member", "10.11.1.2", ""}, {"member-backlog10k", "10.11.1.2", "10000"}} {
		b.Run(path.name, func(b *testing.B) {
			if path.backlog != "" {
				// Delivery into a member goes through the per-CPU backlog once
				// more; docs/mux.md suggests a larger one at high rates.
				const sysctl = "/proc/sys/net/core/netdev_max_backlog"
				old, err := os.ReadFile(sysctl)
				if err != nil {
					b.Fatal(err)
				}
				if err := os.WriteFile(sysctl, []byte(path.backlog), 0o644); err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { _ = os.WriteFile(sysctl, old, 0o644) })
			}
			testnet.WaitFor(b, 10*time.Second, "a ping to "+path.ip, func() bool {
				_, err := sides[0].Try("ping", "-c", "1", "-W", "1", path.ip)
				return err == nil
			})
			measure(b, sides[0], sides[1], path.ip)
		})
	}
}
