package netdev_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/tunmux/tunmux/internal/testnet"
	"github.com/tunmux/tunmux/netdev"
)

func TestPeerAcrossNamespaces(t *testing.T) {
	testnet.RequireRoot(t)
	a, b := testnet.NewNetns(t, "nda"), testnet.NewNetns(t, "ndb")
	testnet.Veth(t, a, "va", b, "vb")
	var inA uint64
	a.Do(t, func() error {
		ifc, err := netdev.Lookup("va")
		if err != nil {
			return err
		}
		if !ifc.IsVeth() || ifc.PeerNetnsID < 0 || ifc.PeerIndex == 0 {
			t.Errorf("va: %+v, want a veth with its peer in another namespace", ifc)
		}
		if inA, err = netdev.CurrentInode(); err != nil {
			return err
		}
		if name := netdev.NameOfCurrent(); name != a.Name {
			t.Errorf("NameOfCurrent = %q, want %q", name, a.Name)
		}
		if _, err := netdev.Lookup("nosuch0"); !errors.Is(err, netdev.ErrNoInterface) {
			t.Errorf("Lookup(nosuch0): %v, want ErrNoInterface", err)
		}
		// Find the peer, turn GRO on and tx VLAN offload off there.
		desc, err := netdev.InPeer(ifc, a.Name, func(p netdev.Iface) error {
			if p.Name != "vb" {
				t.Errorf("peer is %s, want vb", p.Name)
			}
			if err := netdev.SetGRO(p.Name, true); err != nil {
				return err
			}
			on, err := netdev.GRO(p.Name)
			if err != nil || !on {
				t.Errorf("GRO on vb after SetGRO: %v, %v", on, err)
			}
			changed, err := netdev.DisableTxVLANOffload(p.Name)
			if err != nil || !changed {
				t.Errorf("DisableTxVLANOffload: changed %v, %v", changed, err)
			}
			changed, err = netdev.DisableTxVLANOffload(p.Name)
			if err != nil || changed {
				t.Errorf("DisableTxVLANOffload again: changed %v, %v", changed, err)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if desc != b.Name+"/vb" {
			t.Errorf("peer described as %q, want %q", desc, b.Name+"/vb")
		}
		return nil
	})
	// ethtool agrees, seen from the peer's namespace.
	if out := b.Run(t, "ethtool", "-k", "vb"); !contains(out, "generic-receive-offload: on", "tx-vlan-offload: off") {
		t.Errorf("ethtool -k vb:\n%s", out)
	}
	b.Do(t, func() error {
		ino, err := netdev.CurrentInode()
		if err == nil && ino == inA {
			t.Errorf("two namespaces share inode %d", ino)
		}
		return err
	})
	if err := netdev.Do("no-such-netns-x", func() error { return nil }); !errors.Is(err, netdev.ErrNoNamespace) {
		t.Errorf("Do in a missing namespace: %v", err)
	}
}

func contains(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
