package dataplane

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/tunmux/tunmux/maps"
)

// DesiredRoute is a route as a desired-state file gives it, its nexthops
// resolved.
type DesiredRoute struct {
	Route maps.Route
	Line  int
}

// DesiredPeer is a peer health entry as a desired-state file gives it.
type DesiredPeer struct {
	Peer maps.Peer
	Line int
}

// RoutePlan is what ExecuteRoute will do.
type RoutePlan struct {
	Changes   []Change
	putPeers  []maps.Peer
	putRoutes []maps.Route
	delRoutes []netip.Prefix
	delPeers  []netip.Addr
}

// PlanRoute compares the desired routes and peers with the pinned ones:
// missing or different entries are written; with prune, entries the file
// lacks are removed.
func (r *Route) PlanRoute(routes []DesiredRoute, peers []DesiredPeer, prune bool) (*RoutePlan, error) {
	plan := &RoutePlan{}
	current, err := r.State.Routes()
	if err != nil {
		return nil, err
	}
	byPrefix := map[netip.Prefix]maps.Route{}
	for _, rt := range current {
		byPrefix[rt.Prefix] = rt
	}
	wanted := map[netip.Prefix]bool{}
	for _, d := range routes {
		wanted[d.Route.Prefix] = true
		old, ok := byPrefix[d.Route.Prefix]
		switch {
		case !ok:
			plan.putRoutes = append(plan.putRoutes, d.Route)
			plan.Changes = append(plan.Changes, Change{Action: "add", Kind: "route", Key: d.Route.Prefix.String(), Detail: describeNexthops(d.Route), Line: d.Line})
		case !sameRoute(old, d.Route):
			plan.putRoutes = append(plan.putRoutes, d.Route)
			plan.Changes = append(plan.Changes, Change{Action: "change", Kind: "route", Key: d.Route.Prefix.String(),
				Detail: describeNexthops(old) + " -> " + describeNexthops(d.Route), Line: d.Line})
		}
	}
	currentPeers, err := r.State.Peers()
	if err != nil {
		return nil, err
	}
	byAddr := map[netip.Addr]maps.Peer{}
	for _, p := range currentPeers {
		byAddr[p.Remote] = p
	}
	wantedPeers := map[netip.Addr]bool{}
	for _, d := range peers {
		wantedPeers[d.Peer.Remote] = true
		old, ok := byAddr[d.Peer.Remote]
		switch {
		case !ok:
			plan.putPeers = append(plan.putPeers, d.Peer)
			plan.Changes = append(plan.Changes, Change{Action: "add", Kind: "peer", Key: d.Peer.Remote.String(), Detail: describePeer(d.Peer), Line: d.Line})
		case old != d.Peer:
			plan.putPeers = append(plan.putPeers, d.Peer)
			plan.Changes = append(plan.Changes, Change{Action: "change", Kind: "peer", Key: d.Peer.Remote.String(), Detail: describePeer(old) + " -> " + describePeer(d.Peer), Line: d.Line})
		}
	}
	if prune {
		for _, rt := range current {
			if !wanted[rt.Prefix] {
				plan.delRoutes = append(plan.delRoutes, rt.Prefix)
				plan.Changes = append(plan.Changes, Change{Action: "remove", Kind: "route", Key: rt.Prefix.String(), Detail: describeNexthops(rt)})
			}
		}
		for _, p := range currentPeers {
			if !wantedPeers[p.Remote] {
				plan.delPeers = append(plan.delPeers, p.Remote)
				plan.Changes = append(plan.Changes, Change{Action: "remove", Kind: "peer", Key: p.Remote.String(), Detail: describePeer(p)})
			}
		}
	}
	return plan, nil
}

func describeNexthops(r maps.Route) string {
	parts := make([]string, len(r.Nexthops))
	for i, n := range r.Nexthops {
		parts[i] = n.String()
	}
	return strings.Join(parts, " ")
}

func describePeer(p maps.Peer) string {
	s := p.Health()
	if p.ProbePort != 0 {
		s += ", probe port " + strconv.Itoa(int(p.ProbePort))
	}
	return s
}

// sameRoute compares what the datapath reads of two routes.
func sameRoute(a, b maps.Route) bool {
	return a.Prefix == b.Prefix && slices.EqualFunc(a.Nexthops, b.Nexthops, func(x, y maps.Nexthop) bool {
		return x.Same(y) && x.Weight == y.Weight && x.Ifindex == y.Ifindex && x.MAC.String() == y.MAC.String() && x.SrcMAC.String() == y.SrcMAC.String()
	})
}

// ExecuteRoute carries a plan out: peers first (new routes meet their
// peers' health), then routes, then removals.
func (r *Route) ExecuteRoute(lock *maps.Lock, plan *RoutePlan) error {
	for _, p := range plan.putPeers {
		if err := r.State.SetPeer(lock, p); err != nil {
			return err
		}
	}
	for _, rt := range plan.putRoutes {
		if err := r.State.PutRoute(lock, rt, maps.Upsert); err != nil {
			return err
		}
	}
	for _, p := range plan.delRoutes {
		if err := r.State.DeleteRoute(lock, p); err != nil {
			return err
		}
	}
	for _, a := range plan.delPeers {
		if err := r.State.DeletePeer(lock, a); err != nil {
			return err
		}
	}
	return nil
}
