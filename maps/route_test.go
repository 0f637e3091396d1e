package maps

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestParseNexthop(t *testing.T) {
	for _, c := range []struct {
		in   string
		want NexthopSpec
	}{
		{"192.168.60.2,vni=100", NexthopSpec{Remote: netip.MustParseAddr("192.168.60.2"), VNI: 100, HasVNI: true, Weight: 1, Proto: RouteProtoVXLAN}},
		{"fd60::2,vni=0,weight=65535,proto=geneve,dev=gen0", NexthopSpec{Remote: netip.MustParseAddr("fd60::2"), HasVNI: true, Weight: 65535, Proto: RouteProtoGeneve, Dev: "gen0"}},
		{"::ffff:10.1.1.1,vni=7", NexthopSpec{Remote: netip.MustParseAddr("10.1.1.1"), VNI: 7, HasVNI: true, Weight: 1, Proto: RouteProtoVXLAN}},
		{"10.1.1.1,proto=none,dev=eth0", NexthopSpec{Remote: netip.MustParseAddr("10.1.1.1"), Weight: 1, Proto: RouteProtoNone, Dev: "eth0"}},
	} {
		got, err := ParseNexthop("--nexthop", c.in)
		if err != nil || got.Remote != c.want.Remote || got.VNI != c.want.VNI || got.HasVNI != c.want.HasVNI || got.Weight != c.want.Weight || got.Proto != c.want.Proto || got.Dev != c.want.Dev {
			t.Errorf("%s: %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
	got, err := ParseNexthop("--nexthop", "10.1.1.1,vni=1,mac=02:00:00:00:00:09")
	if err != nil || got.MAC.String() != "02:00:00:00:00:09" {
		t.Errorf("mac=: %+v %v", got, err)
	}
	for _, bad := range []string{"", "x", "10.1.1.1", "10.1.1.1,vni=1,vni=2", "10.1.1.1,vni", "10.1.1.1,vni=-1", "10.1.1.1,vni=1,weight=0",
		"0.0.0.0,vni=1", "ff02::1,vni=1", "fe80::1%eth0,vni=1", "10.1.1.1,proto=none", "10.1.1.1,proto=none,dev=e0,mac=02:00:00:00:00:01",
		"10.1.1.1,vni=1,dev=a/b", "10.1.1.1,vni=1,mac=ff:ff:ff:ff:ff:ff", "10.1.1.1,vni=1,zone=x"} {
		if _, err := ParseNexthop("--nexthop", bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: %v, want invalid", bad, err)
		}
	}
}

func TestParseNexthops(t *testing.T) {
	var nine []string
	for i := 0; i < 9; i++ {
		nine = append(nine, netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}).String()+",vni=1")
	}
	if _, err := ParseNexthops("--nexthop", nine); err == nil || !strings.Contains(err.Error(), "at most 8") {
		t.Errorf("nine nexthops: %v", err)
	}
	if specs, err := ParseNexthops("--nexthop", nine[:8]); err != nil || len(specs) != 8 {
		t.Errorf("eight nexthops: %d, %v", len(specs), err)
	}
	if _, err := ParseNexthops("--nexthop", []string{"10.0.0.1,vni=1", "10.0.0.1,vni=1,weight=3"}); err == nil || !strings.Contains(err.Error(), "repeats") {
		t.Errorf("a repeated nexthop: %v", err)
	}
	if _, err := ParseNexthops("--nexthop", []string{"10.0.0.1,vni=1", "10.0.0.1,vni=2"}); err != nil {
		t.Errorf("one remote, two VNIs: %v", err)
	}
}

func TestParsePrefix(t *testing.T) {
	for _, ok := range []string{"0.0.0.0/0", "10.0.0.0/8", "10.1.2.3/32", "::/0", "fd00::/8", "fd00::1/128"} {
		if _, err := ParsePrefix("PREFIX", ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"10.0.0.1/8", "10.0.0.0", "10.0.0.0/33", "::ffff:10.0.0.0/104", "fd00::1/64", "x/8"} {
		if _, err := ParsePrefix("PREFIX", bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want invalid", bad, err)
		}
	}
	if _, err := ParsePrefix("PREFIX", "10.0.0.1/8"); err == nil || !strings.Contains(err.Error(), "10.0.0.0/8") {
		t.Errorf("the message should give the masked prefix: %v", err)
	}
	p, isAddr, err := ParsePrefixOrAddr("X", "10.1.2.3")
	if err != nil || !isAddr || p.String() != "10.1.2.3/32" {
		t.Errorf("an address: %v %v %v", p, isAddr, err)
	}
}

func TestTunnelMAC(t *testing.T) {
	for in, want := range map[string]string{
		"192.168.60.2":        "02:c0:a8:3c:02:ff",
		"10.0.0.1":            "02:0a:00:00:01:ff",
		"fd60::2":             "02:00:00:00:02:ff",
		"2001:db8::c0a8:3c02": "02:c0:a8:3c:02:ff",
	} {
		if got := TunnelMAC(netip.MustParseAddr(in)).String(); got != want {
			t.Errorf("%s: %s, want %s", in, got, want)
		}
	}
}

func TestRouteKeySeparatesFamilies(t *testing.T) {
	v4 := routeKey(netip.MustParsePrefix("0.0.0.0/0"))
	v6 := routeKey(netip.MustParsePrefix("::/0"))
	if v4.Prefixlen != 8 || v6.Prefixlen != 8 || v4.Family == v6.Family {
		t.Errorf("/0 keys: %+v %+v", v4, v6)
	}
	r := Route{Prefix: netip.MustParsePrefix("fd00:200::/48"), Nexthops: []Nexthop{{Remote: netip.MustParseAddr("192.168.60.2"), VNI: 5, Weight: 3, Proto: RouteProtoVXLAN, Ifindex: 4,
		MAC: TunnelMAC(netip.MustParseAddr("192.168.60.2")), SrcMAC: TunnelMAC(netip.MustParseAddr("192.168.60.1"))}}}
	back := decodeRoute(encodeRoute(r))
	if back.Prefix != r.Prefix || len(back.Nexthops) != 1 || !back.Nexthops[0].Same(r.Nexthops[0]) || back.Nexthops[0].Weight != 3 || back.Nexthops[0].MAC.String() != r.Nexthops[0].MAC.String() {
		t.Errorf("round trip: %+v", back)
	}
}
