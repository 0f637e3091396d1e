package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/tunmux/tunmux/internal/testnet"
	"github.com/tunmux/tunmux/netdev"
)

// muxSide is one end of a mux test: a namespace with a bpffs root.
type muxSide struct {
	t    *testing.T
	ns   *testnet.Netns
	root string
}

func (s muxSide) tm(args ...string) testnet.Result {
	s.t.Helper()
	return testnet.MustTunmux(s.t, bin, append([]string{"--bpffs", s.root, "--netns", s.ns.Name}, args...)...)
}

func newMuxSide(t *testing.T, name string) muxSide {
	s := muxSide{t: t, ns: testnet.NewNetns(t, name)}
	s.root = testnet.BPFRoot(t, func(r string) { testnet.Tunmux(bin, "--bpffs", r, "unload", "mux") })
	s.tm("load", "mux")
	return s
}

// members adds members m<first>..m<last> on both sides (created as TUNs),
// addressed 10.<net>.<i>.1 and .2.
func members(a, b muxSide, net, first, last int) {
	for i := first; i <= last; i++ {
		for n, s := range []muxSide{a, b} {
			s.tm("mux", "member", "add", fmt.Sprintf("m%d", i), "--label", fmt.Sprint(i), "--create")
			s.ns.Run(s.t, "ip", "addr", "add", fmt.Sprintf("10.%d.%d.%d/24", net, i, n+1), "dev", fmt.Sprintf("m%d", i))
		}
	}
}

// wantOffloads checks that the member tunmux created takes the carrier's
// transmit offloads.
func wantOffloads(t *testing.T, s muxSide, member string, want netdev.TUNOffloads) {
	t.Helper()
	s.ns.Do(t, func() error {
		got, err := netdev.OffloadsOf(member)
		if err == nil && got != want {
			t.Errorf("%s takes offloads %+v, want the carrier's %+v", member, got, want)
		}
		return err
	})
}

// rx returns the packets each label received on side s, from its member list.
func rx(t *testing.T, s muxSide) map[int]uint64 {
	t.Helper()
	var ms []struct {
		Label    int `json:"label"`
		Counters struct {
			RxPackets uint64 `json:"rx_packets"`
		} `json:"counters"`
	}
	if err := json.Unmarshal([]byte(s.tm("-o", "json", "mux", "member", "list").Stdout), &ms); err != nil {
		t.Fatal(err)
	}
	out := map[int]uint64{}
	for _, m := range ms {
		out[m.Label] = m.Counters.RxPackets
	}
	return out
}

// checkMembers pings across members first..last and checks that each ping
// arrived on its own member on the far side (and on no other), then moves
// TCP both ways across the first three; the carrier's own addresses still
// answer. The pings all come before any TCP, since a connection's last
// segments may still be arriving after the transfer returns.
func checkMembers(t *testing.T, a, b muxSide, net, first, last int, tcp bool) {
	for i := first; i <= last; i++ {
		before := rx(t, b)
		pingUntil(t, a.ns, fmt.Sprintf("10.%d.%d.2", net, i))
		after := rx(t, b)
		for l, n := range after {
			if l == i && n <= before[l] {
				t.Errorf("member m%d on the far side received none of its pings", i)
			}
			if l != i && n != before[l] {
				t.Errorf("member m%d received pings meant for m%d", l, i)
			}
		}
	}
	for i := first; tcp && i <= last && i < first+3; i++ {
		tcpTransfer(t, a.ns, b.ns, fmt.Sprintf("10.%d.%d.2", net, i))
		tcpTransfer(t, b.ns, a.ns, fmt.Sprintf("10.%d.%d.1", net, i))
	}
	pingUntil(t, a.ns, "10.250.0.2")
	pingUntil(t, b.ns, "10.250.0.1")
}

func TestMuxOverEthernetCarrier(t *testing.T) {
	testnet.RequireRoot(t)
	a, b := newMuxSide(t, "mxa"), newMuxSide(t, "mxb")
	testnet.Veth(t, a.ns, "c0", b.ns, "c0")
	a.ns.Run(t, "ip", "addr", "add", "10.250.0.1/30", "dev", "c0")
	b.ns.Run(t, "ip", "addr", "add", "10.250.0.2/30", "dev", "c0")
	for _, s := range []muxSide{a, b} {
		s.tm("mux", "carrier", "set", "c0")
	}
	members(a, b, 11, 1, 3)
	wantOffloads(t, a, "m1", netdev.TUNOffloads{Checksum: true, TSO: true})
	checkMembers(t, a, b, 11, 1, 3, true)
	// IPv6 across a member.
	a.ns.Run(t, "ip", "addr", "add", "fd11::1/64", "dev", "m2", "nodad")
	b.ns.Run(t, "ip", "addr", "add", "fd11::2/64", "dev", "m2", "nodad")
	pingUntil(t, a.ns, "fd11::2")
	tcpTransfer(t, a.ns, b.ns, "fd11::2")

	// The export contract: both sides' state (the members tunmux created,
	// with their addresses) goes through a file, unload --all (which
	// deletes the members) and apply; every member carries again.
	for _, s := range []muxSide{a, b} {
		testnet.Restore(t, bin, []string{"--bpffs", s.root, "--netns", s.ns.Name}, nil)
	}
	checkMembers(t, a, b, 11, 1, 3, true)
	pingUntil(t, a.ns, "fd11::2")

	t.Run("63 members", func(t *testing.T) {
		members(a, b, 12, 4, 63)
		// One ping to each new member; each lands on its member, once.
		before := rx(t, b)
		for i := 4; i <= 63; i++ {
			if out, err := a.ns.Try("ping", "-c", "1", "-W", "2", fmt.Sprintf("10.12.%d.2", i)); err != nil {
				t.Errorf("ping m%d: %v\n%s", i, err, out)
			}
		}
		after := rx(t, b)
		// Labels 1..3 carried TCP just before, whose last segments may
		// still be arriving; the new members must each count exactly one.
		for l := 4; l <= 63; l++ {
			want := before[l] + 1
			if after[l] != want {
				t.Errorf("label %d received %d packets, want %d", l, after[l]-before[l], want-before[l])
			}
		}
		// Every label is taken now.
		r := testnet.Tunmux(bin, "--bpffs", a.root, "--netns", a.ns.Name, "mux", "member", "add", "m64", "--label", "64", "--create")
		if r.Code != 2 || !strings.Contains(r.Stderr, "1..63") {
			t.Errorf("label 64: %s", r)
		}
	})
}

func TestMuxOverL3Carrier(t *testing.T) {
	testnet.RequireRoot(t)
	a, b := newMuxSide(t, "mla"), newMuxSide(t, "mlb")
	// Two TUN devices relayed by a forwarder: a stand-in for a WireGuard link.
	testnet.TUNRelay(t, a.ns, b.ns, "c0", "10.250.0.1/30", "10.250.0.2/30")
	for _, s := range []muxSide{a, b} {
		r := s.tm("-o", "json", "mux", "carrier", "set", "c0")
		var c struct{ Ethernet bool }
		if err := json.Unmarshal([]byte(r.Stdout), &c); err != nil || c.Ethernet {
			t.Errorf("c0 taken for an Ethernet carrier: %s", r.Stdout)
		}
	}
	members(a, b, 13, 1, 3)
	wantOffloads(t, a, "m1", netdev.TUNOffloads{})
	checkMembers(t, a, b, 13, 1, 3, true)
}
