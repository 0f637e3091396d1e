package apply

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	"gopkg.in/yaml.v3"

	"github.com/tunmux/tunmux/dataplane"
	"github.com/tunmux/tunmux/maps"
	"github.com/tunmux/tunmux/netdev"
)

// State is a node's pinned state written as a desired-state file: what
// Export returns, and what applying it (after 'tunmux unload --all', or on
// a fresh bpffs at boot) makes again. Keys are those of the apply file.
type State struct {
	Load     map[string]LoadOut `yaml:"load,omitempty" json:"load,omitempty"`
	Attach   []AttachOut        `yaml:"attach" json:"attach"`
	Encap    *EncapOut          `yaml:"encap,omitempty" json:"encap,omitempty"`
	L2TP     *L2TPOut           `yaml:"l2tp,omitempty" json:"l2tp,omitempty"`
	Xconnect *XconnectOut       `yaml:"xconnect,omitempty" json:"xconnect,omitempty"`
	Mux      *MuxOut            `yaml:"mux,omitempty" json:"mux,omitempty"`
	Route    *RouteOut          `yaml:"route,omitempty" json:"route,omitempty"`
}

// LoadOut is a dataplane's load options.
type LoadOut struct {
	MaxEntries uint32 `yaml:"max-entries,omitempty" json:"max-entries,omitempty"`
}

// AttachOut is one attachment of an attachable program.
type AttachOut struct {
	Program string `yaml:"program" json:"program"`
	Iface   string `yaml:"iface" json:"iface"`
	Hook    string `yaml:"hook,omitempty" json:"hook,omitempty"`
	Mode    string `yaml:"mode,omitempty" json:"mode,omitempty"`
}

// EncapOut is the encap section.
type EncapOut struct {
	Tunnels []TunnelOut `yaml:"tunnels" json:"tunnels"`
	Devmap  []SlotOut   `yaml:"devmap" json:"devmap"`
}

// TunnelOut is a tunnel in the keys of 'tunmux tunnel add'.
type TunnelOut struct {
	InnerSrc    string   `yaml:"inner-src" json:"inner-src"`
	InnerDst    string   `yaml:"inner-dst" json:"inner-dst"`
	Proto       string   `yaml:"proto" json:"proto"`
	VNI         *uint32  `yaml:"vni,omitempty" json:"vni,omitempty"`
	VlanID      *uint16  `yaml:"vlan-id,omitempty" json:"vlan-id,omitempty"`
	OuterSrc    string   `yaml:"outer-src,omitempty" json:"outer-src,omitempty"`
	OuterDst    string   `yaml:"outer-dst,omitempty" json:"outer-dst,omitempty"`
	SrcMAC      string   `yaml:"src-mac,omitempty" json:"src-mac,omitempty"`
	DstMAC      string   `yaml:"dst-mac,omitempty" json:"dst-mac,omitempty"`
	InnerDstMAC string   `yaml:"inner-dst-mac,omitempty" json:"inner-dst-mac,omitempty"`
	SrcPort     uint16   `yaml:"src-port,omitempty" json:"src-port,omitempty"`
	GeneveOpts  []string `yaml:"geneve-opt,omitempty" json:"geneve-opt,omitempty"`
	Underlay    string   `yaml:"underlay" json:"underlay"`
	Overlay     string   `yaml:"overlay" json:"overlay"`
}

// SlotOut is a plain redirect slot.
type SlotOut struct {
	In  string `yaml:"in" json:"in"`
	Out string `yaml:"out" json:"out"`
}

// L2TPOut is the l2tp section.
type L2TPOut struct {
	Sessions []SessionOut `yaml:"sessions" json:"sessions"`
}

// SessionOut is a session in the keys of 'tunmux l2tp session add'.
type SessionOut struct {
	SessionID     uint32 `yaml:"session-id" json:"session-id"`
	PeerSessionID uint32 `yaml:"peer-session-id" json:"peer-session-id"`
	Encap         string `yaml:"encap" json:"encap"`
	Local         string `yaml:"local" json:"local"`
	Peer          string `yaml:"peer" json:"peer"`
	Cookie        string `yaml:"cookie,omitempty" json:"cookie,omitempty"`
	PeerCookie    string `yaml:"peer-cookie,omitempty" json:"peer-cookie,omitempty"`
	L2Spec        string `yaml:"l2spec" json:"l2spec"`
	EthIface      string `yaml:"eth-iface" json:"eth-iface"`
	TunnelIface   string `yaml:"tunnel-iface" json:"tunnel-iface"`
	PeerMAC       string `yaml:"peer-mac,omitempty" json:"peer-mac,omitempty"`
}

// XconnectOut is the xconnect section.
type XconnectOut struct {
	Pairs []PairOut `yaml:"pairs" json:"pairs"`
}

// PairOut is a cross-connected pair.
type PairOut struct {
	A    string `yaml:"a" json:"a"`
	B    string `yaml:"b" json:"b"`
	Mode string `yaml:"mode,omitempty" json:"mode,omitempty"`
}

// MuxOut is the mux section.
type MuxOut struct {
	Carrier *CarrierOut `yaml:"carrier,omitempty" json:"carrier,omitempty"`
	Members []MemberOut `yaml:"members" json:"members"`
}

// CarrierOut is the mux carrier.
type CarrierOut struct {
	Iface   string `yaml:"iface" json:"iface"`
	OnMiss  string `yaml:"on-miss" json:"on-miss"`
	PeerMAC string `yaml:"peer-mac,omitempty" json:"peer-mac,omitempty"`
}

// MemberOut is a mux member.
type MemberOut struct {
	Name      string `yaml:"name" json:"name"`
	Label     uint8  `yaml:"label" json:"label"`
	Create    bool   `yaml:"create,omitempty" json:"create,omitempty"`
	MTU       int    `yaml:"mtu,omitempty" json:"mtu,omitempty"`
	ConfigOut `yaml:",inline"`
}

// ConfigOut is what a device tunmux created carries: its addresses and the
// kernel routes through it.
type ConfigOut struct {
	Address     []string `yaml:"address,omitempty" json:"address,omitempty"`
	KernelRoute []string `yaml:"kernel-route,omitempty" json:"kernel-route,omitempty"`
}

// configOut reads the addresses and kernel routes of the interface called name.
func configOut(name string) ConfigOut {
	var o ConfigOut
	cfg, err := dataplane.ReadDeviceConfig(name)
	if err != nil {
		return o
	}
	for _, a := range cfg.Addresses {
		o.Address = append(o.Address, a.String())
	}
	for _, r := range cfg.Routes {
		o.KernelRoute = append(o.KernelRoute, r.String())
	}
	return o
}

// RouteOut is the route section.
type RouteOut struct {
	Devices []DeviceOut     `yaml:"devices" json:"devices"`
	Routes  []RouteEntryOut `yaml:"routes" json:"routes"`
	Peers   []PeerOut       `yaml:"peers" json:"peers"`
}

// DeviceOut is a route dataplane device.
type DeviceOut struct {
	Name      string `yaml:"name" json:"name"`
	Routes    bool   `yaml:"routes,omitempty" json:"routes,omitempty"`
	Proto     string `yaml:"proto,omitempty" json:"proto,omitempty"`
	Local     string `yaml:"local,omitempty" json:"local,omitempty"`
	Port      int    `yaml:"port,omitempty" json:"port,omitempty"`
	MTU       int    `yaml:"mtu,omitempty" json:"mtu,omitempty"`
	ConfigOut `yaml:",inline"`
}

// RouteEntryOut is a route with its nexthops in --nexthop form.
type RouteEntryOut struct {
	Prefix   string   `yaml:"prefix" json:"prefix"`
	Nexthops []string `yaml:"nexthops" json:"nexthops"`
}

// PeerOut is a peer's health entry.
type PeerOut struct {
	Remote    string `yaml:"remote" json:"remote"`
	Health    string `yaml:"health" json:"health"`
	ProbePort uint16 `yaml:"probe-port,omitempty" json:"probe-port,omitempty"`
}

// Export reads the pinned state under root as a desired-state file, for
// the dataplanes named (every loaded one when none is). Interfaces are
// named as they are in the namespace netnsName (the caller's when "");
// values that follow from an interface (a tunnel's source MAC that is its
// underlay's, a veth carrier's peer MAC) are left out, so that the file
// still holds when those interfaces are made again.
func Export(root *maps.Root, netnsName string, only []string) (*State, error) {
	want := map[string]bool{}
	for _, name := range only {
		if _, err := dataplane.Lookup(name); err != nil {
			return nil, err
		}
		want[name] = true
	}
	st := &State{Load: map[string]LoadOut{}, Attach: []AttachOut{}}
	err := netdev.Do(netnsName, func() error {
		ino, err := netdev.CurrentInode()
		if err != nil {
			return err
		}
		for _, dp := range dataplane.All() {
			if len(want) > 0 && !want[dp.Name] {
				continue
			}
			l, err := dataplane.Open(root, dp)
			if errors.Is(err, maps.ErrNotLoaded) {
				continue
			}
			if err != nil {
				return err
			}
			lo := LoadOut{}
			if !dp.FixedSize {
				lo.MaxEntries = l.Maps[dp.MainMap].MaxEntries()
			}
			l.Close()
			st.Load[dp.Name] = lo
			if err := exportDataplane(root, dp, ino, st); err != nil {
				return fmt.Errorf("export %s: %w", dp.Name, err)
			}
		}
		atts, err := dataplane.Attachments(root, ino)
		if err != nil {
			return err
		}
		for _, a := range atts {
			if len(want) > 0 && !want[a.DP.Name] {
				continue
			}
			st.Attach = append(st.Attach, AttachOut{Program: a.Program, Iface: a.Record.Ifname, Hook: a.Hook(), Mode: a.Mode()})
		}
		return nil
	})
	return st, err
}

// exportDataplane adds one loaded dataplane's section to st. It runs in the
// namespace of the interfaces.
func exportDataplane(root *maps.Root, dp *dataplane.Dataplane, ino uint64, st *State) error {
	switch dp {
	case dataplane.EncapDataplane:
		e, err := dataplane.OpenEncap(root)
		if err != nil {
			return err
		}
		defer e.Close()
		st.Encap, err = exportEncap(e)
		return err
	case dataplane.L2TPDataplane:
		l, err := dataplane.OpenL2TP(root)
		if err != nil {
			return err
		}
		defer l.Close()
		sessions, err := l.State.ListSessions()
		if err != nil {
			return err
		}
		st.L2TP = &L2TPOut{Sessions: []SessionOut{}}
		for _, s := range sessions {
			st.L2TP.Sessions = append(st.L2TP.Sessions, exportSession(s))
		}
	case dataplane.XconnectDataplane:
		x, err := dataplane.OpenXconnect(root)
		if err != nil {
			return err
		}
		defer x.Close()
		pairs, err := x.State.ListPairs()
		if err != nil {
			return err
		}
		st.Xconnect = &XconnectOut{Pairs: []PairOut{}}
		for _, p := range pairs {
			st.Xconnect.Pairs = append(st.Xconnect.Pairs, PairOut{A: p.A.Name, B: p.B.Name, Mode: x.PairMode(p)})
		}
		sort.Slice(st.Xconnect.Pairs, func(i, j int) bool { return st.Xconnect.Pairs[i].A < st.Xconnect.Pairs[j].A })
	case dataplane.MuxDataplane:
		m, err := dataplane.OpenMux(root)
		if err != nil {
			return err
		}
		defer m.Close()
		st.Mux, err = exportMux(m)
		return err
	case dataplane.RouteDataplane:
		r, err := dataplane.OpenRoute(root)
		if err != nil {
			return err
		}
		defer r.Close()
		st.Route, err = exportRoute(r, ino)
		return err
	}
	return nil
}

func exportEncap(e *dataplane.Encap) (*EncapOut, error) {
	out := &EncapOut{Tunnels: []TunnelOut{}, Devmap: []SlotOut{}}
	tunnels, err := e.State.ListTunnels()
	if err != nil {
		return nil, err
	}
	for _, t := range tunnels {
		j := t.JSON()
		o := TunnelOut{InnerSrc: j.InnerSrc, InnerDst: j.InnerDst, Proto: j.Proto, VNI: j.VNI, VlanID: j.VlanID,
			SrcPort: t.SrcPort, Underlay: t.Underlay, Overlay: t.Overlay}
		if t.Proto.UsesUDP() {
			o.OuterSrc, o.OuterDst, o.DstMAC = t.OuterSrc.String(), t.OuterDst.String(), t.DstMAC.String()
			if under, err := netdev.Lookup(t.Underlay); err != nil || !bytes.Equal(under.MAC, t.SrcMAC) {
				o.SrcMAC = t.SrcMAC.String()
			}
		}
		if t.InnerDstMAC != nil {
			o.InnerDstMAC = t.InnerDstMAC.String()
		}
		for _, g := range t.GeneveOpts {
			o.GeneveOpts = append(o.GeneveOpts, g.String())
		}
		out.Tunnels = append(out.Tunnels, o)
	}
	slots, err := e.State.ListSlots()
	if err != nil {
		return nil, err
	}
	for _, s := range slots {
		if s.Explicit {
			out.Devmap = append(out.Devmap, SlotOut{In: s.InName, Out: s.OutName})
		}
	}
	sort.Slice(out.Devmap, func(i, j int) bool { return out.Devmap[i].In < out.Devmap[j].In })
	return out, nil
}

func exportSession(s maps.Session) SessionOut {
	o := SessionOut{SessionID: s.ID, PeerSessionID: s.PeerID, Encap: s.Encap.String(),
		Local: s.Endpoint(s.Local), Peer: s.Endpoint(s.Peer), L2Spec: s.L2SpecString(),
		EthIface: s.EthIface, TunnelIface: s.TunnelIface}
	if len(s.Cookie) > 0 {
		o.Cookie = maps.CookieString(s.Cookie)
	}
	if len(s.PeerCookie) > 0 {
		o.PeerCookie = maps.CookieString(s.PeerCookie)
	}
	if s.PeerMAC != nil {
		o.PeerMAC = s.PeerMAC.String()
	}
	return o
}

func exportMux(m *dataplane.Mux) (*MuxOut, error) {
	out := &MuxOut{Members: []MemberOut{}}
	c, ok, err := m.State.Carrier()
	if err != nil {
		return nil, err
	}
	if ok {
		out.Carrier = &CarrierOut{Iface: c.Name, OnMiss: c.OnMiss.String()}
		if c.L2 && !vethPeerHas(c.Name, c.DstMAC) {
			out.Carrier.PeerMAC = c.DstMAC.String()
		}
	}
	members, err := m.State.Members()
	if err != nil {
		return nil, err
	}
	for _, mem := range members {
		o := MemberOut{Name: mem.Name, Label: mem.Label, Create: mem.Created}
		if mem.Created {
			if ifc, err := netdev.Lookup(mem.Name); err == nil {
				o.MTU = ifc.MTU
			}
			o.ConfigOut = configOut(mem.Name)
		}
		out.Members = append(out.Members, o)
	}
	sort.Slice(out.Members, func(i, j int) bool { return out.Members[i].Label < out.Members[j].Label })
	return out, nil
}

// vethPeerHas reports whether name is a veth whose peer has the MAC mac
// (the carrier's default far end).
func vethPeerHas(name string, mac net.HardwareAddr) bool {
	ifc, err := netdev.Lookup(name)
	if err != nil || !ifc.IsVeth() {
		return false
	}
	same := false
	_, _ = netdev.InPeer(ifc, netdev.NameOfCurrent(), func(p netdev.Iface) error {
		same = bytes.Equal(p.MAC, mac)
		return nil
	})
	return same
}

func exportRoute(r *dataplane.Route, ino uint64) (*RouteOut, error) {
	out := &RouteOut{Devices: []DeviceOut{}, Routes: []RouteEntryOut{}, Peers: []PeerOut{}}
	devs, err := r.Devices(ino)
	if err != nil {
		return nil, err
	}
	defaults := map[uint32]bool{} // ifindexes of registered tunnel devices
	for _, d := range devs {
		o := DeviceOut{Name: d.Name, Routes: d.Routes, ConfigOut: configOut(d.Name)}
		o.MTU, _ = strconv.Atoi(d.Tunnel.MTU)
		if !d.Routes {
			o.Proto, o.Local = d.Tunnel.Proto, d.Tunnel.Local
			o.Port, _ = strconv.Atoi(d.Tunnel.Port)
			defaults[d.Ifindex] = true
		}
		out.Devices = append(out.Devices, o)
	}
	routes, err := r.State.Routes()
	if err != nil {
		return nil, err
	}
	if err := dataplane.NameDevs("", routes); err != nil {
		return nil, err
	}
	for _, rt := range routes {
		o := RouteEntryOut{Prefix: rt.Prefix.String(), Nexthops: []string{}}
		for _, n := range rt.Nexthops {
			if defaults[n.Ifindex] {
				n.Dev = "" // the protocol's registered device: found again by protocol
			}
			if n.MAC != nil && bytes.Equal(n.MAC, maps.TunnelMAC(n.Remote)) {
				n.MAC = nil // the default, derived from the remote
			}
			o.Nexthops = append(o.Nexthops, n.String())
		}
		out.Routes = append(out.Routes, o)
	}
	peers, err := r.State.Peers()
	if err != nil {
		return nil, err
	}
	for _, p := range peers {
		out.Peers = append(out.Peers, PeerOut{Remote: p.Remote.String(), Health: p.Health(), ProbePort: p.ProbePort})
	}
	return out, nil
}

// Encode writes st as YAML or JSON (format "yaml" or "json").
func (st *State) Encode(format string) ([]byte, error) {
	if format == "json" {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		err := enc.Encode(st)
		return b.Bytes(), err
	}
	var b bytes.Buffer
	b.WriteString("# tunmux export: this node's pinned state as a desired-state file (tunmux apply -f)\n")
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(st); err != nil {
		return nil, err
	}
	err := enc.Close()
	return b.Bytes(), err
}

// WriteFileAtomic writes data to path through a temporary file in the same
// folder and a rename, so a reader (or a reboot) sees the old file or the
// new one, never half of one.
func WriteFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename, there is nothing left to remove
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		return fmt.Errorf("chmod %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s to %s: %w", tmp, path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
