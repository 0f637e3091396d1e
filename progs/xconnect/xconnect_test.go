package xconnect_test

import (
	"bytes"
	"net"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/tunmux/tunmux/dataplane"
	"github.com/tunmux/tunmux/internal/testnet"
	"github.com/tunmux/tunmux/maps"
	"github.com/tunmux/tunmux/netdev"
	"github.com/tunmux/tunmux/progs/xconnect"
)

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
	lock := testnet.Lock(t)
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
	name := testnet.CounterNamer(t, dataplane.XconnectDataplane.CounterNames)
	frame := testnet.ICMPFrame(t, net.HardwareAddr{2, 0, 0, 0, 0, 1}, net.HardwareAddr{2, 0, 0, 0, 0, 2}, "10.9.0.1", "10.9.0.2", 32)
	run := func(in string, want xconnect.XconnectStat) (uint32, []byte) {
		t.Helper()
		return testnet.RunCounted(t, testnet.ProgRun{Prog: objs.Xconnect, Stats: objs.Stats, Frame: frame, Ctx: testnet.XDPIn(frame, ifc[in].Index), Room: 256, Ns: ns,
			Want: int(want), Name: name})
	}
	for _, in := range []string{"a0", "b0"} {
		if ret, out := run(in, xconnect.XconnectStatS_XCONNECT__REDIRECT); ret != testnet.XDPRedirect || !bytes.Equal(out, frame) {
			t.Errorf("frame from %s: verdict %d (want XDP_REDIRECT), changed %v", in, ret, !bytes.Equal(out, frame))
		}
	}
	if ret, out := run("c0", xconnect.XconnectStatS_XCONNECT__PASS_NO_PAIR); ret != testnet.XDPPass || !bytes.Equal(out, frame) {
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
