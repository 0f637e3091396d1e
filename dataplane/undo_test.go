package dataplane

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/tunmux/tunmux/internal/testnet"
	"github.com/tunmux/tunmux/maps"
	"github.com/tunmux/tunmux/netdev"
)

// desiredTunnels makes n VLAN tunnels 10.0.<first+i>.1 -> .2 between ul0
// and wl0 of the calling thread's namespace.
func desiredTunnels(t *testing.T, first, n int) []DesiredTunnel {
	t.Helper()
	under, err1 := netdev.Lookup("ul0")
	over, err2 := netdev.Lookup("wl0")
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	var out []DesiredTunnel
	for i := first; i < first+n; i++ {
		tn, err := maps.TunnelArgs{InnerSrc: fmt.Sprintf("10.0.%d.1", i), InnerDst: fmt.Sprintf("10.0.%d.2", i), Proto: "vlan",
			VlanID: fmt.Sprint(100 + i), Underlay: "ul0", Overlay: "wl0"}.Parse(nil)
		if err != nil {
			t.Fatal(err)
		}
		tn.UnderlayIndex, tn.OverlayIndex = uint32(under.Index), uint32(over.Index)
		out = append(out, DesiredTunnel{Tunnel: tn, Underlay: &under, Overlay: &over})
	}
	return out
}

// TestEncapApplyIsAllOrNothing: a prune that fits the tunnel map only once
// its removals are done is written removals first; a plan that fails while
// writing (here, more tunnels than the map holds, past the plan's own
// check) is undone, leaving the tunnels and slots as they were.
func TestEncapApplyIsAllOrNothing(t *testing.T) {
	testnet.RequireRoot(t)
	ns := testnet.NewNetns(t, "undo")
	testnet.Veth(t, ns, "ul0", ns, "ul1")
	testnet.Veth(t, ns, "wl0", ns, "wl1")
	root, lock := loadedRoot(t, EncapDataplane, 4)
	e, err := OpenEncap(root)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ns.Do(t, func() error {
		ino, _ := netdev.CurrentInode()
		apply := func(want []DesiredTunnel, prune bool) error {
			plan, err := e.PlanEncap(want, nil, EncapRemovals{}, prune, ino, "")
			if err != nil {
				return err
			}
			_, err = e.ExecuteEncap(lock, plan, "", ino, 2)
			return err
		}
		if err := apply(desiredTunnels(t, 0, 4), false); err != nil {
			t.Fatalf("4 tunnels into a map of 4: %v", err)
		}
		// Four others, with prune: they fit only after the removals.
		if err := apply(desiredTunnels(t, 10, 4), true); err != nil {
			t.Fatalf("a prune replacing every tunnel of a full map: %v", err)
		}
		// Without prune they do not fit at all: refused before writing.
		if err := apply(desiredTunnels(t, 20, 1), false); err == nil || !strings.Contains(err.Error(), "room for 4") {
			t.Errorf("a fifth tunnel: %v", err)
		}
		before, err := e.State.ListTunnels()
		if err != nil {
			return err
		}
		slotsBefore, _ := e.State.ListSlots()
		// A write that fails halfway: a plan that passed its check, given
		// more tunnels than the map holds, in batches of 2.
		changed := desiredTunnels(t, 10, 2)
		changed[0].Tunnel.VlanID = 999 // a change of an existing tunnel, to be undone too
		plan, err := e.PlanEncap(changed, nil, EncapRemovals{}, false, ino, "")
		if err != nil {
			return err
		}
		for _, d := range desiredTunnels(t, 31, 3) {
			plan.putTunnels = append(plan.putTunnels, d.Tunnel)
		}
		if _, err := e.ExecuteEncap(lock, plan, "", ino, 2); err == nil || !strings.Contains(err.Error(), "undone") {
			t.Fatalf("an overfull write: %v, want an error saying it was undone", err)
		}
		after, err := e.State.ListTunnels()
		if err != nil {
			return err
		}
		slotsAfter, _ := e.State.ListSlots()
		strip := func(ts []maps.Tunnel) []maps.Tunnel {
			for i := range ts {
				ts[i].CounterIndex, ts[i].Counters = 0, maps.TunnelCounters{}
			}
			return ts
		}
		if !reflect.DeepEqual(strip(before), strip(after)) {
			t.Errorf("tunnels after the undo:\n%+v\nwant\n%+v", after, before)
		}
		if !reflect.DeepEqual(slotsBefore, slotsAfter) {
			t.Errorf("slots after the undo:\n%+v\nwant\n%+v", slotsAfter, slotsBefore)
		}
		return nil
	})
}
