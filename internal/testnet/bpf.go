package testnet

import (
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/tunmux/tunmux/maps"
)

// Verdicts as a BPF_PROG_TEST_RUN returns them.
const (
	XDPDrop       = 1          // XDP_DROP
	XDPPass       = 2          // XDP_PASS
	XDPRedirect   = 4          // XDP_REDIRECT
	TCActShot     = 2          // TC_ACT_SHOT
	TCActRedirect = 7          // TC_ACT_REDIRECT
	TCXNext       = 0xffffffff // TCX_NEXT (-1): on down the chain
)

// SkbCtx is struct __sk_buff, the context of a TC test run.
type SkbCtx struct {
	Len, PktType, Mark, QueueMapping, Protocol, VlanPresent, VlanTci, VlanProto uint32
	Priority, IngressIfindex, Ifindex, TcIndex                                  uint32
	Cb                                                                          [5]uint32
	Hash, TcClassid, Data, DataEnd, NapiID, Family, RemoteIP4, LocalIP4         uint32
	RemoteIP6, LocalIP6                                                         [4]uint32
	RemotePort, LocalPort, DataMeta                                             uint32
	FlowKeys, Tstamp                                                            uint64
	WireLen, GsoSegs                                                            uint32
	Sk                                                                          uint64
	GsoSize, TstampType                                                         uint32
	Hwtstamp                                                                    uint64
}

// XDPMd is struct xdp_md, the context of an XDP test run.
type XDPMd struct {
	Data, DataEnd, DataMeta, IngressIfindex, RxQueueIndex, EgressIfindex uint32
}

// TCIn is the context of a TC test run of a frame received on ifindex.
func TCIn(ifindex int) SkbCtx {
	return SkbCtx{IngressIfindex: uint32(ifindex), Ifindex: uint32(ifindex)}
}

// XDPIn is the context of an XDP test run of frame received on ifindex.
func XDPIn(frame []byte, ifindex int) XDPMd {
	return XDPMd{DataEnd: uint32(len(frame)), IngressIfindex: uint32(ifindex)}
}

// ProgRun is one BPF_PROG_TEST_RUN of a program whose dataplane counts what it
// does in a per-CPU stats map (Counters reads it).
type ProgRun struct {
	Prog  *ebpf.Program
	Stats *ebpf.Map
	Frame []byte
	Ctx   any    // the program's context (SkbCtx, XDPMd), or nil for none
	Room  int    // how many bytes the frame may grow by
	Ns    *Netns // where to run it (redirects resolve ifindexes there); nil: here
	// Want is the one counter the run must move, by one; Name names
	// counters in failure messages.
	Want int
	Name func(int) string
}

// RunCounted runs r.Prog once on r.Frame and fails the test unless exactly
// counter r.Want moved, by one. It returns the verdict and the output frame.
func RunCounted(t testing.TB, r ProgRun) (uint32, []byte) {
	t.Helper()
	before := Counters(t, r.Stats)
	opts := &ebpf.RunOptions{Data: r.Frame, DataOut: make([]byte, len(r.Frame)+r.Room), Context: r.Ctx}
	var ret uint32
	run := func() error {
		var err error
		ret, err = r.Prog.Run(opts)
		return err
	}
	if r.Ns != nil {
		r.Ns.Do(t, run)
	} else if err := run(); err != nil {
		t.Fatal(err)
	}
	OneCounterMoved(t, before, Counters(t, r.Stats), r.Want, r.Name)
	return ret, opts.DataOut
}

// CounterNamer names counter i as tunmux stats does ("section/name"), from
// a dataplane's CounterNames (read from the object's BTF); it fails the
// test if they cannot be read.
func CounterNamer(t testing.TB, counterNames func() ([][2]string, error)) func(int) string {
	t.Helper()
	names, err := counterNames()
	if err != nil {
		t.Fatal(err)
	}
	return func(i int) string { return names[i][0] + "/" + names[i][1] }
}

// Lock opens a fresh, private bpffs root and takes its lock, released when
// the test ends: what state writes that need a lock run under.
func Lock(t testing.TB) *maps.Lock {
	t.Helper()
	return LockRoot(t, nil)
}

// LockRoot is Lock with cleanup run on the root's path when the test ends,
// before the root is removed (to unload what the test loaded there).
func LockRoot(t testing.TB, cleanup func(root string)) *maps.Lock {
	t.Helper()
	root, err := maps.OpenRoot(BPFRoot(t, cleanup), true)
	if err != nil {
		t.Fatal(err)
	}
	lock, err := root.Lock(time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(lock.Release)
	return lock
}
