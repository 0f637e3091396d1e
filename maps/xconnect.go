package maps

import (
	"errors"
	"fmt"
	"sort"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/tunmux/tunmux/progs/xconnect"
)

// XconnectSchema is the layout version of the xconnect dataplane's maps.
const XconnectSchema = 1

// Traffic is a packet and byte count.
type Traffic struct {
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

// PairEnd is one interface of a cross-connected pair.
type PairEnd struct {
	Name      string    `json:"name"`
	Ifindex   uint32    `json:"ifindex"`
	Readiness Readiness `json:"readiness"` // how it accepts frames redirected to it
	Peer      string    `json:"peer"`      // "netns/ifname" of its veth peer, if a veth
}

// Pair is two interfaces cross-connected: frames arriving on A leave on B
// and the other way. A == B is a self-connect.
type Pair struct {
	A     PairEnd `json:"a"`
	B     PairEnd `json:"b"`
	Netns uint64  `json:"netns"`
	AtoB  Traffic `json:"a_to_b"`
	BtoA  Traffic `json:"b_to_a"`
}

// Key names the pair by its ends, the lower ifindex first.
func (p Pair) Key() string { return p.A.Name + "<->" + p.B.Name }

// XconnectState is the pinned state of the xconnect dataplane.
type XconnectState struct {
	ports, stats, names *ebpf.Map
}

// NewXconnectState wraps the xconnect dataplane's open maps, by name.
func NewXconnectState(ms map[string]*ebpf.Map) (*XconnectState, error) {
	s := &XconnectState{ports: ms["ports"], stats: ms["port_stats"], names: ms["port_names"]}
	if s.ports == nil || s.stats == nil || s.names == nil {
		return nil, fmt.Errorf("xconnect state: missing maps: %w", ErrNotLoaded)
	}
	return s, nil
}

// ListPairs returns every pair, with its traffic, sorted by A's ifindex.
func (st *XconnectState) ListPairs() ([]Pair, error) {
	var (
		k    uint32
		v    xconnect.XconnectPortInfo
		ends = map[uint32]xconnect.XconnectPortInfo{}
	)
	it := st.names.Iterate()
	for it.Next(&k, &v) {
		ends[k] = v
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("list pairs: %w", err)
	}
	out := []Pair{}
	for idx, v := range ends {
		if v.Peer < idx {
			if _, ok := ends[v.Peer]; ok {
				continue // listed from the lower end
			}
		}
		peer, ok := ends[v.Peer]
		if !ok {
			peer = xconnect.XconnectPortInfo{}
		}
		p := Pair{
			A:     PairEnd{Name: cString(v.Name[:]), Ifindex: idx, Readiness: Readiness(v.Readiness), Peer: cString(v.ReadyPeer[:])},
			B:     PairEnd{Name: cString(v.PeerName[:]), Ifindex: v.Peer, Readiness: Readiness(peer.Readiness), Peer: cString(peer.ReadyPeer[:])},
			Netns: v.Netns,
		}
		p.AtoB, p.BtoA = st.traffic(idx), st.traffic(v.Peer)
		if idx == v.Peer {
			p.BtoA = Traffic{}
		}
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].A.Ifindex < out[j].A.Ifindex })
	return out, nil
}

// PairOf returns the pair that ifindex is an end of, or ErrNotFound.
func (st *XconnectState) PairOf(ifindex uint32) (Pair, error) {
	return findOne(st.ListPairs, func(p Pair) bool { return p.A.Ifindex == ifindex || p.B.Ifindex == ifindex },
		func() error { return fmt.Errorf("ifindex %d is in no pair: %w", ifindex, ErrNotFound) })
}

// PairNamed returns the pair with an end recorded under name, or ErrNotFound.
func (st *XconnectState) PairNamed(name string) (Pair, error) {
	return findOne(st.ListPairs, func(p Pair) bool { return p.A.Name == name || p.B.Name == name },
		func() error { return fmt.Errorf("%s is in no pair: %w", name, ErrNotFound) })
}

func (st *XconnectState) traffic(ifindex uint32) Traffic {
	return sumPerCPU[xconnect.XconnectCounter, Traffic](st.stats, ifindex)
}

// PutPair writes a pair: counters and records first, then the two devmap
// entries the datapath follows. The calling thread must be in the pair's
// namespace (the kernel resolves the devmap's ifindexes there).
func (st *XconnectState) PutPair(_ *Lock, p Pair) error {
	ends := []PairEnd{p.A, p.B}
	if p.A.Ifindex == p.B.Ifindex {
		ends = ends[:1]
	}
	for i, end := range ends {
		other := ends[len(ends)-1-i]
		zero := make([]xconnect.XconnectCounter, ebpf.MustPossibleCPU())
		if err := st.stats.Update(&end.Ifindex, zero, ebpf.UpdateNoExist); err != nil && !errors.Is(err, ebpf.ErrKeyExist) {
			return fmt.Errorf("create counters of %s: %w", end.Name, err)
		}
		var v xconnect.XconnectPortInfo
		v.Netns, v.Peer = p.Netns, other.Ifindex
		putCString(v.Name[:], end.Name)
		putCString(v.PeerName[:], other.Name)
		putCString(v.ReadyPeer[:], end.Peer)
		v.Readiness = uint8(end.Readiness)
		if err := st.names.Put(&end.Ifindex, &v); err != nil {
			return fmt.Errorf("record %s: %w", end.Name, err)
		}
	}
	for i, end := range ends {
		other := ends[len(ends)-1-i]
		dv := devmapValue{Ifindex: other.Ifindex}
		if err := st.ports.Put(&end.Ifindex, &dv); err != nil {
			if errors.Is(err, unix.E2BIG) {
				return fmt.Errorf("cross-connect %s: the pair map is full (%d ends); load xconnect with a larger --max-entries: %w", p.Key(), st.ports.MaxEntries(), err)
			}
			return fmt.Errorf("cross-connect %s -> %s: %w", end.Name, other.Name, err)
		}
	}
	return nil
}

// DeletePair removes a pair: the devmap entries first, then the records.
func (st *XconnectState) DeletePair(lock *Lock, p Pair) error {
	return st.DeleteEnds(lock, []PairEnd{p.A, p.B})
}

// DeleteEnds removes pair ends: their devmap entries first, then their
// records and counters.
func (st *XconnectState) DeleteEnds(_ *Lock, ends []PairEnd) error {
	for _, e := range ends {
		if err := st.ports.Delete(&e.Ifindex); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("disconnect %s: %w", e.Name, err)
		}
	}
	for _, e := range ends {
		_ = st.names.Delete(&e.Ifindex)
		_ = st.stats.Delete(&e.Ifindex)
	}
	return nil
}

// Live reports whether both devmap entries of the pair are present (the
// kernel drops the entries of an interface that goes away).
func (st *XconnectState) Live(p Pair) bool {
	var dv devmapValue
	return st.ports.Lookup(&p.A.Ifindex, &dv) == nil && dv.Ifindex == p.B.Ifindex &&
		st.ports.Lookup(&p.B.Ifindex, &dv) == nil && dv.Ifindex == p.A.Ifindex
}
