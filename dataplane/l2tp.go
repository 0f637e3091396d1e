package dataplane

import (
	"errors"
	"fmt"
	"time"

	"github.com/tunmux/tunmux/maps"
	"github.com/tunmux/tunmux/netdev"
)

// L2TP manages the l2tp dataplane's sessions.
type L2TP struct {
	*Loaded
	State *maps.L2TPState
}

// OpenL2TP opens the loaded l2tp dataplane under root.
func OpenL2TP(root *maps.Root) (*L2TP, error) {
	l, err := Open(root, L2TPDataplane)
	if err != nil {
		return nil, err
	}
	st, err := maps.NewL2TPState(l.Maps)
	if err != nil {
		l.Close()
		return nil, err
	}
	return &L2TP{Loaded: l, State: st}, nil
}

// SessionResult is what a session write did.
type SessionResult struct {
	Session  maps.Session
	Warnings []string
}

// neighbourWait is how long a session write waits for the underlay
// neighbour to be resolved.
const neighbourWait = 2 * time.Second

// PutSession validates args and writes the session (maps.Add: new id;
// maps.Update: existing id, the given flags replace those fields). Without
// --peer-mac it then has the kernel resolve the peer's link-layer address
// on the tunnel interface, so that the first frames (ARP among them) cross.
func (l *L2TP) PutSession(lock *maps.Lock, args maps.SessionArgs, mode maps.PutMode, netnsName string) (SessionResult, error) {
	var res SessionResult
	id, idErr := maps.ParseSessionID("--session-id", args.SessionID)
	var base *maps.Session
	if idErr == nil {
		old, err := l.State.GetSession(id)
		switch {
		case err == nil:
			if mode == maps.Add {
				if ferr := args.FormErrors(); ferr != nil {
					return res, ferr
				}
				return res, fmt.Errorf("session %d: %w (use l2tp session update)", id, maps.ErrExists)
			}
			base = &old
		case !errors.Is(err, maps.ErrNotFound):
			return res, err
		case mode == maps.Update:
			if ferr := args.FormErrors(); ferr != nil {
				return res, ferr
			}
			return res, err
		}
	}
	s, err := args.Parse(base)
	if err != nil {
		return res, err
	}
	err = netdev.Do(netnsName, func() error {
		eth, err1 := lookupArg("--eth-iface", s.EthIface, netnsName)
		tun, err2 := lookupArg("--tunnel-iface", s.TunnelIface, netnsName)
		if err := errors.Join(err1, err2); err != nil {
			return err
		}
		ino, err := netdev.CurrentInode()
		if err != nil {
			return err
		}
		if other, ok := l.State.SessionOnEth(uint32(eth.Index)); ok && other != s.ID {
			return fmt.Errorf("--eth-iface %s already carries session %d (one session per Ethernet interface): %w", eth.Name, other, maps.ErrInUse)
		}
		s.EthIndex, s.TunnelIndex, s.Netns = uint32(eth.Index), uint32(tun.Index), ino
		s.EthIface, s.TunnelIface = eth.Name, tun.Name
		if s.PeerMAC != nil {
			if len(tun.MAC) != 6 {
				return maps.Invalid("--tunnel-iface", tun.Name, "has no Ethernet address", "an Ethernet interface")
			}
			s.LocalMAC = tun.MAC
		}
		if err := l.State.PutSession(lock, s, mode); err != nil {
			return err
		}
		if s.PeerMAC == nil {
			if warn := l.learnNextHop(lock, s, tun); warn != "" {
				res.Warnings = append(res.Warnings, warn)
			}
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	res.Session, err = l.State.GetSession(s.ID)
	return res, err
}

// learnNextHop has the kernel resolve the peer on the tunnel interface and
// records its MAC address for the program, which needs it for non-IP frames
// (IP frames go through the kernel's neighbour table). It returns a warning
// when the peer cannot be resolved.
func (l *L2TP) learnNextHop(lock *maps.Lock, s maps.Session, tun netdev.Iface) string {
	const consequence = "until it is, non-IP frames (ARP among them) are dropped and counted; IP frames still cross, resolved by the kernel"
	peer := s.Peer.Addr()
	known, err := netdev.ResolveNeighbour(tun.Name, tun.Index, s.Local.Addr(), peer, neighbourWait)
	if err != nil {
		return fmt.Sprintf("could not resolve %s on %s (%v): %s", peer, tun.Name, err, consequence)
	}
	mac, ok := netdev.NeighbourMAC(tun.Index, peer)
	if !known || !ok {
		return fmt.Sprintf("%s does not answer address resolution on %s yet: %s", peer, tun.Name, consequence)
	}
	if err := l.State.SetNeighbour(lock, s.ID, mac, tun.MAC); err != nil {
		return err.Error()
	}
	return ""
}

// DeleteSession removes a session.
func (l *L2TP) DeleteSession(lock *maps.Lock, id uint32) (maps.Session, error) {
	return l.State.DeleteSession(lock, id)
}
