// Package hrw is the route dataplane's nexthop choice, in Go: weighted
// rendezvous (highest random weight) hashing in fixed point, computed
// exactly as progs/route/route.c computes it, so that userspace can say
// which nexthop a flow takes and tests can check the program against it.
//
// For a flow, every usable nexthop i draws u_i = mix(flowhash ^ id_i) / 2^32
// and scores w_i / -ln(u_i); the highest score wins. Each nexthop then wins
// a share of flows equal to its share of the total weight, and adding or
// removing one nexthop moves only the flows that it wins or had won. BPF has
// no floating point, so -log2(u) is computed in Q16 fixed point from the
// position of the top bit and a 257-entry table of log2 over the mantissa
// with linear interpolation (ln and log2 differ by a constant factor, which
// the comparison cancels).
package hrw

import (
	"encoding/binary"
	"math"
	"net/netip"
)

// MaxNexthops is the most nexthops a route holds.
const MaxNexthops = 8

// Table is log2(1 + i/256) in Q16 for i = 0..256, rounded to nearest.
var Table = func() (t [257]uint32) {
	for i := range t {
		t[i] = uint32(math.Round(math.Log2(1+float64(i)/256) * 65536))
	}
	return t
}()

// Log2Q16 returns log2(x) in Q16 fixed point (x taken as at least 1).
func Log2Q16(x uint32) uint32 {
	x |= 1
	e := uint32(31 - leadingZeros(x))
	frac := (x << (31 - e)) << 1
	idx, rem := frac>>24, (frac>>8)&0xffff
	lo, hi := Table[idx], Table[idx+1]
	return e<<16 + lo + ((hi-lo)*rem)>>16
}

func leadingZeros(x uint32) int {
	n := 0
	for x&0x80000000 == 0 {
		x <<= 1
		n++
	}
	return n
}

// Rarity is -log2(x / 2^32) in Q16, at least 1: the smaller, the likelier
// a nexthop with hash x wins.
func Rarity(x uint32) uint64 {
	r := uint64(32<<16) - uint64(Log2Q16(x))
	if r == 0 {
		r = 1
	}
	return r
}

func rotl(x uint32, r uint) uint32 { return x<<r | x>>(32-r) }

func murmurRound(h, k uint32) uint32 {
	k *= 0xcc9e2d51
	k = rotl(k, 15)
	k *= 0x1b873593
	h ^= k
	h = rotl(h, 13)
	return h*5 + 0xe6546b64
}

// Mix is the murmur3 finaliser.
func Mix(h uint32) uint32 {
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}

// hashWords folds words through murmur3 rounds and finalises.
func hashWords(w []uint32) uint32 {
	h := uint32(0x9747b28c)
	for _, k := range w {
		h = murmurRound(h, k)
	}
	return Mix(h ^ uint32(4*len(w)))
}

// Flow is what the program hashes of a packet.
type Flow struct {
	Src, Dst netip.Addr // both IPv4 or both IPv6
	Proto    uint8      // IP protocol (IPv6: after hop-by-hop, routing and destination options)
	// Ports are the first four bytes of the transport header, as they are
	// on the wire; HasPorts when they are hashed (TCP, UDP, SCTP, UDP-Lite,
	// not a fragment, header present).
	Ports    [4]byte
	HasPorts bool
}

// Hash returns the flow's hash, as the program computes it.
func (f Flow) Hash() uint32 {
	var w [10]uint32
	family := uint32(4)
	if f.Dst.Is6() {
		family = 6
		s, d := f.Src.As16(), f.Dst.As16()
		for i := 0; i < 4; i++ {
			w[i] = binary.LittleEndian.Uint32(s[4*i:])
			w[4+i] = binary.LittleEndian.Uint32(d[4*i:])
		}
	} else {
		s, d := f.Src.As4(), f.Dst.As4()
		w[0] = binary.LittleEndian.Uint32(s[:])
		w[4] = binary.LittleEndian.Uint32(d[:])
	}
	w[8] = family<<8 | uint32(f.Proto)
	if f.HasPorts {
		w[9] = binary.LittleEndian.Uint32(f.Ports[:])
	}
	return hashWords(w[:])
}

// NexthopID returns the identity hash of a nexthop: its remote, VNI and
// protocol. A flow's draw for a nexthop depends on nothing else, so it does
// not change when other nexthops come or go.
func NexthopID(remote netip.Addr, vni uint32, proto uint8) uint32 {
	a := remote.As16()
	var w [6]uint32
	for i := 0; i < 4; i++ {
		w[i] = binary.LittleEndian.Uint32(a[4*i:])
	}
	w[4] = vni
	w[5] = uint32(proto)
	if remote.Is4() {
		w[5] |= 4 << 8
	} else {
		w[5] |= 6 << 8
	}
	return hashWords(w[:])
}

// Candidate is one nexthop as the choice sees it.
type Candidate struct {
	ID     uint32
	Weight uint16
	// Usable: its peer is healthy, or the flow is health-probe traffic to it.
	Usable bool
}

// Pick returns the index of the candidate the flow with hash h takes, or
// -1 if none is usable; ties go to the first.
func Pick(h uint32, cs []Candidate) int {
	best := -1
	var bestW, bestR uint64 = 0, 1
	for i, c := range cs {
		if !c.Usable {
			continue
		}
		w, r := uint64(c.Weight), Rarity(Mix(h^c.ID))
		if best < 0 || w*bestR > bestW*r {
			best, bestW, bestR = i, w, r
		}
	}
	return best
}

// PickExact is Pick in floating point, without the table: what the fixed
// point approximates.
func PickExact(h uint32, cs []Candidate) int {
	best, bestScore := -1, 0.0
	for i, c := range cs {
		if !c.Usable {
			continue
		}
		u := (float64(Mix(h^c.ID)|1) / (1 << 32))
		score := float64(c.Weight) / -math.Log(u)
		if best < 0 || score > bestScore {
			best, bestScore = i, score
		}
	}
	return best
}
