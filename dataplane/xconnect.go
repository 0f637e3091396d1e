package dataplane

import (
	"errors"
	"fmt"

	"github.com/tunmux/tunmux/maps"
	"github.com/tunmux/tunmux/netdev"
)

// Xconnect manages the xconnect dataplane's pairs.
type Xconnect struct {
	*Loaded
	State *maps.XconnectState
}

// OpenXconnect opens the loaded xconnect dataplane under root.
func OpenXconnect(root *maps.Root) (*Xconnect, error) {
	l, err := Open(root, XconnectDataplane)
	if err != nil {
		return nil, err
	}
	st, err := maps.NewXconnectState(l.Maps)
	if err != nil {
		l.Close()
		return nil, err
	}
	return &Xconnect{Loaded: l, State: st}, nil
}

// PairResult is what a pair write did.
type PairResult struct {
	Pair     maps.Pair
	Warnings []string
}

// ResolvePair resolves the two ends of a pair in the current namespace (call
// it inside netdev.Do): missing interfaces are invalid input (flags names the
// arguments), and an end already in another pair is an error naming it.
func (x *Xconnect) ResolvePair(flagA, a, flagB, b, netnsName string) (maps.Pair, netdev.Iface, netdev.Iface, error) {
	var p maps.Pair
	ifa, err1 := lookupArg(flagA, a, netnsName)
	ifb, err2 := lookupArg(flagB, b, netnsName)
	if err := errors.Join(err1, err2); err != nil {
		return p, ifa, ifb, err
	}
	ino, err := netdev.CurrentInode()
	if err != nil {
		return p, ifa, ifb, err
	}
	if ifb.Index < ifa.Index {
		ifa, ifb = ifb, ifa
	}
	p = maps.Pair{
		A:     maps.PairEnd{Name: ifa.Name, Ifindex: uint32(ifa.Index)},
		B:     maps.PairEnd{Name: ifb.Name, Ifindex: uint32(ifb.Index)},
		Netns: ino,
	}
	return p, ifa, ifb, nil
}

// AddPair cross-connects interfaces a and b (a == b: a self-connect). It
// attaches the xconnect program to both ends, makes each end ready to
// receive redirected frames, then writes the pair. An end already in a pair
// is an error naming that pair.
func (x *Xconnect) AddPair(lock *maps.Lock, a, b, netnsName, mode string) (PairResult, error) {
	var res PairResult
	if err := errors.Join(maps.ValidateIfaceName("IFACE_A", a), maps.ValidateIfaceName("IFACE_B", b)); err != nil {
		return res, err
	}
	if _, err := ParseMode(mode); err != nil {
		return res, err
	}
	err := netdev.Do(netnsName, func() error {
		p, ifa, ifb, err := x.ResolvePair("IFACE_A", a, "IFACE_B", b, netnsName)
		if err != nil {
			return err
		}
		for _, end := range []maps.PairEnd{p.A, p.B} {
			if other, err := x.State.PairOf(end.Ifindex); err == nil {
				return fmt.Errorf("%s is already cross-connected in pair %s: %w; run 'tunmux xconnect del %s' first", end.Name, other.Key(), maps.ErrInUse, end.Name)
			}
		}
		res.Warnings, err = x.connect(lock, &p, ifa, ifb, netnsName, mode)
		res.Pair = p
		return err
	})
	return res, err
}

// connect attaches the program to both ends, readies them and writes the
// pair; if an attachment fails, what it attached is detached again.
func (x *Xconnect) connect(lock *maps.Lock, p *maps.Pair, ifa, ifb netdev.Iface, netnsName, mode string) ([]string, error) {
	prog, _ := x.DP.Program("xconnect")
	var warnings []string
	var attached []string
	ifaces := []netdev.Iface{ifa}
	if ifb.Index != ifa.Index {
		ifaces = append(ifaces, ifb) // a self-connect has one end
	}
	for _, ifc := range ifaces {
		r, err := x.attach(lock, prog, ifc.Name, AttachOptions{Netns: netnsName, Mode: mode})
		warnings = append(warnings, r.Warnings...)
		if err != nil {
			for _, name := range attached {
				_, _ = x.detach(lock, prog, name, netnsName)
			}
			return warnings, err
		}
		if !r.Already {
			attached = append(attached, ifc.Name)
		}
	}
	for _, e := range []struct {
		end *maps.PairEnd
		ifc netdev.Iface
	}{{&p.A, ifa}, {&p.B, ifb}} {
		var warn string
		e.end.Readiness, e.end.Peer, warn = makeReady(e.ifc, netnsName)
		if warn != "" {
			warnings = append(warnings, warn)
		}
	}
	return warnings, x.State.PutPair(lock, *p)
}

// DeletePair removes the pair iface is in and detaches the program from its
// ends. An interface that went away is found by its recorded name.
func (x *Xconnect) DeletePair(lock *maps.Lock, iface, netnsName string) (maps.Pair, error) {
	var p maps.Pair
	if err := maps.ValidateIfaceName("IFACE", iface); err != nil {
		return p, err
	}
	err := netdev.Do(netnsName, func() error {
		var err error
		if ifc, lerr := netdev.Lookup(iface); lerr == nil {
			p, err = x.State.PairOf(uint32(ifc.Index))
		} else if errors.Is(lerr, netdev.ErrNoInterface) {
			p, err = x.State.PairNamed(iface)
		} else {
			return lerr
		}
		if err != nil {
			return fmt.Errorf("%s is in no pair: %w", iface, maps.ErrNotFound)
		}
		return x.disconnect(lock, p, netnsName)
	})
	return p, err
}

// disconnect removes a pair's entries, then its attachments.
func (x *Xconnect) disconnect(lock *maps.Lock, p maps.Pair, netnsName string) error {
	return x.disconnectExcept(lock, p, netnsName, nil)
}

// disconnectExcept removes a pair, but leaves alone the ends in keep (they
// are about to join another pair: their entries get overwritten).
func (x *Xconnect) disconnectExcept(lock *maps.Lock, p maps.Pair, netnsName string, keep map[uint32]bool) error {
	var leaving []maps.PairEnd
	for _, end := range []maps.PairEnd{p.A, p.B} {
		if !keep[end.Ifindex] {
			leaving = append(leaving, end)
		}
		if p.A.Ifindex == p.B.Ifindex {
			break
		}
	}
	if err := x.State.DeleteEnds(lock, leaving); err != nil {
		return err
	}
	prog, _ := x.DP.Program("xconnect")
	for _, end := range leaving {
		if _, err := x.detach(lock, prog, end.Name, netnsName); err != nil && !errors.Is(err, maps.ErrNotFound) && !errors.Is(err, maps.ErrInvalid) {
			return err
		}
	}
	return nil
}
