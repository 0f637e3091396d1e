package maps_test

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/tunmux/tunmux/internal/testnet"
	"github.com/tunmux/tunmux/maps"
	"github.com/tunmux/tunmux/progs/encap"
)

// encapMaps loads the encap objects (closed when the test ends) and wraps
// their maps in a state.
func encapMaps(t *testing.T) (*encap.EncapObjects, map[string]*ebpf.Map, *maps.EncapState) {
	testnet.RequireRoot(t)
	objs := &encap.EncapObjects{}
	if err := encap.LoadEncapObjects(objs, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { objs.Close() })
	ms := map[string]*ebpf.Map{"tunnels": objs.Tunnels, "tunnels4": objs.Tunnels4, "tunnel_stats": objs.TunnelStats, "devmap": objs.Devmap, "slots": objs.Slots}
	st, err := maps.NewEncapState(ms)
	if err != nil {
		t.Fatal(err)
	}
	return objs, ms, st
}

// What a state keeps of the tunnels it wrote (which interfaces they use)
// agrees with the map, read afresh, after every kind of write.
func TestInterfaceInUseFollowsWrites(t *testing.T) {
	_, ms, st := encapMaps(t)
	lock := testnet.Lock(t)
	tunnel := func(i int, underlay, overlay uint32) maps.Tunnel {
		return maps.Tunnel{
			TunnelKey: maps.TunnelKey{InnerSrc: netip.MustParseAddr("10.0.0.1"), InnerDst: netip.MustParseAddr(fmt.Sprintf("10.0.1.%d", i))},
			Proto:     maps.ProtoVLAN, VlanID: uint16(i), UnderlayIndex: underlay, OverlayIndex: overlay,
		}
	}
	check := func(step string, want map[uint32]bool) {
		t.Helper()
		fresh, err := maps.NewEncapState(ms)
		if err != nil {
			t.Fatal(err)
		}
		for idx, w := range want {
			kept, err1 := st.InterfaceInUse(idx)
			read, err2 := fresh.InterfaceInUse(idx)
			if err1 != nil || err2 != nil || kept != w || read != w {
				t.Errorf("%s: ifindex %d in use: kept %v, read afresh %v, want %v (%v %v)", step, idx, kept, read, w, err1, err2)
			}
		}
	}
	check("empty", map[uint32]bool{3: false, 5: false})
	for i := 1; i <= 2; i++ {
		if err := st.PutTunnel(lock, tunnel(i, 3, 5), maps.Add); err != nil {
			t.Fatal(err)
		}
	}
	check("two tunnels over 3 and 5", map[uint32]bool{3: true, 5: true, 7: false})
	if err := st.PutTunnel(lock, tunnel(1, 7, 5), maps.Update); err != nil {
		t.Fatal(err)
	}
	check("one moved to 7", map[uint32]bool{3: true, 5: true, 7: true})
	if err := st.DeleteTunnel(lock, tunnel(2, 0, 0).TunnelKey); err != nil {
		t.Fatal(err)
	}
	check("the one over 3 deleted", map[uint32]bool{3: false, 5: true, 7: true})
	if err := st.PutTunnels(lock, []maps.Tunnel{tunnel(1, 9, 9), tunnel(4, 9, 5)}, 0); err != nil {
		t.Fatal(err)
	}
	check("a batch write", map[uint32]bool{3: false, 5: true, 7: false, 9: true})
	if err := st.DeleteTunnels(lock, []maps.TunnelKey{tunnel(1, 0, 0).TunnelKey, tunnel(4, 0, 0).TunnelKey}, 0); err != nil {
		t.Fatal(err)
	}
	check("a batch delete", map[uint32]bool{5: false, 9: false})
}

// A new tunnel that takes the counter index of a deleted one counts from
// zero, whether written alone or in a batch.
func TestNewTunnelsCountFromZero(t *testing.T) {
	objs, _, st := encapMaps(t)
	lock := testnet.Lock(t)
	tunnel := func(i int) maps.Tunnel {
		return maps.Tunnel{
			TunnelKey: maps.TunnelKey{InnerSrc: netip.MustParseAddr("10.0.0.1"), InnerDst: netip.MustParseAddr(fmt.Sprintf("10.0.1.%d", i))},
			Proto:     maps.ProtoVLAN, VlanID: uint16(i), UnderlayIndex: 3, OverlayIndex: 5,
		}
	}
	dirty := make([]encap.EncapTunnelCounters, ebpf.MustPossibleCPU())
	for i := range dirty {
		dirty[i].TxPackets = 7
	}
	for round, put := range []func(maps.Tunnel) error{
		func(tn maps.Tunnel) error { return st.PutTunnel(lock, tn, maps.Add) },
		func(tn maps.Tunnel) error { return st.PutTunnels(lock, []maps.Tunnel{tn}, 0) },
	} {
		old, fresh := tunnel(2*round+1), tunnel(2*round+2)
		if err := put(old); err != nil {
			t.Fatal(err)
		}
		got, err := st.GetTunnel(old.TunnelKey)
		if err != nil {
			t.Fatal(err)
		}
		if err := objs.TunnelStats.Update(got.CounterIndex, dirty, ebpf.UpdateAny); err != nil {
			t.Fatal(err)
		}
		if err := st.DeleteTunnel(lock, old.TunnelKey); err != nil {
			t.Fatal(err)
		}
		if err := put(fresh); err != nil {
			t.Fatal(err)
		}
		if got, err = st.GetTunnel(fresh.TunnelKey); err != nil || got.Counters.TxPackets != 0 {
			t.Errorf("round %d: the new tunnel (index %d) starts at %d packets, %v", round, got.CounterIndex, got.Counters.TxPackets, err)
		}
	}
}
