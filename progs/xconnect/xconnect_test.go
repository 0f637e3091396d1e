package xconnect_test

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/tunmux/tunmux/dataplane"
	"github.com/tunmux/tunmux/internal/testnet"
	"github.com/tunmux/tunmux/maps"
	"github.com/tunmux/tunmux/netdev"
	"github.com/tunmux/tunmux/progs/xconnect"
)

// xdpMd is struct xdp_md, the context of an XDP test run.
type xdpMd struct {
	Data, DataEnd, DataMeta, IngressIfindex, RxQueueIndex, EgressIfindex uint32
}

func TestRedirectKnownPassUnknown(t *testing.T) {
	testnet.RequireRoot(t)
	ns := testnet.NewNetns(t, "xcp")
	testnet.Veth(t, ns, "a0", ns, "a1")
	testnet.Veth(t, ns, "b0", ns, "b1")
	testnet.Veth(t, ns, "c0", ns, "c1")
	var objs xconnect.XconnectObjects
	if err := xconnect.LoadXconnectObjects(&objs, nil); err != nil {
		t.Fatal(err)
	}
	defer objs.Close()
	st, err := maps.NewXconnectState(map[string]*ebpf.Map{"ports": objs.Ports, "port_stats": objs.PortStats, "port_names": objs.PortNames})
	if err != nil {
		t.Fatal(err)
	}
	root, err := maps.OpenRoot(testnet.BPFRoot(t, nil), true)
	if err != nil {
		t.Fatal(err)
	}
	lock, err := root.Lock(time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Release()
	ifc := map[string]netdev.Iface{}
	ns.Do(t, func() error {
		for _, n := range []string{"a0", "b0", "c0"} {
			i, err := netdev.Lookup(n)
			if err != nil {
				return err
			}
			ifc[n] = i
		}
		return st.PutPair(lock, maps.Pair{
			A: maps.PairEnd{Name: "a0", Ifindex: uint32(ifc["a0"].Index)},
			B: maps.PairEnd{Name: "b0", Ifindex: uint32(ifc["b0"].Index)},
		})
	})
	names, err := dataplane.XconnectDataplane.CounterNames()
	if err != nil {
		t.Fatal(err)
	}
	name := func(i int) string { return names[i][0] + "/" + names[i][1] }
	frame := testnet.ICMPFrame(t, net.HardwareAddr{2, 0, 0, 0, 0, 1}, net.HardwareAddr{2, 0, 0, 0, 0, 2}, "10.9.0.1", "10.9.0.2", 32)
	run := func(in string, want xconnect.XconnectStat) (uint32, []byte) {
		t.Helper()
		before := testnet.Counters(t, objs.Stats)
		out := make([]byte, len(frame)+256)
		var ret uint32
		ns.Do(t, func() error {
			opts := &ebpf.RunOptions{Data: frame, DataOut: out, Context: xdpMd{DataEnd: uint32(len(frame)), IngressIfindex: uint32(ifc[in].Index)}}
			r, err := objs.Xconnect.Run(opts)
			ret, out = r, opts.DataOut
			return err
		})
		testnet.OneCounterMoved(t, before, testnet.Counters(t, objs.Stats), int(want), name)
		return ret, out
	}
	for _, in := range []string{"a0", "b0"} {
		if ret, out := run(in, xconnect.XconnectStatS_XCONNECT__REDIRECT); ret != 4 || !bytes.Equal(out, frame) {
			t.Errorf("frame from %s: verdict %d (want XDP_REDIRECT), changed %v", in, ret, !bytes.Equal(out, frame))
		}
	}
	if ret, out := run("c0", xconnect.XconnectStatS_XCONNECT__PASS_NO_PAIR); ret != 2 || !bytes.Equal(out, frame) {
		t.Errorf("frame from c0, in no pair: verdict %d (want XDP_PASS), changed %v", ret, !bytes.Equal(out, frame))
	}
	pairs, err := st.ListPairs()
	if err != nil || len(pairs) != 1 {
		t.Fatalf("pairs: %+v, %v", pairs, err)
	}
	if p := pairs[0]; p.AtoB.Packets != 1 || p.BtoA.Packets != 1 || p.AtoB.Bytes != uint64(len(frame)) {
		t.Errorf("per-direction counters %+v %+v, want one frame each way", p.AtoB, p.BtoA)
	}
}
