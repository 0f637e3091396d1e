package netdev_test

import (
	"runtime"
	"testing"

	"github.com/tunmux/tunmux/internal/testnet"
	"github.com/tunmux/tunmux/netdev"
)

// Inside a memo scope a lookup answers as first asked, until tunmux
// changes an interface (or Forget); outside a scope every lookup asks the
// kernel.
func TestMemoKeepsAnswersUntilAChange(t *testing.T) {
	testnet.RequireRoot(t)
	a, b := testnet.NewNetns(t, "mma"), testnet.NewNetns(t, "mmb")
	testnet.Veth(t, a, "mema", b, "memb")
	mtu := func() int {
		ifc, err := netdev.Lookup("mema")
		if err != nil {
			t.Fatal(err)
		}
		return ifc.MTU
	}
	a.Do(t, func() error {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		end := netdev.Memo()
		defer end()
		if got := mtu(); got != 1500 {
			t.Fatalf("MTU %d, want 1500", got)
		}
		a.Run(t, "ip", "link", "set", "mema", "mtu", "1400")
		if got := mtu(); got != 1500 {
			t.Errorf("inside the scope: MTU %d, want the first answer, 1500", got)
		}
		// A change tunmux makes forgets every answer.
		ifc, err := netdev.Lookup("mema")
		if err != nil {
			return err
		}
		if _, err := netdev.InPeer(ifc, a.Name, func(p netdev.Iface) error { return netdev.SetGRO(p.Name, true) }); err != nil {
			return err
		}
		if got := mtu(); got != 1400 {
			t.Errorf("after SetGRO: MTU %d, want 1400", got)
		}
		a.Run(t, "ip", "link", "set", "mema", "mtu", "1300")
		netdev.Forget()
		if got := mtu(); got != 1300 {
			t.Errorf("after Forget: MTU %d, want 1300", got)
		}
		// The peer's namespace, found once, is found again by its path.
		for i := 0; i < 2; i++ {
			desc, err := netdev.InPeer(ifc, a.Name, func(netdev.Iface) error { return nil })
			if err != nil || desc != b.Name+"/memb" {
				t.Errorf("InPeer %d: %q, %v", i, desc, err)
			}
		}
		end()
		a.Run(t, "ip", "link", "set", "mema", "mtu", "1200")
		if got := mtu(); got != 1200 {
			t.Errorf("outside a scope: MTU %d, want 1200", got)
		}
		return nil
	})
}
