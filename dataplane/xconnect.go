package dataplane

import (
	"errors"
	"fmt"

	"github.com/tunmux/tunmux/maps"
	"github.com/tunmux/tunmux/netdev"
)

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

// PairOfName returns the pair iface is in: found by the interface's index
// in the namespace, or, when it is gone, by the name recorded with the pair.
func (x *Xconnect) PairOfName(iface, netnsName string) (maps.Pair, error) {
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
		return nil
	})
	return p, err
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
