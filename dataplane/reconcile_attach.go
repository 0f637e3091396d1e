package dataplane

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/cilium/ebpf/link"

	"github.com/tunmux/tunmux/maps"
	"github.com/tunmux/tunmux/netdev"
)

// DesiredAttachment is an attachment of an attachable program as a
// desired-state file gives it (tunmux attach PROGRAM IFACE).
type DesiredAttachment struct {
	Program string // an attachable program: encap, decap, route, ...
	Iface   string
	Hook    string // "" (the program's own), xdp or tc
	Mode    string // XDP: "" (native), native or generic
	Line    int
}

// CurrentAttachment is an attachment of an attachable program found in the
// records of a loaded dataplane, with what the kernel says of its link.
type CurrentAttachment struct {
	DP      *Dataplane
	Program string // the attachable program it belongs to (encap for encap-tc)
	Record  maps.Attachment
	Alive   bool // its link is attached to an interface
}

// Hook returns the --hook that attaches it: "tc" for a TC variant, else "".
func (c CurrentAttachment) Hook() string {
	if c.Record.Program != c.Program {
		return "tc"
	}
	return ""
}

// Mode returns the --mode it was attached with ("" at TC or native XDP).
func (c CurrentAttachment) Mode() string {
	if c.Record.Mode == maps.ModeGeneric {
		return "generic"
	}
	return ""
}

// attachableOf returns the attachable program a recorded program belongs
// to: itself, or the program whose TC variant it is.
func attachableOf(dp *Dataplane, prog string) (string, bool) {
	for _, p := range dp.Programs {
		if p.Attachable && (p.Name == prog || p.TCVariant == prog) {
			return p.Name, true
		}
	}
	return "", false
}

// Attachments lists the attachments of attachable programs that every
// loaded dataplane under root records for the namespace with inode ino
// (programs that a dataplane attaches itself, such as xconnect's and mux's,
// are not among them). Sorted by interface, then program.
func Attachments(root *maps.Root, ino uint64) ([]CurrentAttachment, error) {
	var out []CurrentAttachment
	for _, dp := range registry {
		l, err := Open(root, dp)
		if errors.Is(err, maps.ErrNotLoaded) {
			continue
		}
		if err != nil {
			return nil, err
		}
		recs, err := maps.ListAttachments(l.Maps["attachments"])
		if err != nil {
			l.Close()
			return nil, err
		}
		for _, r := range recs {
			name, ok := attachableOf(dp, r.Program)
			if !ok || r.Netns != ino {
				continue
			}
			out = append(out, CurrentAttachment{DP: dp, Program: name, Record: r,
				Alive: linkAlive(filepath.Join(l.Dir, LinkPinName(r.Program, r.Netns, int(r.Ifindex))))})
		}
		l.Close()
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Record.Ifname != out[j].Record.Ifname {
			return out[i].Record.Ifname < out[j].Record.Ifname
		}
		return out[i].Program < out[j].Program
	})
	return out, nil
}

// AttachPlan is what reconciling the attachments will do.
type AttachPlan struct {
	Changes []Change
	detach  []CurrentAttachment
	attach  []DesiredAttachment
	// unpin are the attachments a command detaches (tunmux detach), by the
	// code Detach runs.
	unpin []DesiredAttachment
}

// attachKey identifies an attachment across recreations of its interface.
type attachKey struct{ program, iface string }

// PlanAttach compares desired attachments with the recorded ones of the
// namespace ino (the calling thread's). An attachment whose link is defunct
// (its interface was recreated), or whose interface now has another index,
// or whose hook or mode differs, is attached again; with prune, recorded
// attachments the file lacks are detached. The attachments in remove are
// detached by the code of 'tunmux detach'. With ensure (a command's
// attach), a desired attachment is attached even when it looks current:
// Attach reports it as already there, or names what is in the way.
func PlanAttach(root *maps.Root, desired, remove []DesiredAttachment, prune, ensure bool, ino uint64) (*AttachPlan, error) {
	plan := &AttachPlan{}
	current, err := Attachments(root, ino)
	if err != nil {
		return nil, err
	}
	byKey := map[attachKey]CurrentAttachment{}
	for _, c := range current {
		byKey[attachKey{c.Program, c.Record.Ifname}] = c
	}
	wanted := map[attachKey]bool{}
	for _, d := range desired {
		k := attachKey{d.Program, d.Iface}
		wanted[k] = true
		key := d.Program + "@" + d.Iface
		c, ok := byKey[k]
		if !ok {
			plan.attach = append(plan.attach, d)
			plan.Changes = append(plan.Changes, Change{Action: "add", Kind: "attachment", Key: key, Detail: describeAttach(d.Hook, d.Mode), Line: d.Line})
			continue
		}
		stale, settings := "", ""
		ifc, lerr := netdev.Lookup(d.Iface)
		switch {
		case !c.Alive:
			stale = "link defunct (interface gone or recreated)"
		case lerr == nil && uint32(ifc.Index) != c.Record.Ifindex:
			stale = fmt.Sprintf("interface recreated (ifindex %d, was %d)", ifc.Index, c.Record.Ifindex)
		case hookName(d.Hook) != hookName(c.Hook()) || modeName(d.Mode) != modeName(c.Mode()):
			settings = describeAttach(c.Hook(), c.Mode()) + " -> " + describeAttach(d.Hook, d.Mode)
		}
		switch {
		case stale != "" || settings != "" && !ensure:
			// A command's attach leaves a current attachment with other
			// settings in place: Attach says what is in the way.
			plan.detach = append(plan.detach, c)
			plan.attach = append(plan.attach, d)
			plan.Changes = append(plan.Changes, Change{Action: "change", Kind: "attachment", Key: key, Detail: stale + settings, Line: d.Line})
		case ensure:
			plan.attach = append(plan.attach, d)
		}
	}
	for _, d := range remove {
		plan.unpin = append(plan.unpin, d)
		plan.Changes = append(plan.Changes, Change{Action: "remove", Kind: "attachment", Key: d.Program + "@" + d.Iface, Line: d.Line})
	}
	if prune {
		for _, c := range current {
			if !wanted[attachKey{c.Program, c.Record.Ifname}] {
				plan.detach = append(plan.detach, c)
				plan.Changes = append(plan.Changes, Change{Action: "remove", Kind: "attachment", Key: c.Program + "@" + c.Record.Ifname, Detail: describeAttach(c.Hook(), c.Mode())})
			}
		}
	}
	return plan, nil
}

func hookName(h string) string {
	if h == "xdp" {
		return ""
	}
	return h
}

func modeName(m string) string {
	if m == "native" {
		return ""
	}
	return m
}

func describeAttach(hook, mode string) string {
	s := "hook " + hook
	if hookName(hook) == "" {
		s = "default hook"
	}
	if modeName(mode) != "" {
		s += ", mode " + mode
	}
	return s
}

// AttachOutcome is what executing an attach plan did: the results of the
// attachments made and of the detachments commands asked for.
type AttachOutcome struct {
	Attached []AttachResult
	Detached []DetachResult
	Warnings []string
}

// ExecuteAttach carries a plan out: stale attachments are detached, then
// the desired ones attached, by the code `tunmux attach` and `tunmux
// detach` run. Call it inside the namespace of the interfaces.
func ExecuteAttach(lock *maps.Lock, plan *AttachPlan, netnsName string) (AttachOutcome, error) {
	var out AttachOutcome
	open := func(program string) (*Loaded, error) {
		dp := Attachable()[program]
		if dp == nil {
			return nil, maps.Invalid("PROGRAM", program, "is not an attachable program", attachableList())
		}
		return Open(lock.Root(), dp)
	}
	for _, d := range plan.unpin {
		l, err := open(d.Program)
		if err != nil {
			return out, err
		}
		res, err := l.Detach(lock, d.Program, d.Iface, netnsName)
		l.Close()
		if err != nil {
			return out, err
		}
		out.Detached = append(out.Detached, res)
	}
	for _, c := range plan.detach {
		if err := detachRecord(lock, c.DP, c.Record); err != nil {
			return out, err
		}
	}
	for _, d := range plan.attach {
		l, err := open(d.Program)
		if err != nil {
			return out, err
		}
		res, err := l.Attach(lock, d.Program, d.Iface, AttachOptions{Netns: netnsName, Mode: d.Mode, Hook: d.Hook})
		l.Close()
		out.Warnings = append(out.Warnings, res.Warnings...)
		if err != nil {
			return out, err
		}
		out.Attached = append(out.Attached, res)
	}
	return out, nil
}

// detachRecord removes the link of a recorded attachment, by the index it
// was recorded with (its interface may be gone), and the record.
func detachRecord(lock *maps.Lock, dp *Dataplane, rec maps.Attachment) error {
	l, err := Open(lock.Root(), dp)
	if err != nil {
		return err
	}
	defer l.Close()
	pin := filepath.Join(l.Dir, LinkPinName(rec.Program, rec.Netns, int(rec.Ifindex)))
	if lk, err := link.LoadPinnedLink(pin, nil); err == nil {
		_ = lk.Unpin()
		lk.Close()
	}
	if err := os.Remove(pin); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", pin, err)
	}
	return maps.DeleteAttachment(lock, l.Maps["attachments"], rec.Netns, rec.Ifindex, rec.Hook)
}

// attachableList names every attachable program, for error messages.
func attachableList() string {
	var names []string
	for name := range Attachable() {
		names = append(names, name)
	}
	sort.Strings(names)
	s := ""
	for i, n := range names {
		if i > 0 {
			s += "|"
		}
		s += n
	}
	return s
}
