package hrw

import (
	"math"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// TestLog2Q16 bounds the fixed-point log2 against math.Log2 over the whole
// range: top bits, every table cell, interpolation between cells.
func TestLog2Q16(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	worst := 0.0
	check := func(x uint32) {
		got := float64(Log2Q16(x)) / 65536
		want := math.Log2(float64(x | 1))
		if d := math.Abs(got - want); d > worst {
			worst = d
		}
	}
	for e := 0; e < 32; e++ {
		check(1 << e)
		check(1<<e | 1<<e - 1)
	}
	for i := 0; i < 1_000_000; i++ {
		check(r.Uint32())
	}
	// Table rounding (2^-17), interpolation (< 3e-6) and truncations of the
	// products (2^-16) bound the error.
	if worst > 3.5e-5 {
		t.Fatalf("log2 error %.3g, want below 3.5e-5", worst)
	}
	t.Logf("largest log2 error over 1e6 random values: %.3g (Q16 step 1.5e-5)", worst)
}

func flows(n int, seed uint64) []uint32 {
	r := rand.New(rand.NewPCG(seed, seed))
	hs := make([]uint32, n)
	for i := range hs {
		a := netip.AddrFrom4([4]byte{10, byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256))})
		f := Flow{Src: a, Dst: netip.MustParseAddr("10.200.0.1"), Proto: 6, HasPorts: true}
		f.Ports = [4]byte{byte(r.IntN(256)), byte(r.IntN(256)), 0, 80}
		hs[i] = f.Hash()
	}
	return hs
}

func candidates(weights ...uint16) []Candidate {
	cs := make([]Candidate, len(weights))
	for i, w := range weights {
		cs[i] = Candidate{ID: NexthopID(netip.AddrFrom4([4]byte{192, 168, 50, byte(2 + i)}), 100, 1), Weight: w, Usable: true}
	}
	return cs
}

// TestShares: each nexthop wins its share of the total weight, and the
// fixed point agrees with the floating-point choice on nearly every flow.
func TestShares(t *testing.T) {
	const n = 1_000_000
	hs := flows(n, 7)
	for _, weights := range [][]uint16{{1, 1}, {1, 2, 5}, {1, 1, 1, 1, 1, 1, 1, 1}, {1, 100}, {3, 7, 65535, 1000}} {
		cs := candidates(weights...)
		total := 0
		for _, w := range weights {
			total += int(w)
		}
		got := make([]int, len(cs))
		differ := 0
		for _, h := range hs {
			i := Pick(h, cs)
			got[i]++
			if PickExact(h, cs) != i {
				differ++
			}
		}
		for i, w := range weights {
			want := float64(w) / float64(total)
			share := float64(got[i]) / n
			// Binomial noise at 1e6 flows is below 0.0005; allow 0.005
			// absolute or 2% relative.
			if math.Abs(share-want) > math.Max(0.005, 0.02*want) {
				t.Errorf("weights %v: nexthop %d won %.4f of flows, want %.4f", weights, i, share, want)
			}
		}
		if float64(differ)/n > 1e-4 {
			t.Errorf("weights %v: fixed point and float disagree on %d of %d flows", weights, differ, n)
		}
		t.Logf("weights %v: shares %v of %d; fixed point differs from float on %d flows", weights, got, n, differ)
	}
}

// TestStability: adding a nexthop moves flows only to it; removing or
// disabling one moves only the flows it had.
func TestStability(t *testing.T) {
	hs := flows(100_000, 9)
	three := candidates(1, 2, 1)
	four := append(append([]Candidate{}, three...), candidates(1, 2, 1, 3)[3])
	// The same nexthops in another order choose the same.
	reversed := []Candidate{three[2], three[1], three[0]}
	for _, h := range hs {
		before := Pick(h, three)
		after := Pick(h, four)
		if after != before && after != 3 {
			t.Fatalf("flow %08x moved from nexthop %d to %d when nexthop 3 was added", h, before, after)
		}
		if r := Pick(h, reversed); reversed[r].ID != three[before].ID {
			t.Fatalf("flow %08x: the order of nexthops changed its choice", h)
		}
		down := append([]Candidate{}, four...)
		down[1].Usable = false
		if d := Pick(h, down); after != 1 && d != after {
			t.Fatalf("flow %08x moved from nexthop %d to %d when nexthop 1 went down", h, after, d)
		}
	}
	none := candidates(1, 1)
	none[0].Usable, none[1].Usable = false, false
	if Pick(hs[0], none) != -1 {
		t.Fatal("a choice among no usable nexthops")
	}
}

// TestFlowHash: IPv6 addresses count whole (the seed hashed only their low
// 32 bits), ports count only when present.
func TestFlowHash(t *testing.T) {
	base := Flow{Src: netip.MustParseAddr("fd00::1"), Dst: netip.MustParseAddr("fd00:200::1"), Proto: 17, HasPorts: true, Ports: [4]byte{0x30, 0x39, 0, 53}}
	seen := map[uint32]bool{base.Hash(): true}
	for _, src := range []string{"fd01::1", "fd00:0:0:1::1", "fd00::1:0:0:1"} {
		f := base
		f.Src = netip.MustParseAddr(src)
		if seen[f.Hash()] {
			t.Errorf("source %s hashes like another", src)
		}
		seen[f.Hash()] = true
	}
	noPorts := base
	noPorts.HasPorts = false
	if noPorts.Hash() == base.Hash() {
		t.Error("ports do not count")
	}
	ignored := noPorts
	ignored.Ports = [4]byte{1, 2, 3, 4}
	if ignored.Hash() != noPorts.Hash() {
		t.Error("ports count when HasPorts is false")
	}
}
