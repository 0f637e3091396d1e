// Package doctor checks, live, what makes tunmux's dataplanes lose frames
// without a counter saying so: veth targets that cannot receive redirected
// frames, checksum offload across an XDP redirect, MTUs, XDP slots and
// links, devmap slots the kernel dropped, stale next-hop MACs, the route
// dataplane's prerequisites, the kernel's own XDP drop counts, the bpffs
// and the schema of the pins. Each check gives a verdict and, when it
// fails, the command that fixes it. Doctor changes nothing.
package doctor

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/tunmux/tunmux/dataplane"
	"github.com/tunmux/tunmux/maps"
	"github.com/tunmux/tunmux/netdev"
)

// Verdicts.
const (
	OK   = "ok"
	Fail = "fail"
)

// The checks, by name.
const (
	CheckBPFFS       = "bpffs"        // the root is on a bpffs
	CheckSchema      = "schema"       // pins of this tunmux's schema, and whole
	CheckLink        = "link"         // every recorded attachment runs (not defunct)
	CheckXDPSlot     = "xdp-slot"     // an interface's XDP slot holds tunmux's program
	CheckVethPeer    = "veth-peer"    // a redirect target's veth peer has GRO or XDP
	CheckTxChecksum  = "tx-checksum"  // no tx checksum offload into an XDP redirect
	CheckMTU         = "mtu"          // the overlay's MTU fits the tunnel
	CheckDevmapSlot  = "devmap-slot"  // every recorded slot is in the devmap
	CheckNeighbour   = "neighbour"    // a tunnel's next-hop MAC is the kernel's neighbour
	CheckRPFilter    = "rp-filter"    // route: no reverse-path filter on tunnel devices
	CheckRouteSrc    = "route-src"    // route: kernel routes to the routes device carry src
	CheckTunnelDev   = "tunnel-dev"   // route: the tunnel devices are up
	CheckXDPDrops    = "xdp-drops"    // the kernel dropped no frame XDP redirected
	CheckLoadedState = "loaded-state" // the dataplane's pins open
)

// Result is one check of one thing.
type Result struct {
	Check   string `json:"check"`
	Status  string `json:"status"` // ok or fail
	Subject string `json:"subject"`
	Message string `json:"message"`
	Fix     string `json:"fix,omitempty"` // the command that fixes it
}

// Options say where to look.
type Options struct {
	Root *maps.Root
	// Flags are tunmux's global flags as given (--bpffs), for the fixes
	// that are tunmux commands.
	Flags string
	// Sample is how long the kernel's XDP drops are counted; 0 skips it.
	Sample time.Duration
}

// Report is every result, failures first.
type Report struct {
	OK      bool     `json:"ok"`
	Failed  int      `json:"failed"`
	Checked int      `json:"checked"`
	Results []Result `json:"results"`
}

// Run runs every check that applies to what is loaded under the root.
func Run(o Options) Report {
	d := &doc{o: o}
	d.run()
	sort.SliceStable(d.results, func(i, j int) bool {
		return d.results[i].Status == Fail && d.results[j].Status != Fail
	})
	r := Report{OK: true, Results: d.results, Checked: len(d.results)}
	for _, res := range d.results {
		if res.Status == Fail {
			r.OK = false
			r.Failed++
		}
	}
	if r.Results == nil {
		r.Results = []Result{}
	}
	return r
}

// doc is one run of the checks.
type doc struct {
	o       Options
	results []Result
	// watch: where redirected frames go and come from, for the drop sample.
	watch []watched
}

// watched is an interface whose kernel XDP drops are sampled.
type watched struct {
	netns   uint64
	ifindex uint32
	name    string // "netns/ifname"
	fix     string // how to make it receive, when known
}

func (d *doc) ok(check, subject, msg string) {
	d.results = append(d.results, Result{Check: check, Status: OK, Subject: subject, Message: msg})
}

func (d *doc) fail(check, subject, msg, fix string) {
	d.results = append(d.results, Result{Check: check, Status: Fail, Subject: subject, Message: msg, Fix: fix})
}

// tunmux writes a tunmux command line with the global flags given.
func (d *doc) tunmux(netnsName, args string) string {
	s := "tunmux"
	if d.o.Flags != "" {
		s += " " + d.o.Flags
	}
	if netnsName != "" {
		s += " --netns " + netnsName
	}
	return s + " " + args
}

func (d *doc) run() {
	root := d.o.Root
	if existing, ok := maps.OnBPFFS(root.Path); !ok {
		d.fail(CheckBPFFS, root.Path, fmt.Sprintf("%s is not on a bpffs: pins cannot be kept there", existing),
			"mount -t bpf bpf "+mountPointFor(root.Path))
		return
	}
	d.ok(CheckBPFFS, root.Path, "on a bpffs")
	names, err := root.Dataplanes()
	if err != nil {
		d.fail(CheckBPFFS, root.Path, err.Error(), "")
		return
	}
	st, _ := dataplane.ReadStatus(root)
	byName := map[string]dataplane.DataplaneStatus{}
	for _, ds := range st.Dataplanes {
		byName[ds.Name] = ds
	}
	for _, name := range names {
		dp, err := dataplane.Lookup(name)
		if err != nil {
			continue
		}
		if !d.schema(dp) {
			continue
		}
		l, err := dataplane.Open(root, dp)
		if err != nil {
			fix := d.tunmux("", "load "+dp.Name)
			if errors.Is(err, maps.ErrNotLoaded) {
				fix = ""
			}
			d.fail(CheckLoadedState, dp.Name, err.Error(), fix)
			continue
		}
		ds := byName[name]
		d.links(dp, ds)
		switch dp {
		case dataplane.EncapDataplane:
			d.encap(l, ds)
		case dataplane.XconnectDataplane:
			d.xconnect(l)
		case dataplane.RouteDataplane:
			d.route(l)
		}
		l.Close()
	}
	if d.o.Sample > 0 && len(d.watch) > 0 {
		d.xdpDrops()
	}
}

// mountPointFor is where the bpffs for a root belongs: /sys/fs/bpf for
// roots under it, else the root's own folder.
func mountPointFor(path string) string {
	if path == maps.DefaultRootPath || strings.HasPrefix(path, "/sys/fs/bpf/") {
		return "/sys/fs/bpf"
	}
	return path
}

// schema checks the schema recorded in the dataplane's meta pin.
func (d *doc) schema(dp *dataplane.Dataplane) bool {
	subject := dp.Name + " at " + d.o.Root.Dir(dp.Name)
	meta, err := dataplane.PinnedMeta(d.o.Root, dp)
	if err != nil {
		d.fail(CheckSchema, subject, err.Error(), d.tunmux("", "load "+dp.Name))
		return false
	}
	switch {
	case meta.Schema < dp.Schema:
		d.fail(CheckSchema, subject, fmt.Sprintf("pins of schema %d (tunmux %s); this tunmux uses schema %d and refuses them until they are migrated", meta.Schema, meta.Version, dp.Schema),
			d.tunmux("", "load "+dp.Name))
		return false
	case meta.Schema > dp.Schema:
		d.fail(CheckSchema, subject, fmt.Sprintf("pins of schema %d, made by a newer tunmux (%s); this one knows schema %d", meta.Schema, meta.Version, dp.Schema),
			"use the tunmux that loaded it ("+meta.Version+")")
		return false
	}
	d.ok(CheckSchema, subject, fmt.Sprintf("schema %d", meta.Schema))
	return true
}

// links checks each pinned link runs, and that a defunct one's interface
// is not held by another XDP program.
func (d *doc) links(dp *dataplane.Dataplane, ds dataplane.DataplaneStatus) {
	for _, ls := range ds.Links {
		where := ls.Where()
		subject := fmt.Sprintf("%s on %s (%s)", ls.Program, where, ls.Hook)
		if ls.State != "defunct" {
			d.ok(CheckLink, subject, ls.State)
			continue
		}
		d.fail(CheckLink, subject, fmt.Sprintf("the link is defunct: %s went away (recreated?) and %s no longer runs there", where, ls.Program),
			d.tunmux(ls.Netns, fmt.Sprintf("attach %s %s", ls.Program, ls.Interface)))
		if ls.Hook != maps.HookXDP.String() || ls.Interface == "" {
			continue
		}
		var holder netdev.Iface
		err := netdev.Do(ls.Netns, func() error {
			var err error
			holder, err = netdev.Lookup(ls.Interface)
			return err
		})
		if err == nil && holder.XDPProgID != 0 {
			d.fail(CheckXDPSlot, where, fmt.Sprintf("the XDP slot of %s holds program %d (%s), not tunmux's %s", where, holder.XDPProgID, progName(holder.XDPProgID), ls.Program),
				inNetnsCmd(ls.Netns, "ip link set dev "+ls.Interface+" "+xdpMode(holder)+" off")+" && "+d.tunmux(ls.Netns, fmt.Sprintf("attach %s %s", ls.Program, ls.Interface)))
		}
	}
}

// xdpMode is the ip link keyword that detaches ifc's XDP program.
func xdpMode(ifc netdev.Iface) string {
	if ifc.XDPGeneric {
		return "xdpgeneric"
	}
	return "xdp"
}

// inNetnsCmd runs cmd in namespace netnsName ("" here).
func inNetnsCmd(netnsName, cmd string) string {
	if netnsName == "" {
		return cmd
	}
	return "ip netns exec " + netnsName + " " + cmd
}

// namespaceName names the namespace with inode ino ("" for this one).
func namespaceName(ino uint64) (string, bool) {
	if here, err := netdev.CurrentInode(); err == nil && here == ino {
		return "", true
	}
	ns, err := netdev.FindByInode(ino)
	if err != nil {
		return "", false
	}
	ns.Handle.Close()
	return ns.Name, true
}

// readiness checks a redirect target: a veth whose peer has neither GRO
// nor an XDP program drops what is redirected to it.
func (d *doc) readiness(what string, r maps.Readiness, peer string, netns uint64, ifindex uint32, name string) {
	nsName, _ := namespaceName(netns)
	subject := netdev.Describe(nsName, name)
	w := watched{netns: netns, ifindex: ifindex, name: subject}
	if dataplane.Ready(r) {
		d.ok(CheckVethPeer, subject, fmt.Sprintf("%s: %s", what, r))
	} else if peer != "" {
		w.fix = dataplane.InNetns(peer, "ethtool -K %s gro on")
		d.fail(CheckVethPeer, subject, fmt.Sprintf("%s: frames redirected to %s are dropped by the kernel: its veth peer %s has neither GRO nor an XDP program", what, subject, peer), w.fix)
	} else {
		d.fail(CheckVethPeer, subject, fmt.Sprintf("%s: %s is gone or cannot receive redirected frames (%s)", what, subject, r), "")
	}
	d.watch = append(d.watch, w)
}

// encap checks the encap dataplane's slots, attachments and tunnels.
func (d *doc) encap(l *dataplane.Loaded, ds dataplane.DataplaneStatus) {
	st, err := maps.NewEncapState(l.Maps)
	if err != nil {
		d.fail(CheckLoadedState, "encap", err.Error(), "")
		return
	}
	slotNetns := map[uint32]uint64{}
	for _, s := range ds.Slots {
		slotNetns[s.In] = s.Netns
		d.readiness(fmt.Sprintf("redirect slot %s->%s", s.InName, s.OutName), s.Readiness, s.Peer, s.Netns, s.Out, s.OutName)
		var v struct{ Ifindex, Prog uint32 }
		nsName, _ := namespaceName(s.Netns)
		subject := fmt.Sprintf("slot %s->%s", netdev.Describe(nsName, s.InName), s.OutName)
		if err := l.Maps["devmap"].Lookup(s.In, &v); err != nil {
			d.fail(CheckDevmapSlot, subject, fmt.Sprintf("the kernel dropped this slot from the devmap (it does when an interface goes away): frames meant for %s pass untouched, counted pass_no_slot", s.OutName),
				d.tunmux(nsName, "export -f /tmp/tunmux-state.yaml")+" && "+d.tunmux(nsName, "apply -f /tmp/tunmux-state.yaml"))
		} else {
			d.ok(CheckDevmapSlot, subject, "in the devmap")
		}
	}
	for _, ls := range ds.Links {
		p, ok := l.DP.Program(ls.Program)
		if !ok || !p.RedirectsIngress || ls.State != "attached" || ls.Hook != maps.HookXDP.String() {
			continue
		}
		var peer string
		netdev.Do(ls.Netns, func() error {
			ifc, err := netdev.Lookup(ls.Interface)
			if err == nil {
				peer = dataplane.ChecksumOffloadPeer(ifc, ls.Netns)
			}
			return nil
		})
		subject := ls.Where()
		if peer != "" {
			d.fail(CheckTxChecksum, subject, fmt.Sprintf("%s, which sends into %s, offloads tx checksums: its TCP and UDP frames lose them across %s's XDP redirect and are dropped by the receiver", peer, subject, ls.Program),
				dataplane.InNetns(peer, "ethtool -K %s tx off"))
		} else {
			d.ok(CheckTxChecksum, subject, "no checksum offload into the XDP redirect")
		}
	}
	tunnels, err := st.ListTunnels()
	if err != nil {
		d.fail(CheckLoadedState, "encap", err.Error(), "")
		return
	}
	for _, t := range tunnels {
		ino, ok := slotNetns[t.UnderlayIndex]
		if !ok {
			continue
		}
		nsName, found := namespaceName(ino)
		if !found {
			continue
		}
		d.tunnel(t, nsName)
	}
}

// tunnel checks one tunnel's MTU and next-hop MAC, in its namespace.
func (d *doc) tunnel(t maps.Tunnel, nsName string) {
	subject := "tunnel " + t.TunnelKey.String()
	keyFlags := fmt.Sprintf("--inner-src %s --inner-dst %s", t.InnerSrc, t.InnerDst)
	netdev.Do(nsName, func() error {
		under, err1 := netdev.ByIndex(int(t.UnderlayIndex))
		over, err2 := netdev.ByIndex(int(t.OverlayIndex))
		if err1 != nil || err2 != nil {
			return nil
		}
		if sender, mtu, limit, exceeds := dataplane.MTUExcess(t, under, over, nsName); exceeds {
			d.fail(CheckMTU, subject, fmt.Sprintf("%s has MTU %d, but the tunnel carries at most %d bytes of IP over %s: larger packets are dropped, counted drop_too_big", sender, mtu, limit, under.Name),
				dataplane.InNetns(sender, fmt.Sprintf("ip link set %%s mtu %d", limit)))
		} else {
			d.ok(CheckMTU, subject, fmt.Sprintf("the overlay fits the %d bytes the tunnel carries", limit))
		}
		if !t.Proto.UsesUDP() || !t.OuterDst.IsValid() {
			return nil
		}
		hop, via, err := netdev.NextHop(t.OuterDst)
		if err != nil || via != under.Index {
			d.fail(CheckNeighbour, subject, fmt.Sprintf("the kernel routes %s %s, not through the underlay %s", t.OuterDst, routedBy(err, via), under.Name), "")
			return nil
		}
		mac, known := netdev.NeighbourMAC(under.Index, hop)
		switch {
		case !known:
			d.ok(CheckNeighbour, subject, fmt.Sprintf("no neighbour entry for %s on %s yet: nothing to compare", hop, under.Name))
		case mac.String() != t.DstMAC.String():
			d.fail(CheckNeighbour, subject, fmt.Sprintf("frames go to %s, but the kernel's neighbour for the next hop %s on %s is %s: the peer changed or the MAC was mistyped", t.DstMAC, hop, under.Name, mac),
				d.tunmux(nsName, fmt.Sprintf("tunnel update %s --dst-mac %s", keyFlags, mac)))
		default:
			d.ok(CheckNeighbour, subject, fmt.Sprintf("%s is the neighbour %s", mac, hop))
		}
		return nil
	})
}

func routedBy(err error, via int) string {
	if err != nil {
		return "nowhere"
	}
	return fmt.Sprintf("out of ifindex %d", via)
}

// xconnect checks that each pair end can receive redirected frames.
func (d *doc) xconnect(l *dataplane.Loaded) {
	pairs, err := dataplane.ListOf(l, maps.NewXconnectState, (*maps.XconnectState).ListPairs)
	if err != nil {
		return
	}
	dataplane.ObservePairs(pairs)
	for _, p := range pairs {
		for _, end := range []maps.PairEnd{p.A, p.B} {
			d.readiness("pair "+p.Key(), end.Readiness, end.Peer, p.Netns, end.Ifindex, end.Name)
		}
	}
}

// route checks the route dataplane's devices and kernel setup.
func (d *doc) route(l *dataplane.Loaded) {
	devs, err := dataplane.ListOf(l, maps.NewRouteState, (*maps.RouteState).TunnelDevs)
	if err != nil {
		return
	}
	var addrs []netip.Addr // the tunnel devices' addresses: what route src names
	for _, dev := range devs {
		nsName, found := namespaceName(dev.Netns)
		if !found {
			continue
		}
		subject := netdev.Describe(nsName, dev.Name)
		netdev.Do(nsName, func() error {
			ifc, err := netdev.Lookup(dev.Name)
			if err != nil {
				d.fail(CheckTunnelDev, subject, "the tunnel device is gone: routes through it pass untouched", d.tunmux(nsName, fmt.Sprintf("route dev create %s --proto %s", dev.Name, dev.Proto)))
				return nil
			}
			if !ifc.Up {
				d.fail(CheckTunnelDev, subject, "the tunnel device is down: frames redirected to it are dropped", inNetnsCmd(nsName, "ip link set "+dev.Name+" up"))
			} else {
				d.ok(CheckTunnelDev, subject, "up")
			}
			all, _ := readSysctl("net/ipv4/conf/all/rp_filter")
			own, _ := readSysctl("net/ipv4/conf/" + dev.Name + "/rp_filter")
			if all > 0 || own > 0 {
				d.fail(CheckRPFilter, subject, fmt.Sprintf("reverse-path filtering is on (all %d, %s %d): decapsulated packets from overlay sources are dropped", all, dev.Name, own),
					inNetnsCmd(nsName, fmt.Sprintf("sysctl -w net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.%s.rp_filter=0", dev.Name)))
			} else {
				d.ok(CheckRPFilter, subject, "no reverse-path filtering")
			}
			if as, err := netdev.Addresses(dev.Name); err == nil {
				for _, a := range as {
					addrs = append(addrs, a.Addr())
				}
			}
			return nil
		})
	}
	atts, err := maps.ListAttachments(l.Maps["attachments"])
	if err != nil {
		return
	}
	for _, a := range atts {
		if a.Program != "route" {
			continue
		}
		netdev.Do(a.NetnsName, func() error {
			routes, err := netdev.RoutesVia(a.Ifname)
			if err != nil {
				return nil
			}
			for _, r := range routes {
				subject := fmt.Sprintf("route %s dev %s", r.Prefix, netdev.Describe(a.NetnsName, a.Ifname))
				if r.Src.IsValid() {
					d.ok(CheckRouteSrc, subject, "src "+r.Src.String())
					continue
				}
				fix := ""
				for _, addr := range addrs {
					if addr.Is4() == r.Prefix.Addr().Is4() {
						fix = inNetnsCmd(a.NetnsName, fmt.Sprintf("ip route replace %s dev %s src %s", r.Prefix, a.Ifname, addr))
						break
					}
				}
				d.fail(CheckRouteSrc, subject, fmt.Sprintf("the kernel route has no src: packets to %s leave with %s's own (absent) address as source, which the remote cannot answer", r.Prefix, a.Ifname), fix)
			}
			return nil
		})
	}
}

// readSysctl reads an integer from /proc/sys.
func readSysctl(name string) (int, error) {
	b, err := os.ReadFile("/proc/sys/" + name)
	if err != nil {
		return 0, err
	}
	var n int
	_, err = fmt.Sscan(string(b), &n)
	return n, err
}
