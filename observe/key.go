package observe

import (
	"fmt"
	"strings"

	"github.com/tunmux/tunmux/maps"
)

// Problem reports whether an outcome is one `monitor --drops` shows: a
// drop (drop_*), or a pass because no entry matched or the entry refused
// the frame (pass_no_*, pass_mismatch, pass_bad_cookie) or it was
// malformed (pass_malformed). Passes of traffic that is not the
// dataplane's (pass_not_ip, pass_not_tunnel, pass_own, ...) are not.
func Problem(outcome string) bool {
	switch {
	case strings.HasPrefix(outcome, "drop"), strings.HasPrefix(outcome, "pass_no_"):
		return true
	}
	switch outcome {
	case "pass_mismatch", "pass_bad_cookie", "pass_malformed":
		return true
	}
	return false
}

// key names the entry a record's frame belongs to, as the dataplane's
// commands name it: a tunnel's inner pair, an l2tp session, a route's
// prefix and the nexthop chosen, a pair's two ends.
func (s *Session) key(src *source, r Record) string {
	switch src.o.DP.Name {
	case "encap":
		if r.Program == "redirect" || r.Program == "pass" {
			return r.Iface + "->" + r.Target
		}
		p, ok := innermostPair(r.Data, r.L3)
		if !ok {
			return ""
		}
		if strings.HasPrefix(r.Program, "decap") { // a tunnel's key is its sending direction
			p.Src, p.Dst = p.Dst, p.Src
		}
		return p.Src.String() + "->" + p.Dst.String()
	case "l2tp":
		if r.Aux != 0 {
			return fmt.Sprintf("session %d", r.Aux)
		}
	case "route":
		return s.routeKey(src, r)
	case "xconnect", "mux":
		if r.Target != "" {
			return r.Iface + "->" + r.Target
		}
		return r.Iface
	}
	return ""
}

// routeKey is the route a frame's destination matches, and the nexthop the
// program chose (Aux: its index + 1).
func (s *Session) routeKey(src *source, r Record) string {
	ip := r.Data
	if !r.L3 {
		var ok bool
		if ip, ok = skipEthernet(r.Data); !ok {
			return ""
		}
	}
	_, dst, _, ok := ipAddrs(ip)
	if !ok {
		return ""
	}
	if src.routes == nil {
		st, err := maps.NewRouteState(src.loaded.Maps)
		if err != nil {
			return dst.String()
		}
		src.routes = st
	}
	rt, err := src.routes.Lookup(dst)
	if err != nil {
		return dst.String() + " (no route)"
	}
	k := rt.Prefix.String()
	if i := int(r.Aux) - 1; i >= 0 && i < len(rt.Nexthops) {
		k += " via " + rt.Nexthops[i].String()
	}
	return k
}

// innermostPair returns the IP pair of a frame, or of the frame a VXLAN or
// GENEVE datagram in it carries.
func innermostPair(frame []byte, l3 bool) (Pair, bool) {
	var last Pair
	found := false
	ipPairs(frame, l3, func(p Pair) bool {
		last, found = p, true
		return true
	})
	return last, found
}
