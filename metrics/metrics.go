// Package metrics exposes tunmux's pinned state in the Prometheus text
// exposition format (version 0.0.4): every program outcome counter, the
// counters of each entry (tunnel, l2tp session, cross-connected pair, mux
// member) labelled by its key, map fill, links and doctor's checks. It
// reads the pins at each call and keeps nothing between them.
//
// The format is written here rather than with client_golang: that library
// links net/http and protobuf into the binary, which made every short
// tunmux command ~5 ms slower to start on the machines tunmux is measured
// on; tests parse the output with prometheus/common's parser.
package metrics

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/tunmux/tunmux/dataplane"
	"github.com/tunmux/tunmux/doctor"
	"github.com/tunmux/tunmux/maps"
)

// Options say what is read.
type Options struct {
	Root *maps.Root
	// Entries adds the per-entry series (one set per tunnel, session,
	// pair and member): many for large tables.
	Entries bool
	// Doctor adds doctor's checks (without the kernel drop sample).
	Doctor bool
	// Agent, when set, reports the apply --watch serving the metrics: its
	// series (tunmux_agent_*) are written with the pins'.
	Agent func() AgentStatus
}

// AgentStatus is what a running apply --watch has done.
type AgentStatus struct {
	Ready bool // it has applied a file (or found it in place) since it started
	// FileApplied: the file's latest version is what runs; false while a
	// bad version keeps the last good state running.
	FileApplied bool
	LastSuccess time.Time // the last apply or reconcile that succeeded
	// Runs counts the outcomes: applied (a version of the file, changes or
	// not), repaired (a reconcile that wrote), failed.
	Applied, Repaired, Failed uint64
}

// family is one metric: its name, help, type and samples.
type family struct {
	name, help, typ string
	labels          []string
	samples         []sample
	seen            map[string]int // label values -> index in samples
}

type sample struct {
	values []string
	value  string
}

// The families, in the order they are written.
var families = []family{
	{name: "dataplane_loaded", help: "1 when the dataplane's pins open, 0 when they do not (split, incompatible).", typ: "gauge", labels: []string{"dataplane"}},
	{name: "program_packets_total", help: "Frames each program counted under each outcome (tunmux stats).", typ: "counter", labels: []string{"dataplane", "program", "outcome"}},
	{name: "program_bytes_total", help: "Bytes of the frames each program counted under each outcome.", typ: "counter", labels: []string{"dataplane", "program", "outcome"}},
	{name: "map_entries", help: "Entries in each pinned map.", typ: "gauge", labels: []string{"dataplane", "map"}},
	{name: "map_capacity", help: "Capacity (max entries) of each pinned map.", typ: "gauge", labels: []string{"dataplane", "map"}},
	{name: "link_attached", help: "1 for a link that runs (attached or observed), 0 for a defunct one.", typ: "gauge", labels: []string{"dataplane", "program", "netns", "interface", "hook", "state"}},
	{name: "tunnel_packets_total", help: "Frames each encap tunnel carried, by direction (tx: encapsulated, rx: decapsulated).", typ: "counter", labels: []string{"inner_src", "inner_dst", "proto", "direction"}},
	{name: "tunnel_bytes_total", help: "Inner bytes each encap tunnel carried, by direction.", typ: "counter", labels: []string{"inner_src", "inner_dst", "proto", "direction"}},
	{name: "tunnel_drop_too_big_total", help: "Frames each encap tunnel dropped as larger than it carries.", typ: "counter", labels: []string{"inner_src", "inner_dst", "proto"}},
	{name: "l2tp_session_packets_total", help: "Frames each l2tp session carried, by direction.", typ: "counter", labels: []string{"session_id", "peer_session_id", "direction"}},
	{name: "l2tp_session_bytes_total", help: "Bytes each l2tp session carried, by direction.", typ: "counter", labels: []string{"session_id", "peer_session_id", "direction"}},
	{name: "l2tp_session_drops_total", help: "Frames each l2tp session dropped.", typ: "counter", labels: []string{"session_id", "peer_session_id"}},
	{name: "xconnect_packets_total", help: "Frames each cross-connected pair carried, by the end they arrived on.", typ: "counter", labels: []string{"a", "b", "from"}},
	{name: "xconnect_bytes_total", help: "Bytes each cross-connected pair carried, by the end they arrived on.", typ: "counter", labels: []string{"a", "b", "from"}},
	{name: "mux_member_packets_total", help: "Frames each mux member sent and received through the carrier.", typ: "counter", labels: []string{"member", "label", "direction"}},
	{name: "mux_member_bytes_total", help: "Bytes each mux member sent and received through the carrier.", typ: "counter", labels: []string{"member", "label", "direction"}},
	{name: "route_nexthops", help: "Nexthops of each overlay route.", typ: "gauge", labels: []string{"prefix"}},
	{name: "route_peer_up", help: "1 for an underlay peer marked up, 0 for down.", typ: "gauge", labels: []string{"peer"}},
	{name: "doctor_check_ok", help: "1 for a doctor check that passed, 0 for one that failed.", typ: "gauge", labels: []string{"check", "subject"}},
	{name: "agent_ready", help: "1 once apply --watch has applied its file since it started (its readiness, /readyz).", typ: "gauge"},
	{name: "agent_file_applied", help: "1 when the file's latest version runs, 0 while a bad version keeps the last good state running.", typ: "gauge"},
	{name: "agent_last_success_timestamp_seconds", help: "When an apply or reconcile of apply --watch last succeeded (Unix time; 0: never).", typ: "gauge"},
	{name: "agent_runs_total", help: "Outcomes of apply --watch: applied (a version of the file), repaired (drift written back), failed.", typ: "counter", labels: []string{"result"}},
	{name: "scrape_errors", help: "Errors met reading the pins for these metrics.", typ: "gauge"},
}

// Names lists every metric name written (with its tunmux_ prefix).
func Names() []string {
	out := make([]string, len(families))
	for i, f := range families {
		out[i] = "tunmux_" + f.name
	}
	return out
}

// set collects samples by family.
type set struct {
	byName map[string]*family
	order  []*family
}

func newSet() *set {
	s := &set{byName: map[string]*family{}}
	for _, f := range families {
		f := f
		s.byName[f.name] = &f
		s.order = append(s.order, &f)
	}
	return s
}

func (s *set) add(name, value string, labels ...string) {
	f := s.byName[name]
	if len(labels) != len(f.labels) {
		panic(fmt.Sprintf("metrics: %s takes %d labels, given %d", name, len(f.labels), len(labels)))
	}
	key := strings.Join(labels, "\x00")
	if f.seen == nil {
		f.seen = map[string]int{}
	}
	if i, dup := f.seen[key]; dup {
		// One series per label set: a check of the same subject twice
		// fails if either did; other repeats keep the first.
		if f.name == "doctor_check_ok" && value == "0" {
			f.samples[i].value = "0"
		}
		return
	}
	f.seen[key] = len(f.samples)
	f.samples = append(f.samples, sample{values: labels, value: value})
}

func (s *set) uint(name string, v uint64, labels ...string) {
	s.add(name, strconv.FormatUint(v, 10), labels...)
}

func (s *set) bool(name string, v bool, labels ...string) {
	if v {
		s.add(name, "1", labels...)
	} else {
		s.add(name, "0", labels...)
	}
}

// Write reads the pins and writes every metric once.
func Write(w io.Writer, o Options) error {
	s := newSet()
	errs := 0
	st, err := dataplane.ReadStatus(o.Root)
	if err != nil {
		errs++
	}
	for _, ds := range st.Dataplanes {
		for _, m := range ds.Maps {
			s.uint("map_entries", uint64(m.Entries), ds.Name, m.Name)
			s.uint("map_capacity", uint64(m.Capacity), ds.Name, m.Name)
		}
		for _, ls := range ds.Links {
			s.bool("link_attached", ls.State != "defunct", ds.Name, ls.Program, ls.Netns, ls.Interface, ls.Hook, ls.State)
		}
		dp, err := dataplane.Lookup(ds.Name)
		if err != nil {
			continue
		}
		l, err := dataplane.Open(o.Root, dp)
		if err != nil {
			s.bool("dataplane_loaded", false, ds.Name)
			if !errors.Is(err, maps.ErrNotLoaded) {
				errs++
			}
			continue
		}
		s.bool("dataplane_loaded", true, ds.Name)
		stats, err := l.Stats()
		if err != nil {
			errs++
		}
		for _, c := range stats {
			s.uint("program_packets_total", c.Packets, c.Dataplane, c.Program, c.Outcome)
			s.uint("program_bytes_total", c.Bytes, c.Dataplane, c.Program, c.Outcome)
		}
		if o.Entries {
			if err := entries(s, l); err != nil {
				errs++
			}
		}
		l.Close()
	}
	if o.Doctor {
		for _, r := range doctor.Run(doctor.Options{Root: o.Root}).Results {
			s.bool("doctor_check_ok", r.Status == doctor.OK, r.Check, r.Subject)
		}
	}
	if o.Agent != nil {
		a := o.Agent()
		s.bool("agent_ready", a.Ready)
		s.bool("agent_file_applied", a.FileApplied)
		ts := "0"
		if !a.LastSuccess.IsZero() {
			ts = strconv.FormatFloat(float64(a.LastSuccess.UnixMilli())/1000, 'f', 3, 64)
		}
		s.add("agent_last_success_timestamp_seconds", ts)
		s.uint("agent_runs_total", a.Applied, "applied")
		s.uint("agent_runs_total", a.Repaired, "repaired")
		s.uint("agent_runs_total", a.Failed, "failed")
	}
	s.uint("scrape_errors", uint64(errs))
	return s.write(w)
}

// entries adds the per-entry series of one dataplane.
func entries(s *set, l *dataplane.Loaded) error {
	switch l.DP {
	case dataplane.EncapDataplane:
		st, err := maps.NewEncapState(l.Maps)
		if err != nil {
			return err
		}
		ts, err := st.ListTunnels()
		if err != nil {
			return err
		}
		st.FillCounters(ts)
		for _, t := range ts {
			src, dst, proto := t.InnerSrc.String(), t.InnerDst.String(), t.Proto.String()
			s.uint("tunnel_packets_total", t.Counters.TxPackets, src, dst, proto, "tx")
			s.uint("tunnel_packets_total", t.Counters.RxPackets, src, dst, proto, "rx")
			s.uint("tunnel_bytes_total", t.Counters.TxBytes, src, dst, proto, "tx")
			s.uint("tunnel_bytes_total", t.Counters.RxBytes, src, dst, proto, "rx")
			s.uint("tunnel_drop_too_big_total", t.Counters.DropTooBig, src, dst, proto)
		}
	case dataplane.L2TPDataplane:
		ss, err := dataplane.ListOf(l, maps.NewL2TPState, (*maps.L2TPState).ListSessions)
		if err != nil {
			return err
		}
		for _, x := range ss {
			id, peer := strconv.FormatUint(uint64(x.ID), 10), strconv.FormatUint(uint64(x.PeerID), 10)
			s.uint("l2tp_session_packets_total", x.Counters.TxPackets, id, peer, "tx")
			s.uint("l2tp_session_packets_total", x.Counters.RxPackets, id, peer, "rx")
			s.uint("l2tp_session_bytes_total", x.Counters.TxBytes, id, peer, "tx")
			s.uint("l2tp_session_bytes_total", x.Counters.RxBytes, id, peer, "rx")
			s.uint("l2tp_session_drops_total", x.Counters.Drops, id, peer)
		}
	case dataplane.XconnectDataplane:
		ps, err := dataplane.ListOf(l, maps.NewXconnectState, (*maps.XconnectState).ListPairs)
		if err != nil {
			return err
		}
		for _, p := range ps {
			s.uint("xconnect_packets_total", p.AtoB.Packets, p.A.Name, p.B.Name, p.A.Name)
			s.uint("xconnect_bytes_total", p.AtoB.Bytes, p.A.Name, p.B.Name, p.A.Name)
			if p.A.Ifindex != p.B.Ifindex {
				s.uint("xconnect_packets_total", p.BtoA.Packets, p.A.Name, p.B.Name, p.B.Name)
				s.uint("xconnect_bytes_total", p.BtoA.Bytes, p.A.Name, p.B.Name, p.B.Name)
			}
		}
	case dataplane.MuxDataplane:
		ms, err := dataplane.ListOf(l, maps.NewMuxState, (*maps.MuxState).Members)
		if err != nil {
			return err
		}
		for _, m := range ms {
			label := strconv.Itoa(int(m.Label))
			s.uint("mux_member_packets_total", m.Counters.TxPackets, m.Name, label, "tx")
			s.uint("mux_member_packets_total", m.Counters.RxPackets, m.Name, label, "rx")
			s.uint("mux_member_bytes_total", m.Counters.TxBytes, m.Name, label, "tx")
			s.uint("mux_member_bytes_total", m.Counters.RxBytes, m.Name, label, "rx")
		}
	case dataplane.RouteDataplane:
		rs, err := dataplane.ListOf(l, maps.NewRouteState, (*maps.RouteState).Routes)
		if err != nil {
			return err
		}
		for _, r := range rs {
			s.uint("route_nexthops", uint64(len(r.Nexthops)), r.Prefix.String())
		}
		peers, err := dataplane.ListOf(l, maps.NewRouteState, (*maps.RouteState).Peers)
		if err != nil {
			return err
		}
		for _, p := range peers {
			s.bool("route_peer_up", !p.Down, p.Remote.String())
		}
	}
	return nil
}

// write writes the families with samples in the text format.
func (s *set) write(w io.Writer) error {
	bw := bufio.NewWriter(w)
	for _, f := range s.order {
		if len(f.samples) == 0 {
			continue
		}
		name := "tunmux_" + f.name
		fmt.Fprintf(bw, "# HELP %s %s\n# TYPE %s %s\n", name, escapeHelp(f.help), name, f.typ)
		for _, x := range f.samples {
			bw.WriteString(name)
			if len(f.labels) > 0 {
				bw.WriteByte('{')
				for i, l := range f.labels {
					if i > 0 {
						bw.WriteByte(',')
					}
					fmt.Fprintf(bw, "%s=\"%s\"", l, escapeLabel(x.values[i]))
				}
				bw.WriteByte('}')
			}
			bw.WriteByte(' ')
			bw.WriteString(x.value)
			bw.WriteByte('\n')
		}
	}
	return bw.Flush()
}

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

func escapeHelp(s string) string  { return helpEscaper.Replace(s) }
func escapeLabel(s string) string { return labelEscaper.Replace(s) }
