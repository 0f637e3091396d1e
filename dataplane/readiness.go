package dataplane

import (
	"github.com/tunmux/tunmux/maps"
	"github.com/tunmux/tunmux/netdev"
)

// Ready reports whether r lets redirected frames through.
func Ready(r maps.Readiness) bool { return r != maps.NotReady && r != maps.NotReadyNoGRO }

// observeHere returns how the interface with index ifindex, in the calling
// thread's namespace, accepts XDP-redirected frames at this moment, and its
// veth peer's name: a veth needs GRO or an XDP program on its peer.
func observeHere(ifindex uint32) (maps.Readiness, string) {
	ifc, err := netdev.ByIndex(int(ifindex))
	if err != nil {
		return maps.NotReady, ""
	}
	if !ifc.IsVeth() {
		return maps.ReadyNotVeth, ""
	}
	ready := maps.NotReadyNoGRO
	peer, err := netdev.InPeer(ifc, netdev.NameOfCurrent(), func(p netdev.Iface) error {
		if p.XDPProgID != 0 {
			ready = maps.ReadyPeerXDP
		} else if on, err := netdev.GRO(p.Name); err == nil && on {
			ready = maps.ReadyGRO
		}
		return nil
	})
	if err != nil {
		return maps.NotReady, peer
	}
	return ready, peer
}

// observe is observeHere in the namespace with inode ino, entered when it
// is not the calling thread's. A namespace that cannot be found leaves the
// recorded readiness as it was (ok false).
func observe(ino uint64, ifindex uint32) (r maps.Readiness, peer string, ok bool) {
	if here, err := netdev.CurrentInode(); err == nil && here == ino {
		r, peer = observeHere(ifindex)
		return r, peer, true
	}
	ns, err := netdev.FindByInode(ino)
	if err != nil {
		return 0, "", false
	}
	defer ns.Handle.Close()
	err = netdev.DoHandle(ns.Handle, func() error {
		r, peer = observeHere(ifindex)
		return nil
	})
	return r, peer, err == nil
}

// ObserveSlots replaces each slot's recorded readiness with what the kernel
// says now of its target: GRO turned off at a veth peer since the slot was
// written shows as not ready.
func ObserveSlots(slots []maps.Slot) {
	for i := range slots {
		if r, peer, ok := observe(slots[i].Netns, slots[i].Out); ok {
			slots[i].Readiness, slots[i].Peer = r, peer
		}
	}
}

// ObservePairs does for the ends of xconnect pairs what ObserveSlots does
// for slots.
func ObservePairs(pairs []maps.Pair) {
	for i := range pairs {
		for _, end := range []*maps.PairEnd{&pairs[i].A, &pairs[i].B} {
			if r, peer, ok := observe(pairs[i].Netns, end.Ifindex); ok {
				end.Readiness, end.Peer = r, peer
			}
		}
	}
}

// readyNow reports whether the interface with index ifindex, in the calling
// thread's namespace, accepts redirected frames at this moment.
func readyNow(ifindex uint32) bool {
	r, _ := observeHere(ifindex)
	return Ready(r)
}
