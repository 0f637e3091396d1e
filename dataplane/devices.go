package dataplane

import (
	"errors"
	"fmt"
	"github.com/cilium/ebpf"
	"os"

	"github.com/tunmux/tunmux/maps"
	"github.com/tunmux/tunmux/netdev"
)

// Device is a network device that a dataplane's commands created: a mux
// member made by `mux member add --create` (kind "member"), or by
// `route dev create` a registered tunnel device ("tunnel") or a TUN device
// running the route program ("routes").
type Device struct {
	Name       string `json:"name"`
	Kind       string `json:"kind"`
	Ifindex    uint32 `json:"ifindex"`
	Netns      string `json:"netns"` // its namespace's name, "" for the one tunmux ran in
	NetnsInode uint64 `json:"netns_inode"`
	// State is "deleted", "kept" (by unload of one dataplane), or "left
	// behind" with Reason saying why.
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`

	linkKind  string // the netlink kind it has: tuntap, vxlan, geneve
	candidate bool   // known only by a record of its program: ours only if it is of linkKind
}

// ListOf reads a list from the typed state over l's maps, e.g.
// ListOf(l, maps.NewL2TPState, (*maps.L2TPState).ListSessions).
func ListOf[S, E any](l *Loaded, state func(map[string]*ebpf.Map) (S, error), list func(S) ([]E, error)) ([]E, error) {
	st, err := state(l.Maps)
	if err != nil {
		return nil, err
	}
	return list(st)
}

// createdDevices lists the devices that commands of l's dataplane created,
// from its records.
func createdDevices(l *Loaded) ([]Device, error) {
	var out []Device
	switch l.DP {
	case MuxDataplane:
		members, err := ListOf(l, maps.NewMuxState, (*maps.MuxState).Members)
		if err != nil {
			return nil, err
		}
		for _, m := range members {
			if m.Created {
				out = append(out, Device{Name: m.Name, Kind: "member", Ifindex: m.Ifindex, NetnsInode: m.Netns, linkKind: "tuntap"})
			}
		}
	case RouteDataplane:
		devs, err := ListOf(l, maps.NewRouteState, (*maps.RouteState).TunnelDevs)
		if err != nil {
			return nil, err
		}
		for _, d := range devs {
			out = append(out, Device{Name: d.Name, Kind: "tunnel", Ifindex: d.Ifindex, NetnsInode: d.Netns, linkKind: d.Proto.String()})
		}
		// As route dev del tells them: a TUN device running route.
		atts, err := maps.ListAttachments(l.Maps["attachments"])
		if err != nil {
			return nil, err
		}
		for _, a := range atts {
			if a.Program == "route" {
				out = append(out, Device{Name: a.Ifname, Kind: "routes", Ifindex: a.Ifindex, NetnsInode: a.Netns, linkKind: "tuntap", candidate: true})
			}
		}
	}
	return out, nil
}

// settleDevices finds each device in its namespace (here is the --netns
// tunmux runs in) and deletes it, or with keep only notes that it is
// there. Devices no longer there, and candidates that turn out not to be
// of their kind, are dropped from the list.
func settleDevices(devs []Device, here string, keep bool) []Device {
	var hereIno uint64
	_ = netdev.Do(here, func() (err error) {
		hereIno, err = netdev.CurrentInode()
		return err
	})
	out := []Device{}
	for _, d := range devs {
		present := false
		work := func(nsName string) func() error {
			return func() error {
				d.Netns = nsName
				ifc, err := netdev.ByIndex(int(d.Ifindex))
				if errors.Is(err, netdev.ErrNoInterface) {
					return nil // gone already
				}
				if err != nil {
					return err
				}
				if ifc.Kind != d.linkKind || (ifc.Name != d.Name && d.candidate) {
					return nil // not the device tunmux made: its index was reused
				}
				present, d.Name = true, ifc.Name
				if keep {
					d.State = "kept"
					return nil
				}
				if err := netdev.DeleteLink(ifc.Name); err != nil {
					return err
				}
				d.State = "deleted"
				return nil
			}
		}
		var err error
		if d.NetnsInode == hereIno && hereIno != 0 {
			err = netdev.Do(here, work(here))
		} else if ns, ferr := netdev.FindByInode(d.NetnsInode); ferr == nil {
			err = netdev.DoHandle(ns.Handle, work(ns.Name))
		} else if d.candidate {
			continue // nothing says it is a device tunmux made
		} else {
			err = ferr
		}
		if err != nil {
			present, d.State, d.Reason = true, "left behind", err.Error()
		}
		if present {
			out = append(out, d)
		}
	}
	return out
}

// UnloadOptions are the parameters of Unload.
type UnloadOptions struct {
	// DeleteDevices deletes the devices the dataplane's commands created
	// (see Device); otherwise they are kept and listed.
	DeleteDevices bool
	// Netns is the namespace tunmux runs in (--netns): devices recorded
	// elsewhere are found by their namespace's inode.
	Netns string
}

// UnloadAllResult says what UnloadAll did.
type UnloadAllResult struct {
	Root       string         `json:"root"`
	Dataplanes []UnloadResult `json:"dataplanes"`
	// Left are the entries left under the root (folders of dataplanes this
	// tunmux does not know); the root folder is removed when there are none.
	Left        []string `json:"left"`
	RootRemoved bool     `json:"root_removed"`
}

// UnloadAll unloads every dataplane under the locked root, deleting the
// devices their commands created, then removes the root folder. A folder
// that is not a dataplane this tunmux knows is left alone (and with it the
// root).
func UnloadAll(lock *maps.Lock, netnsName string) (UnloadAllResult, error) {
	root := lock.Root()
	res := UnloadAllResult{Root: root.Path, Dataplanes: []UnloadResult{}, Left: []string{}}
	names, err := root.Dataplanes()
	if err != nil {
		return res, err
	}
	for _, name := range names {
		dp, err := Lookup(name)
		if err != nil {
			continue
		}
		un, err := Unload(lock, dp, UnloadOptions{DeleteDevices: true, Netns: netnsName})
		res.Dataplanes = append(res.Dataplanes, un)
		if err != nil {
			return res, err
		}
	}
	entries, err := os.ReadDir(root.Path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return res, fmt.Errorf("read %s: %w", root.Path, err)
	}
	for _, e := range entries {
		res.Left = append(res.Left, e.Name())
	}
	if len(res.Left) == 0 {
		if err := os.Remove(root.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return res, fmt.Errorf("remove %s: %w", root.Path, err)
		}
		res.RootRemoved = true
	}
	return res, nil
}
