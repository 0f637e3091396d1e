// Package netdev finds and prepares network interfaces for tunmux: it runs
// work inside a named network namespace on a locked OS thread (keeping the
// host's bpffs, unlike `ip netns exec`), resolves interfaces by name, finds a
// veth's peer in whatever namespace holds it, and turns GRO on so that a veth
// accepts XDP-redirected frames.
//
// Everything here acts on the calling thread's network namespace; call it
// inside Do.
package netdev

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// ErrNoInterface means that no interface has that name (or index).
var ErrNoInterface = errors.New("no such interface")

// ErrNoNamespace means that no named network namespace has that name.
var ErrNoNamespace = errors.New("no such network namespace")

// NetnsDir is where `ip netns` keeps named namespaces.
const NetnsDir = "/run/netns"

// Do runs fn with the calling goroutine's OS thread inside the network
// namespace name ("" runs fn here, in the current namespace). The thread is
// discarded afterwards, so no other goroutine ever runs in that namespace.
func Do(name string, fn func() error) error {
	if name == "" {
		return fn()
	}
	open := netns.GetFromName
	if filepath.IsAbs(name) {
		open = netns.GetFromPath // /var/run/netns/X, /proc/PID/ns/net
	}
	h, err := open(name)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("--netns %q: %w (see ip netns list)", name, ErrNoNamespace)
		}
		return fmt.Errorf("open network namespace %q: %w", name, err)
	}
	return DoHandle(h, fn)
}

// DoHandle is Do for an open namespace handle, which it closes. A caller
// already in that namespace (on a thread Do entered it with, or in the
// process's own namespace, where every thread not locked elsewhere is) runs
// fn where it is: no thread is made and discarded for it.
func DoHandle(h netns.NsHandle, fn func() error) error {
	var st unix.Stat_t
	if unix.Fstat(int(h), &st) == nil {
		if here, err := CurrentInode(); err == nil && here == st.Ino {
			h.Close()
			return fn()
		}
	}
	errc := make(chan error, 1)
	go func() {
		defer h.Close()
		// Never unlocked: the goroutine exits with the thread locked, and the
		// runtime then ends the thread instead of reusing it elsewhere.
		runtime.LockOSThread()
		if err := netns.Set(h); err != nil {
			errc <- fmt.Errorf("enter network namespace: %w", err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// NamespaceNames lists the named network namespaces (ip netns list).
func NamespaceNames() ([]string, error) {
	entries, err := os.ReadDir(NetnsDir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out, nil
}

// NamespaceExists reports whether a network namespace exists: a name (as
// ip netns names them) or an absolute path to a namespace file
// (/var/run/netns/X, /proc/PID/ns/net).
func NamespaceExists(name string) bool {
	path := name
	if !filepath.IsAbs(name) {
		if strings.ContainsAny(name, "/\x00") || name == "." || name == ".." || name == "" {
			return false
		}
		path = filepath.Join(NetnsDir, name)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false
	}
	// A named namespace is a bind mount of an nsfs file; /proc/PID/ns/net
	// is one too.
	return st.Type == unix.NSFS_MAGIC
}

// CurrentInode returns the inode of the calling thread's network namespace,
// which names it uniquely while it exists.
func CurrentInode() (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		return 0, fmt.Errorf("stat own network namespace: %w", err)
	}
	return st.Ino, nil
}

// Iface is what tunmux needs to know of an interface.
type Iface struct {
	Index int
	Name  string
	Kind  string // netlink kind: veth, bridge, vxlan, tuntap, device, ...
	MAC   net.HardwareAddr
	MTU   int
	Up    bool
	// For a veth: its peer's ifindex, and the peer namespace's id as seen
	// from this namespace (-1: the same namespace).
	PeerIndex   int
	PeerNetnsID int
	// The XDP program attached, if any, and whether in generic (skb) mode.
	XDPProgID  uint32
	XDPGeneric bool
	// L2 is true for an Ethernet device (frames carry an Ethernet header);
	// false for L3 devices such as tun or wireguard.
	L2 bool
}

// IsVeth reports whether the interface is a veth.
func (i Iface) IsVeth() bool { return i.Kind == "veth" }

// PeerElsewhere reports whether the interface is a veth whose peer is in
// another network namespace.
func (i Iface) PeerElsewhere() bool { return i.IsVeth() && i.PeerNetnsID != -1 }

// Lookup resolves an interface by name in the current namespace. A missing
// interface is an error wrapping ErrNoInterface.
func Lookup(name string) (Iface, error) {
	return memoized(func() map[memoKey]Iface { return memo.byName }, memoKey{name: name}, func() (Iface, error) { return lookup(name) })
}

func lookup(name string) (Iface, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return Iface{}, fmt.Errorf("interface %q: %w", name, ErrNoInterface)
		}
		return Iface{}, fmt.Errorf("look up interface %q: %w", name, err)
	}
	return fromLink(l), nil
}

// ByIndex resolves an interface by index in the current namespace.
func ByIndex(index int) (Iface, error) {
	return memoized(func() map[memoKey]Iface { return memo.byIndex }, memoKey{index: index}, func() (Iface, error) { return byIndex(index) })
}

func byIndex(index int) (Iface, error) {
	l, err := netlink.LinkByIndex(index)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) || errors.Is(err, unix.ENODEV) {
			return Iface{}, fmt.Errorf("ifindex %d: %w", index, ErrNoInterface)
		}
		return Iface{}, fmt.Errorf("look up ifindex %d: %w", index, err)
	}
	return fromLink(l), nil
}

func fromLink(l netlink.Link) Iface {
	a := l.Attrs()
	i := Iface{
		Index: a.Index, Name: a.Name, Kind: l.Type(), MAC: a.HardwareAddr, MTU: a.MTU,
		Up: a.Flags&net.FlagUp != 0, PeerNetnsID: -1, L2: a.EncapType == "ether",
	}
	if i.Kind == "veth" {
		i.PeerIndex = a.ParentIndex
		i.PeerNetnsID = a.NetNsID
	}
	if a.Xdp != nil && a.Xdp.Attached {
		i.XDPProgID = a.Xdp.ProgId
		i.XDPGeneric = a.Xdp.AttachMode == 2 // XDP_ATTACHED_SKB
	}
	return i
}

// Namespace is an open network namespace found on this machine.
type Namespace struct {
	Handle netns.NsHandle
	Name   string // the `ip netns` name, or "pid:N" for a process's namespace
	path   string // where it was found
}

// FindByID finds the namespace that the current namespace knows as nsid
// (a veth's IFLA_LINK_NETNSID), among named namespaces and those of running
// processes. The caller closes the returned handle.
func FindByID(nsid int) (Namespace, error) {
	nl, err := netlink.NewHandle()
	if err != nil {
		return Namespace{}, fmt.Errorf("netlink: %w", err)
	}
	defer nl.Close()
	ns, ok := find(func(h netns.NsHandle, _ uint64) bool {
		id, err := nl.GetNetNsIdByFd(int(h))
		return err == nil && id == nsid
	})
	if !ok {
		return Namespace{}, fmt.Errorf("no namespace with id %d is named in %s or held by a process", nsid, NetnsDir)
	}
	return ns, nil
}

// FindByInode finds the namespace whose inode is ino (as CurrentInode
// reports it), among named namespaces and those of running processes. The
// caller closes the returned handle. None found is an error wrapping
// ErrNoNamespace.
func FindByInode(ino uint64) (Namespace, error) {
	ns, ok := find(func(_ netns.NsHandle, i uint64) bool { return i == ino })
	if !ok {
		return Namespace{}, fmt.Errorf("network namespace %d is not named in %s nor held by a process: %w", ino, NetnsDir, ErrNoNamespace)
	}
	return ns, nil
}

// find returns the first namespace, named ones first, then those of
// running processes, for which match holds, given an open handle and its
// inode.
func find(match func(h netns.NsHandle, ino uint64) bool) (Namespace, bool) {
	seen := map[uint64]bool{}
	try := func(path, name string) (Namespace, bool) {
		var st unix.Stat_t
		if unix.Stat(path, &st) != nil || seen[st.Ino] {
			return Namespace{}, false
		}
		seen[st.Ino] = true
		h, err := netns.GetFromPath(path)
		if err != nil {
			return Namespace{}, false
		}
		if !match(h, st.Ino) {
			h.Close()
			return Namespace{}, false
		}
		return Namespace{Handle: h, Name: name, path: path}, true
	}
	if entries, err := os.ReadDir(NetnsDir); err == nil {
		for _, e := range entries {
			if ns, ok := try(filepath.Join(NetnsDir, e.Name()), e.Name()); ok {
				return ns, true
			}
		}
	}
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		if _, err := strconv.Atoi(p.Name()); err != nil {
			continue
		}
		if ns, ok := try(filepath.Join("/proc", p.Name(), "ns/net"), "pid:"+p.Name()); ok {
			return ns, true
		}
	}
	return Namespace{}, false
}

// InPeer runs fn with the peer of veth ifc, on a thread inside the peer's
// namespace (found through the veth's link-netnsid), and returns the peer's
// description ("netns/ifname"). here names the current namespace.
func InPeer(ifc Iface, here string, fn func(peer Iface) error) (string, error) {
	desc := fmt.Sprintf("peer of %s", ifc.Name)
	run := func(nsName string) func() error {
		return func() error {
			p, err := ByIndex(ifc.PeerIndex)
			if err != nil {
				return err
			}
			desc = Describe(nsName, p.Name)
			return fn(p)
		}
	}
	if ifc.PeerNetnsID < 0 {
		return desc, run(here)()
	}
	ns, err := peerNamespace(ifc.PeerNetnsID)
	if err != nil {
		return desc, err
	}
	return desc, DoHandle(ns.Handle, run(ns.Name))
}

// NameOfCurrent returns the `ip netns` name of the current namespace, or "".
func NameOfCurrent() string {
	name, _ := memoized(func() map[memoKey]string { return memo.nsName }, memoKey{}, func() (string, error) { return nameOfCurrent(), nil })
	return name
}

func nameOfCurrent() string {
	self, err := CurrentInode()
	if err != nil {
		return ""
	}
	entries, err := os.ReadDir(NetnsDir)
	if err != nil {
		return ""
	}
	for _, e := range entries {
		var st unix.Stat_t
		if unix.Stat(filepath.Join(NetnsDir, e.Name()), &st) == nil && st.Ino == self {
			return e.Name()
		}
	}
	return ""
}

// ethtool commands and flags (linux/ethtool.h).
const (
	ethtoolGTXCSUM = 0x16
	ethtoolGTSO    = 0x1e
	ethtoolGFLAGS  = 0x25
	ethtoolSFLAGS  = 0x26
	ethtoolGGRO    = 0x2b
	ethtoolSGRO    = 0x2c
	ethFlagTXVLAN  = 1 << 7
)

type ethtoolValue struct {
	cmd  uint32
	data uint32
}

func ethtool(name string, v *ethtoolValue) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("ethtool socket: %w", err)
	}
	defer unix.Close(fd)
	if err := ethtoolIoctl(fd, name, v); err != nil {
		return fmt.Errorf("ethtool on %s: %w", name, err)
	}
	return nil
}

// GRO reports whether generic receive offload is on.
func GRO(name string) (bool, error) {
	return memoized(func() map[memoKey]bool { return memo.gro }, memoKey{name: name}, func() (bool, error) { return gro(name) })
}

func gro(name string) (bool, error) {
	v := ethtoolValue{cmd: ethtoolGGRO}
	if err := ethtool(name, &v); err != nil {
		return false, err
	}
	return v.data != 0, nil
}

// SetGRO turns generic receive offload on or off. On a veth, GRO on gives
// the device a NAPI context, which it needs to accept XDP-redirected frames
// when it runs no XDP program itself.
func SetGRO(name string, on bool) error {
	defer Forget()
	v := ethtoolValue{cmd: ethtoolSGRO}
	if on {
		v.data = 1
	}
	return ethtool(name, &v)
}

// TxChecksum reports whether the interface offloads transmit checksums.
func TxChecksum(name string) (bool, error) {
	v := ethtoolValue{cmd: ethtoolGTXCSUM}
	if err := ethtool(name, &v); err != nil {
		return false, err
	}
	return v.data != 0, nil
}

// TSO reports whether the interface takes TCP segmentation offload.
func TSO(name string) (bool, error) {
	v := ethtoolValue{cmd: ethtoolGTSO}
	if err := ethtool(name, &v); err != nil {
		return false, err
	}
	return v.data != 0, nil
}

// DisableTxVLANOffload makes the interface put 802.1Q tags into the frames
// it sends instead of handing them over beside the frame. A veth receiving
// from it then shows the tag to XDP, which sees only the frame's bytes. It
// reports whether anything changed.
func DisableTxVLANOffload(name string) (bool, error) {
	defer Forget() // interfaces change: no answer kept stays true
	v := ethtoolValue{cmd: ethtoolGFLAGS}
	if err := ethtool(name, &v); err != nil {
		return false, err
	}
	if v.data&ethFlagTXVLAN == 0 {
		return false, nil
	}
	v = ethtoolValue{cmd: ethtoolSFLAGS, data: v.data &^ ethFlagTXVLAN}
	return true, ethtool(name, &v)
}

// Describe names an interface for messages: "name" or "netns/name".
func Describe(netnsName, ifname string) string {
	if netnsName == "" {
		return ifname
	}
	return strings.TrimSuffix(netnsName, "/") + "/" + ifname
}
