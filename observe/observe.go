// Package observe runs tunmux's programs in their observed build and reads
// what they report: frames as a program receives them and as it leaves
// them (capture), and one event per frame whose outcome is asked for
// (monitor). A Session observes the links it is given for as long as it is
// open, then moves them back to the programs they ran: with no session
// open, the programs are the plain build and pay nothing
// (progs/include/observe.h).
package observe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/cilium/ebpf/perf"
	"golang.org/x/sys/unix"

	"github.com/tunmux/tunmux/dataplane"
	"github.com/tunmux/tunmux/maps"
	"github.com/tunmux/tunmux/netdev"
)

// Where a record was taken.
type Where uint8

// The places and kinds of record (observe.h's OBSERVE_*).
const (
	Entry Where = dataplane.ObserveEntry  // a frame as the program received it
	Exit  Where = dataplane.ObserveExit   // a frame as the program left it
	Event Where = dataplane.ObserveEvents // a monitor event
)

func (w Where) String() string {
	switch w {
	case Entry:
		return "entry"
	case Exit:
		return "exit"
	case Event:
		return "event"
	}
	return fmt.Sprintf("where-%d", uint8(w))
}

// header mirrors struct observe_event (progs/include/observe.h); a test
// checks it against the generated type, field by field.
type header struct {
	TimeNs      uint64
	Ifindex     uint32
	PktLen      uint32
	CapLen      uint32
	Action      uint32
	Target      uint32
	Aux         uint32
	Suppressed  uint32
	Stat        uint16
	Where       uint8
	TargetKind  uint8
	TargetFlags uint8
	Pad         [7]uint8
	Prog        [16]byte
}

const headerSize = 64

// Target kinds and flags (observe.h).
const (
	targetIfindex   = 1
	targetDevmapKey = 2
	targetIngress   = 1 // BPF_F_INGRESS
	targetNeigh     = 0x40
	targetPeer      = 0x80
	noStat          = 0xffff
)

// Record is one report of an observed program.
type Record struct {
	Time      time.Time
	Dataplane string
	Program   string
	Hook      maps.Hook
	Where     Where
	Netns     string // the namespace of the interface ("" the caller's)
	Iface     string // the interface the frame arrived on
	Ifindex   uint32
	Length    uint32 // the frame's length
	Data      []byte // its first bytes (up to the snap length)
	// Exit and Event only:
	Action     string // "pass", "drop", "redirect", "tx", "next", "ok", "aborted"
	Outcome    string // the outcome counter, as `tunmux stats` names it ("vxlan", "pass_no_tunnel")
	Target     string // where a redirect sent it ("ul0", "peer of veth1")
	Aux        uint32 // the dataplane's own detail: an l2tp session id, a route nexthop id
	Suppressed uint32 // Event: events this CPU left out before this one (rate limit)
	L3         bool   // the frame starts with its IP header (no Ethernet header)
	// Key names the entry the frame belongs to, for exits and events: a
	// tunnel's inner pair "10.0.0.1->10.0.0.2", "session 101", a route
	// "10.200.0.0/16 via …", a pair "in0->out0".
	Key string
}

// Comment describes the record in one line: "encap exit redirect->ul0 vxlan".
func (r Record) Comment() string {
	s := r.Program + " " + r.Where.String()
	if r.Where == Entry {
		return s + " on " + r.Iface
	}
	a := r.Action
	if r.Target != "" {
		a += "->" + r.Target
	}
	s += " " + a
	if r.Outcome != "" {
		s += " " + r.Outcome
	}
	return s
}

// Options say what a Session asks of the programs.
type Options struct {
	Where        Where  // Entry|Exit (capture), Event (monitor), or a mix
	Ifindex      uint32 // only frames arriving on this interface; 0 all
	Snaplen      uint32 // bytes kept of a captured frame (at most 65535)
	EventSnaplen uint32 // bytes kept with an event
	// Outcomes: the stat values that make events, per dataplane (nil: all).
	Outcomes   func(dp *dataplane.Dataplane) [2]uint64
	Rate       uint64 // events per second per CPU
	Burst      uint64
	PerCPUPage int // perf buffer size per CPU, bytes; 0: 1 MB
}

// Session is a set of observations being read.
type Session struct {
	obs     []*source
	records chan Record
	errs    chan error
	mu      sync.Mutex
	lost    uint64
	names   *names
	closed  bool
	wg      sync.WaitGroup
	// stopFlush ends the flushing goroutine (made by Start).
	stopFlush chan struct{}
	offset    int64 // CLOCK_REALTIME - CLOCK_MONOTONIC, ns
}

// source is one dataplane's observation and its perf reader.
type source struct {
	o       *dataplane.Observation
	rd      *perf.Reader
	loaded  *dataplane.Loaded
	links   map[string]*dataplane.ObservedLink // by program
	stats   [][2]string                        // counter names by stat value
	devmaps string                             // the dataplane's devmap, for redirect targets
	routes  *maps.RouteState                   // route: the routes, for events' keys (made on first use)
}

// devmapOf names the devmap each dataplane redirects through (its key is
// what bpf_redirect_map notes).
var devmapOf = map[string]string{"encap": "devmap", "xconnect": "ports"}

// Open prepares observations of the links choose picks in each loaded
// dataplane: their observed programs are loaded, and the readers made, but
// nothing runs them until Start. No link anywhere: maps.ErrNotFound.
func Open(loaded []*dataplane.Loaded, choose dataplane.LinkChoice, opt Options) (*Session, error) {
	if opt.PerCPUPage == 0 {
		opt.PerCPUPage = 1 << 20
	}
	s := &Session{records: make(chan Record, 1024), errs: make(chan error, 1), names: newNames()}
	var mono, real unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono)
	unix.ClockGettime(unix.CLOCK_REALTIME, &real)
	s.offset = real.Nano() - mono.Nano()
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	for _, l := range loaded {
		cfg := dataplane.ObserveConfig{Flags: uint32(opt.Where), Ifindex: opt.Ifindex, Snaplen: opt.Snaplen,
			EventSnaplen: opt.EventSnaplen, Rate: opt.Rate, Burst: opt.Burst, Outcomes: [2]uint64{^uint64(0), ^uint64(0)}}
		if opt.Outcomes != nil {
			cfg.Outcomes = opt.Outcomes(l.DP)
		}
		o, err := l.Observe(choose, cfg)
		if errors.Is(err, maps.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		src := &source{o: o, loaded: l, links: map[string]*dataplane.ObservedLink{}, devmaps: devmapOf[l.DP.Name]}
		s.obs = append(s.obs, src)
		for _, ol := range o.Links {
			src.links[ol.Program] = ol
		}
		if src.stats, err = l.DP.CounterNames(); err != nil {
			return nil, err
		}
		// Woken only once a buffer is an eighth full (a wake-up per
		// record costs the datapath ~15 µs a frame here), and flushed
		// every FlushEvery so that a quiet link's records still come.
		if src.rd, err = perf.NewReaderWithOptions(o.Events, opt.PerCPUPage, perf.ReaderOptions{Watermark: opt.PerCPUPage / 8}); err != nil {
			return nil, fmt.Errorf("read %s's events: %w", l.DP.Name, err)
		}
	}
	if len(s.obs) == 0 {
		return nil, fmt.Errorf("no tunmux program is attached there: %w", maps.ErrNotFound)
	}
	ok = true
	return s, nil
}

// Links returns the links the session observes, by dataplane.
func (s *Session) Links() map[string][]*dataplane.ObservedLink {
	out := map[string][]*dataplane.ObservedLink{}
	for _, src := range s.obs {
		out[src.o.DP.Name] = append(out[src.o.DP.Name], src.o.Links...)
	}
	return out
}

// Observed describes the observed links: "encap on h1/wl0 (xdp)".
func (s *Session) Observed() []string {
	var out []string
	for _, src := range s.obs {
		for _, ol := range src.o.Links {
			netnsName, name := s.names.iface(src.loaded, ol.Netns, ol.Ifindex, ol.Hook)
			where := name
			if netnsName != "" {
				where = netnsName + "/" + name
			}
			out = append(out, fmt.Sprintf("%s on %s (%s)", dataplane.PinnedProgramName(ol.Program), where, ol.Hook))
		}
	}
	return out
}

// Start moves the links to their observed programs and starts reading.
func (s *Session) Start() error {
	for _, src := range s.obs {
		if err := src.o.Start(); err != nil {
			return err
		}
	}
	for _, src := range s.obs {
		s.wg.Add(1)
		go s.read(src)
	}
	s.stopFlush = make(chan struct{})
	s.wg.Add(1)
	go s.flush()
	return nil
}

// FlushEvery is how long a record may wait in a perf buffer below the
// wake-up mark before it is read.
const FlushEvery = 100 * time.Millisecond

func (s *Session) flush() {
	defer s.wg.Done()
	t := time.NewTicker(FlushEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stopFlush:
			return
		case <-t.C:
			for _, src := range s.obs {
				src.rd.Flush()
			}
		}
	}
}

// Records returns the records as they arrive; the channel closes when the
// session does.
func (s *Session) Records() <-chan Record { return s.records }

// Lost returns how many records the kernel could not hand over (a perf
// buffer was full); the frames themselves went on.
func (s *Session) Lost() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lost
}

func (s *Session) read(src *source) {
	defer s.wg.Done()
	for {
		rec, err := src.rd.Read()
		if errors.Is(err, perf.ErrFlushed) {
			continue
		}
		if err != nil {
			if !errors.Is(err, os.ErrClosed) && !errors.Is(err, perf.ErrClosed) {
				select {
				case s.errs <- err:
				default:
				}
			}
			return
		}
		if rec.LostSamples > 0 {
			s.mu.Lock()
			s.lost += rec.LostSamples
			s.mu.Unlock()
			continue
		}
		r, err := s.decode(src, rec.RawSample)
		if err != nil {
			continue
		}
		s.mu.Lock()
		closed := s.closed
		s.mu.Unlock()
		if closed {
			return
		}
		s.records <- r
	}
}

// Err returns a reader's failure, if one stopped.
func (s *Session) Err() <-chan error { return s.errs }

func (s *Session) decode(src *source, raw []byte) (Record, error) {
	if len(raw) < headerSize {
		return Record{}, fmt.Errorf("short record: %d bytes", len(raw))
	}
	var h header
	if err := binary.Read(bytes.NewReader(raw[:headerSize]), binary.NativeEndian, &h); err != nil {
		return Record{}, err
	}
	data := raw[headerSize:]
	if int(h.CapLen) < len(data) {
		data = data[:h.CapLen]
	}
	prog := string(h.Prog[:])
	if i := bytes.IndexByte(h.Prog[:], 0); i >= 0 {
		prog = string(h.Prog[:i])
	}
	r := Record{
		Time: time.Unix(0, int64(h.TimeNs)+s.offset), Dataplane: src.o.DP.Name, Program: prog,
		Where: Where(h.Where), Ifindex: h.Ifindex, Length: h.PktLen, Data: bytes.Clone(data),
		Aux: h.Aux, Suppressed: h.Suppressed,
	}
	ol := src.links[prog]
	var ns uint64
	if ol != nil {
		r.Hook, ns = ol.Hook, ol.Netns
	}
	r.Netns, r.Iface = s.names.iface(src.loaded, ns, h.Ifindex, r.Hook)
	r.L3 = src.o.DP.IsL3Variant(prog)
	if r.Where != Entry {
		r.Action = actionName(r.Hook, int32(h.Action))
		// An L3 build pushes an Ethernet header on what it redirects.
		r.L3 = r.L3 && r.Action != "redirect"
		if h.Stat != noStat && int(h.Stat) < len(src.stats) {
			r.Outcome = src.stats[h.Stat][1]
		}
		r.Target = s.names.target(src, ns, h)
		r.Key = s.key(src, r)
	}
	return r, nil
}

// actionName names a program's return value at its hook.
func actionName(hook maps.Hook, a int32) string {
	if hook == maps.HookXDP {
		switch a {
		case 0:
			return "aborted"
		case 1:
			return "drop"
		case 2:
			return "pass"
		case 3:
			return "tx"
		case 4:
			return "redirect"
		}
		return fmt.Sprintf("xdp-%d", a)
	}
	switch a {
	case -1:
		return "next"
	case 0:
		return "ok"
	case 2:
		return "drop"
	case 7:
		return "redirect"
	}
	return fmt.Sprintf("tc-%d", a)
}

// Close stops reading and moves every observed link back to the program it
// ran. It returns the first failure to move one back.
func (s *Session) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	var first error
	for _, src := range s.obs {
		if err := src.o.Close(); err != nil && first == nil {
			first = err
		}
	}
	if s.stopFlush != nil {
		close(s.stopFlush)
	}
	for _, src := range s.obs {
		if src.rd != nil {
			src.rd.Close()
		}
	}
	// Readers blocked on a full channel get out once it is drained.
	go func() {
		for range s.records {
		}
	}()
	s.wg.Wait()
	close(s.records)
	return first
}

// names resolves interface names, remembering them.
type names struct {
	mu    sync.Mutex
	known map[[2]uint64][2]string
}

func newNames() *names { return &names{known: map[[2]uint64][2]string{}} }

// iface names ifindex in namespace ns: the attachment record's names when
// the program is attached there, else the kernel's.
func (n *names) iface(l *dataplane.Loaded, ns uint64, ifindex uint32, hook maps.Hook) (netnsName, name string) {
	key := [2]uint64{ns, uint64(ifindex)}
	n.mu.Lock()
	defer n.mu.Unlock()
	if v, ok := n.known[key]; ok {
		return v[0], v[1]
	}
	netnsName, name = "", fmt.Sprintf("if%d", ifindex)
	if a, err := maps.GetAttachment(l.Maps["attachments"], ns, ifindex, hook); err == nil && a.Ifname != "" {
		netnsName, name = a.NetnsName, a.Ifname
	} else if ifc, ok := byIndex(ns, ifindex); ok {
		name = ifc
	}
	n.known[key] = [2]string{netnsName, name}
	return netnsName, name
}

// target names where a redirect sent a frame.
func (n *names) target(src *source, ns uint64, h header) string {
	idx := h.Target
	switch h.TargetKind {
	case targetIfindex:
	case targetDevmapKey:
		m := src.loaded.Maps[src.devmaps]
		var v struct{ Ifindex, ProgID uint32 }
		if m == nil || m.Lookup(idx, &v) != nil {
			return fmt.Sprintf("devmap[%d]", idx)
		}
		idx = v.Ifindex
	default:
		return ""
	}
	n.mu.Lock()
	key := [2]uint64{ns, uint64(idx) | 1<<40}
	v, ok := n.known[key]
	n.mu.Unlock()
	name := v[1]
	if !ok {
		name = fmt.Sprintf("if%d", idx)
		if s, ok := byIndex(ns, idx); ok {
			name = s
		}
		n.mu.Lock()
		n.known[key] = [2]string{"", name}
		n.mu.Unlock()
	}
	switch {
	case h.TargetFlags&targetPeer != 0:
		return "peer of " + name
	case h.TargetFlags&targetIngress != 0:
		return name + " (ingress)"
	}
	return name
}

// byIndex names ifindex in the namespace whose inode is ns.
func byIndex(ns uint64, ifindex uint32) (string, bool) {
	find := func() (string, bool) {
		ifc, err := netdev.ByIndex(int(ifindex))
		if err != nil {
			return "", false
		}
		return ifc.Name, true
	}
	if here, err := netdev.CurrentInode(); err == nil && (ns == 0 || here == ns) {
		return find()
	}
	nsp, err := netdev.FindByInode(ns)
	if err != nil {
		return "", false
	}
	var name string
	var ok bool
	netdev.DoHandle(nsp.Handle, func() error {
		name, ok = find()
		return nil
	})
	return name, ok
}
