package dataplane

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/tunmux/tunmux/maps"
	"github.com/tunmux/tunmux/netdev"
)

// LinkPinName is the pin name of the link of prog on (netns inode, ifindex).
func LinkPinName(prog string, netns uint64, ifindex int) string {
	return fmt.Sprintf("%s%s_%d_%d", maps.LinkPrefix, prog, netns, ifindex)
}

// linkPins lists the link pins in dir.
func linkPins(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read: %w", maps.NoPermission(dir, err))
	}
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), maps.LinkPrefix) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// AttachOptions are the parameters of Attach.
type AttachOptions struct {
	Netns string // network namespace of the interface; "" for the caller's
	Mode  string // XDP: "native" (default) or "generic"
	Hook  string // "xdp" or "tc" for programs with a TC variant; "" their default
}

// AttachResult describes an attachment.
type AttachResult struct {
	Dataplane string `json:"dataplane"`
	Program   string `json:"program"`
	Interface string `json:"interface"`
	Ifindex   int    `json:"ifindex"`
	Netns     string `json:"netns"`
	Hook      string `json:"hook"`
	Mode      string `json:"mode"`
	LinkID    uint32 `json:"link_id"`
	Pin       string `json:"pin"`
	// Already is true when the program was attached there before this call.
	Already bool `json:"already"`
	// Warnings are things the operator should fix for traffic to flow.
	Warnings []string `json:"warnings"`
}

// ParseMode validates --mode.
func ParseMode(mode string) (uint32, error) {
	switch mode {
	case "", "native":
		return maps.ModeNative, nil
	case "generic":
		return maps.ModeGeneric, nil
	}
	return 0, maps.Invalid("--mode", mode, "unknown XDP mode", "native|generic")
}

// Attach attaches program prog of the dataplane to iface with a pinned
// bpf_link that outlives this process. Attaching the same program again
// in the same mode is a no-op; an XDP slot held by any other program is an
// error that names its owner.
func (l *Loaded) Attach(lock *maps.Lock, prog, iface string, opts AttachOptions) (AttachResult, error) {
	p, ok := l.DP.Program(prog)
	if !ok || !p.Attachable {
		return AttachResult{}, maps.Invalid("PROGRAM", prog, "is not an attachable program of "+l.DP.Name, attachableNames(l.DP))
	}
	p, err := l.forHook(p, opts)
	if err != nil {
		return AttachResult{}, err
	}
	return l.attach(lock, p, iface, opts)
}

// forHook returns the program --hook asks for: p, or its TC variant.
func (l *Loaded) forHook(p Program, opts AttachOptions) (Program, error) {
	switch opts.Hook {
	case "":
		return p, nil
	case "xdp":
		if p.Hook != maps.HookXDP {
			return p, maps.Invalid("--hook", opts.Hook, p.Name+" attaches at "+p.Hook.String(), "omit it")
		}
		return p, nil
	case "tc":
		if p.Hook != maps.HookXDP {
			return p, nil // a TC program already
		}
		if p.TCVariant == "" {
			return p, maps.Invalid("--hook", opts.Hook, p.Name+" has no TC variant", "xdp")
		}
		if opts.Mode != "" {
			return p, maps.Invalid("--mode", opts.Mode, "applies to XDP only", "omit it with --hook tc")
		}
		v, _ := l.DP.Program(p.TCVariant)
		return v, nil
	}
	return p, maps.Invalid("--hook", opts.Hook, "unknown hook", "xdp|tc")
}

// sibling returns the other hook's form of p (its TC variant, or the XDP
// program it is the TC variant of), if it has one.
func (l *Loaded) sibling(p Program) (Program, bool) {
	if p.TCVariant != "" {
		return l.DP.Program(p.TCVariant)
	}
	for _, q := range l.DP.Programs {
		if q.TCVariant == p.Name {
			return q, true
		}
	}
	return Program{}, false
}

// attach is Attach for any program of the dataplane.
func (l *Loaded) attach(lock *maps.Lock, p Program, iface string, opts AttachOptions) (AttachResult, error) {
	prog := p.Name
	var mode uint32
	if p.Hook == maps.HookXDP {
		m, err := ParseMode(opts.Mode)
		if err != nil {
			return AttachResult{}, err
		}
		mode = m
	} else if opts.Mode != "" {
		return AttachResult{}, maps.Invalid("--mode", opts.Mode, "applies to XDP programs only; "+prog+" attaches at "+p.Hook.String(), "omit it")
	}
	if err := maps.ValidateIfaceName("IFACE", iface); err != nil {
		return AttachResult{}, err
	}
	res := AttachResult{Dataplane: l.DP.Name, Program: prog, Interface: iface, Netns: opts.Netns, Hook: p.Hook.String(), Mode: maps.ModeName(mode), Warnings: []string{}}
	err := netdev.Do(opts.Netns, func() error {
		ifc, ino, err := lookupHere("IFACE", iface, opts.Netns)
		if err != nil {
			return err
		}
		res.Ifindex = ifc.Index
		pin := filepath.Join(l.Dir, LinkPinName(prog, ino, ifc.Index))
		res.Pin = pin
		if p.RedirectsIngress {
			res.Warnings = append(res.Warnings, checksumWarning(ifc, opts.Netns)...)
		}
		if sib, ok := l.sibling(p); ok && linkAlive(filepath.Join(l.Dir, LinkPinName(sib.Name, ino, ifc.Index))) {
			return fmt.Errorf("%s is attached to %s at %s: %w; one hook per interface: detach it first", sib.Name, iface, sib.Hook, maps.ErrInUse)
		}
		if linkAlive(pin) {
			rec, err := maps.GetAttachment(l.Maps["attachments"], ino, uint32(ifc.Index), p.Hook)
			if err == nil && rec.Mode != mode {
				return fmt.Errorf("%s is already attached to %s in %s mode: %w; detach it first to change the mode",
					prog, iface, maps.ModeName(rec.Mode), maps.ErrInUse)
			}
			res.Already, res.Mode = true, maps.ModeName(mode)
			return nil
		}
		if rec, err := maps.GetAttachment(l.Maps["attachments"], ino, uint32(ifc.Index), p.Hook); p.Hook != maps.HookXDP && err == nil && rec.Program != prog &&
			linkAlive(filepath.Join(l.Dir, LinkPinName(rec.Program, ino, ifc.Index))) {
			// Records are kept per hook and interface: one program each (at
			// XDP the kernel says so itself, below).
			return fmt.Errorf("%s already runs at %s of %s: %w; one %s program per hook and interface: detach it first",
				rec.Program, p.Hook, iface, maps.ErrInUse, l.DP.Name)
		}
		_ = os.Remove(pin) // a defunct link of an interface that had this index
		if p.Hook == maps.HookXDP && ifc.XDPProgID != 0 {
			owner := DescribeXDPOwner(l.Root, ifc.XDPProgID)
			return fmt.Errorf("the XDP slot of %s is owned by %s: %w; free it with '%s'", iface, owner, maps.ErrInUse, xdpOwnerFix(l.Root, owner, opts.Netns, ino, ifc))
		}
		pinned := prog
		if p.L3Variant != "" && !ifc.L2 {
			pinned = p.L3Variant
		}
		bpfProg, err := l.Program(pinned)
		if err != nil {
			return err
		}
		defer bpfProg.Close()
		lk, err := attachLink(p.Hook, bpfProg, ifc.Index, mode)
		if err != nil {
			return attachError(err, prog, iface, mode)
		}
		defer lk.Close()
		if err := lk.Pin(pin); err != nil {
			return fmt.Errorf("pin link %s: %w", pin, err)
		}
		if info, err := lk.Info(); err == nil {
			res.LinkID = uint32(info.ID)
		}
		rec := maps.Attachment{
			Netns: ino, Ifindex: uint32(ifc.Index), Hook: p.Hook, Program: prog, Ifname: ifc.Name,
			NetnsName: nsDisplayName(opts.Netns), Mode: mode, LinkID: res.LinkID, AttachedAt: time.Now(),
		}
		if err := maps.PutAttachment(lock, l.Maps["attachments"], rec); err != nil {
			_ = lk.Unpin()
			return err
		}
		return nil
	})
	return res, err
}

// attachLink attaches prog at hook on ifindex: XDP in the given mode, or TCX.
func attachLink(hook maps.Hook, prog *ebpf.Program, ifindex int, mode uint32) (link.Link, error) {
	defer netdev.Forget() // the interface's XDP program changes
	switch hook {
	case maps.HookXDP:
		flags := link.XDPDriverMode
		if mode == maps.ModeGeneric {
			flags = link.XDPGenericMode
		}
		return link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifindex, Flags: flags})
	case maps.HookTCIngress:
		return link.AttachTCX(link.TCXOptions{Program: prog, Interface: ifindex, Attach: ebpf.AttachTCXIngress})
	case maps.HookTCEgress:
		return link.AttachTCX(link.TCXOptions{Program: prog, Interface: ifindex, Attach: ebpf.AttachTCXEgress})
	}
	return nil, fmt.Errorf("unknown hook %v", hook)
}

// linkAlive reports whether the pinned link exists and is attached to an
// interface (a link whose interface went away is defunct).
func linkAlive(pin string) bool {
	lk, err := link.LoadPinnedLink(pin, nil)
	if err != nil {
		return false
	}
	defer lk.Close()
	info, err := lk.Info()
	return err == nil && linkIfindex(info) != 0
}

// linkIfindex returns the interface an XDP or TCX link is attached to, 0 if none.
func linkIfindex(info *link.Info) uint32 {
	if x := info.XDP(); x != nil {
		return x.Ifindex
	}
	if x := info.TCX(); x != nil {
		return x.Ifindex
	}
	return 0
}

// checksumWarning warns when the veth peer sending into ifc offloads
// transmit checksums: its TCP and UDP frames would leave an XDP redirect
// with their checksums never filled in.
func checksumWarning(ifc netdev.Iface, netnsName string) []string {
	peer := ChecksumOffloadPeer(ifc, netnsName)
	if peer == "" {
		return nil
	}
	return []string{fmt.Sprintf("%s, which sends into %s, offloads tx checksums: its TCP and UDP frames lose them across the XDP redirect and are dropped by the receiver; run '%s'",
		peer, ifc.Name, InNetns(peer, "ethtool -K %s tx off"))}
}

// ChecksumOffloadPeer returns the veth peer ("netns/ifname") sending into
// ifc when it offloads transmit checksums, "" when it does not (or ifc is
// no veth).
func ChecksumOffloadPeer(ifc netdev.Iface, netnsName string) string {
	if !ifc.IsVeth() {
		return ""
	}
	on := false
	peer, err := netdev.InPeer(ifc, nsDisplayName(netnsName), func(p netdev.Iface) error {
		var err error
		on, err = netdev.TxChecksum(p.Name)
		return err
	})
	if err != nil || !on {
		return ""
	}
	return peer
}

// InNetns makes a command line for the interface desc ("netns/ifname" or
// "ifname"): format, with the interface's name for %s, run in its
// namespace with ip netns exec when it has one.
func InNetns(desc, format string) string {
	ns, name, found := strings.Cut(desc, "/")
	if !found {
		return fmt.Sprintf(format, desc)
	}
	return "ip netns exec " + ns + " " + fmt.Sprintf(format, name)
}

func attachError(err error, prog, iface string, mode uint32) error {
	switch {
	case errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EEXIST):
		return fmt.Errorf("attach %s to %s: another XDP program holds the interface (attached without a bpf_link, e.g. by ip link): %w", prog, iface, maps.ErrInUse)
	case mode == maps.ModeNative && (errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ERANGE)):
		return fmt.Errorf("attach %s to %s in native mode: %w (the driver may lack native XDP, or on a veth the peer's MTU may be too large; try --mode generic)", prog, iface, err)
	}
	return fmt.Errorf("attach %s to %s: %w", prog, iface, err)
}

// DetachResult describes a detachment.
type DetachResult struct {
	Dataplane string `json:"dataplane"`
	Program   string `json:"program"`
	Interface string `json:"interface"`
	Ifindex   int    `json:"ifindex"`
	Netns     string `json:"netns"`
}

// Detach removes the pinned link of prog on iface, which detaches it. It
// fails with maps.ErrNotFound if prog is not attached there.
func (l *Loaded) Detach(lock *maps.Lock, prog, iface, netnsName string) (DetachResult, error) {
	p, ok := l.DP.Program(prog)
	if !ok || !p.Attachable {
		return DetachResult{}, maps.Invalid("PROGRAM", prog, "is not an attachable program of "+l.DP.Name, attachableNames(l.DP))
	}
	res, err := l.detach(lock, p, iface, netnsName)
	if errors.Is(err, maps.ErrNotFound) && p.TCVariant != "" {
		// Attached with --hook tc: its TC variant is what to detach.
		v, _ := l.DP.Program(p.TCVariant)
		if vres, verr := l.detach(lock, v, iface, netnsName); verr == nil || !errors.Is(verr, maps.ErrNotFound) {
			return vres, verr
		}
	}
	return res, err
}

// detach is Detach for any program of the dataplane.
func (l *Loaded) detach(lock *maps.Lock, p Program, iface, netnsName string) (DetachResult, error) {
	defer netdev.Forget() // the interface's XDP program changes
	prog := p.Name
	if err := maps.ValidateIfaceName("IFACE", iface); err != nil {
		return DetachResult{}, err
	}
	res := DetachResult{Dataplane: l.DP.Name, Program: prog, Interface: iface, Netns: netnsName}
	err := inNamespace(netnsName, func(ino uint64) error {
		ifindex, err := l.attachedIndex(prog, iface, netnsName, ino)
		if err != nil {
			return err
		}
		res.Ifindex = ifindex
		pin := filepath.Join(l.Dir, LinkPinName(prog, ino, ifindex))
		lk, err := link.LoadPinnedLink(pin, nil)
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s is not attached to %s: %w", prog, netdev.Describe(netnsName, iface), maps.ErrNotFound)
		}
		if err != nil {
			// A link whose interface went away cannot be opened as XDP; drop the pin.
			if rmErr := os.Remove(pin); rmErr != nil {
				return fmt.Errorf("open link %s: %w", pin, err)
			}
		} else {
			if err := lk.Unpin(); err != nil {
				lk.Close()
				return fmt.Errorf("unpin %s: %w", pin, err)
			}
			lk.Close()
		}
		return maps.DeleteAttachment(lock, l.Maps["attachments"], ino, uint32(ifindex), p.Hook)
	})
	return res, err
}

// attachedIndex resolves the interface to detach from: by name in this
// namespace, or, when it is gone (its link defunct), by the name recorded
// when prog was attached in this namespace.
func (l *Loaded) attachedIndex(prog, iface, netnsName string, ino uint64) (int, error) {
	ifc, err := lookupArg("IFACE", iface, netnsName)
	if err == nil || !errors.Is(err, maps.ErrInvalid) {
		return ifc.Index, err
	}
	atts, lerr := maps.ListAttachments(l.Maps["attachments"])
	if lerr != nil {
		return 0, lerr
	}
	for _, a := range atts {
		if a.Netns == ino && a.Program == prog && a.Ifname == iface {
			return int(a.Ifindex), nil
		}
	}
	return 0, err
}

// Owner describes the program holding an interface's XDP slot.
type Owner struct {
	ProgID    uint32
	ProgName  string
	Dataplane string // "" when it is not a tunmux program under this root
	Program   string
}

func (o Owner) String() string {
	if o.Dataplane != "" {
		return fmt.Sprintf("tunmux %s (program %s, id %d)", o.Dataplane, o.Program, o.ProgID)
	}
	name := o.ProgName
	if name == "" {
		name = "?"
	}
	return fmt.Sprintf("program %q (id %d), not a tunmux program under this root", name, o.ProgID)
}

// xdpOwnerFix is the command that frees the XDP slot of ifc (in namespace
// netnsName, inode ino) held by owner: tunmux detach when a tunmux link of
// this root holds it, bpftool link detach for another bpf_link, and else
// (attached through netlink, by ip link or bpftool net attach) ip link.
func xdpOwnerFix(root *maps.Root, owner Owner, netnsName string, ino uint64, ifc netdev.Iface) string {
	if owner.Dataplane != "" {
		if _, err := os.Stat(filepath.Join(root.Dir(owner.Dataplane), LinkPinName(owner.Program, ino, ifc.Index))); err == nil {
			return fmt.Sprintf("tunmux detach %s %s", owner.Program, ifc.Name)
		}
	}
	var it link.Iterator
	defer it.Close()
	for it.Next() {
		info, err := it.Link.Info()
		if err != nil {
			continue
		}
		if x := info.XDP(); x != nil && x.Ifindex == uint32(ifc.Index) && uint32(info.Program) == owner.ProgID {
			return fmt.Sprintf("bpftool link detach id %d", it.ID)
		}
	}
	mode := "xdp" // iproute2 detaches in the mode it is told
	if ifc.XDPGeneric {
		mode = "xdpgeneric"
	}
	if netnsName != "" && !filepath.IsAbs(netnsName) {
		return fmt.Sprintf("ip -n %s link set dev %s %s off", netnsName, ifc.Name, mode)
	}
	if netnsName != "" {
		return fmt.Sprintf("nsenter --net=%s ip link set dev %s %s off", netnsName, ifc.Name, mode)
	}
	return fmt.Sprintf("ip link set dev %s %s off", ifc.Name, mode)
}

// DescribeXDPOwner finds which pinned program under root has id progID.
func DescribeXDPOwner(root *maps.Root, progID uint32) Owner {
	o := Owner{ProgID: progID}
	if p, err := ebpf.NewProgramFromID(ebpf.ProgramID(progID)); err == nil {
		if info, err := p.Info(); err == nil {
			o.ProgName = info.Name
		}
		p.Close()
	}
	dps, _ := root.Dataplanes()
	for _, dp := range dps {
		pins, _ := root.Pins(dp, maps.ProgPrefix)
		for _, pin := range pins {
			p, err := ebpf.LoadPinnedProgram(filepath.Join(root.Dir(dp), pin), nil)
			if err != nil {
				continue
			}
			info, err := p.Info()
			p.Close()
			if err != nil {
				continue
			}
			if id, ok := info.ID(); ok && uint32(id) == progID {
				o.Dataplane, o.Program = dp, strings.TrimPrefix(pin, maps.ProgPrefix)
			}
		}
	}
	return o
}

func attachableNames(dp *Dataplane) string {
	var names []string
	for _, p := range dp.Programs {
		if p.Attachable {
			names = append(names, p.Name)
		}
	}
	return strings.Join(names, "|")
}

// lookupArg resolves an interface named by a flag or argument; a missing
// interface is invalid input.
func lookupArg(flag, name, netnsName string) (netdev.Iface, error) {
	ifc, err := netdev.Lookup(name)
	if errors.Is(err, netdev.ErrNoInterface) {
		where := "this network namespace"
		if netnsName != "" {
			where = "network namespace " + netnsName
		}
		return ifc, maps.Invalid(flag, name, "no such interface in "+where, "an existing interface (see ip link)")
	}
	return ifc, err
}

// lookupHere resolves an interface argument and the inode of the namespace
// the calling thread is in.
func lookupHere(flag, name, netnsName string) (netdev.Iface, uint64, error) {
	ifc, err := lookupArg(flag, name, netnsName)
	if err != nil {
		return ifc, 0, err
	}
	ino, err := netdev.CurrentInode()
	return ifc, ino, err
}

// inNamespace runs fn on a thread inside the named namespace ("" the
// caller's), given the namespace's inode.
func inNamespace(netnsName string, fn func(ino uint64) error) error {
	return netdev.Do(netnsName, func() error {
		ino, err := netdev.CurrentInode()
		if err != nil {
			return err
		}
		return fn(ino)
	})
}

// nsDisplayName names the current namespace for records: the --netns given,
// else its `ip netns` name if it has one.
func nsDisplayName(flag string) string {
	if flag != "" {
		return flag
	}
	return netdev.NameOfCurrent()
}
