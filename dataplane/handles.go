package dataplane

import "github.com/tunmux/tunmux/maps"

// The managers of the dataplanes: each a Handle on its loaded maps with
// their typed state, and the methods that plan and carry out its writes.
type (
	// Encap manages the encap dataplane's entries: tunnels and the redirect
	// slots they hold.
	Encap struct{ Handle[*maps.EncapState] }
	// L2TP manages the l2tp dataplane's sessions.
	L2TP struct{ Handle[*maps.L2TPState] }
	// Xconnect manages the xconnect dataplane's pairs.
	Xconnect struct{ Handle[*maps.XconnectState] }
	// Mux manages the mux dataplane: its carrier and members.
	Mux struct{ Handle[*maps.MuxState] }
	// Route manages the route dataplane: its routes, peers and devices.
	Route struct{ Handle[*maps.RouteState] }
)

// The Open functions open a loaded dataplane under root, with its state.

// OpenEncap opens the loaded encap dataplane.
func OpenEncap(root *maps.Root) (*Encap, error) {
	return openAs(root, EncapDataplane, maps.NewEncapState, wrapEncap)
}

// OpenL2TP opens the loaded l2tp dataplane.
func OpenL2TP(root *maps.Root) (*L2TP, error) {
	return openAs(root, L2TPDataplane, maps.NewL2TPState, wrapL2TP)
}

// OpenXconnect opens the loaded xconnect dataplane.
func OpenXconnect(root *maps.Root) (*Xconnect, error) {
	return openAs(root, XconnectDataplane, maps.NewXconnectState, wrapXconnect)
}

// OpenMux opens the loaded mux dataplane.
func OpenMux(root *maps.Root) (*Mux, error) {
	return openAs(root, MuxDataplane, maps.NewMuxState, wrapMux)
}

// OpenRoute opens the loaded route dataplane.
func OpenRoute(root *maps.Root) (*Route, error) {
	return openAs(root, RouteDataplane, maps.NewRouteState, wrapRoute)
}

func wrapEncap(h Handle[*maps.EncapState]) *Encap          { return &Encap{h} }
func wrapL2TP(h Handle[*maps.L2TPState]) *L2TP             { return &L2TP{h} }
func wrapXconnect(h Handle[*maps.XconnectState]) *Xconnect { return &Xconnect{h} }
func wrapMux(h Handle[*maps.MuxState]) *Mux                { return &Mux{h} }
func wrapRoute(h Handle[*maps.RouteState]) *Route          { return &Route{h} }
