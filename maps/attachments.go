package maps

import (
	"errors"
	"fmt"
	"time"

	"github.com/cilium/ebpf"
)

// Hook is where a program is attached on an interface.
type Hook uint32

// Hooks.
const (
	HookXDP       Hook = 1
	HookTCIngress Hook = 2
	HookTCEgress  Hook = 3
)

var hookNames = map[Hook]string{HookXDP: "xdp", HookTCIngress: "tc-ingress", HookTCEgress: "tc-egress"}

func (h Hook) String() string { return enumName(h, hookNames, "hook") }

// XDP attach modes, as stored in an Attachment.
const (
	ModeNative  uint32 = 1
	ModeGeneric uint32 = 2
)

// ModeName returns "native", "generic" or "" for a stored mode.
func ModeName(mode uint32) string {
	switch mode {
	case ModeNative:
		return "native"
	case ModeGeneric:
		return "generic"
	}
	return ""
}

// Attachment records where a program of a dataplane is attached, with the
// names needed to show it (interface names change and collide across
// namespaces, so the key is the namespace inode and the ifindex).
type Attachment struct {
	Netns      uint64
	Ifindex    uint32
	Hook       Hook
	Program    string
	Ifname     string
	NetnsName  string
	Mode       uint32
	LinkID     uint32
	AttachedAt time.Time
}

// attachKey mirrors struct attach_key in progs/include/tunmux.h.
type attachKey struct {
	Netns   uint64
	Ifindex uint32
	Hook    uint32
}

// attachValue mirrors struct attachment in progs/include/tunmux.h.
type attachValue struct {
	Prog       [16]byte
	Ifname     [16]byte
	NetnsName  [48]byte
	Mode       uint32
	LinkID     uint32
	AttachedAt uint64
}

// PutAttachment records a. The caller holds the lock.
func PutAttachment(_ *Lock, m *ebpf.Map, a Attachment) error {
	var v attachValue
	if err := checkValueSize(m, v); err != nil {
		return err
	}
	putCString(v.Prog[:], a.Program)
	putCString(v.Ifname[:], a.Ifname)
	putCString(v.NetnsName[:], a.NetnsName)
	v.Mode, v.LinkID, v.AttachedAt = a.Mode, a.LinkID, uint64(a.AttachedAt.Unix())
	k := attachKey{Netns: a.Netns, Ifindex: a.Ifindex, Hook: uint32(a.Hook)}
	if err := m.Put(&k, &v); err != nil {
		return fmt.Errorf("record attachment of %s on %s: %w", a.Program, a.Ifname, err)
	}
	return nil
}

// DeleteAttachment removes the record of the attachment at (netns, ifindex,
// hook); a missing record is not an error. The caller holds the lock.
func DeleteAttachment(_ *Lock, m *ebpf.Map, netns uint64, ifindex uint32, hook Hook) error {
	k := attachKey{Netns: netns, Ifindex: ifindex, Hook: uint32(hook)}
	if err := m.Delete(&k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("delete attachment record: %w", err)
	}
	return nil
}

// GetAttachment returns the record of the attachment at (netns, ifindex,
// hook), or an error wrapping ErrNotFound.
func GetAttachment(m *ebpf.Map, netns uint64, ifindex uint32, hook Hook) (Attachment, error) {
	var v attachValue
	if err := checkValueSize(m, v); err != nil {
		return Attachment{}, err
	}
	k := attachKey{Netns: netns, Ifindex: ifindex, Hook: uint32(hook)}
	if err := lookupFound(m, &k, &v, fmt.Errorf("attachment on ifindex %d: %w", ifindex, ErrNotFound), "attachment"); err != nil {
		return Attachment{}, err
	}
	return attachmentFrom(k, v), nil
}

func attachmentFrom(k attachKey, v attachValue) Attachment {
	a := Attachment{
		Netns: k.Netns, Ifindex: k.Ifindex, Hook: Hook(k.Hook),
		Program: cString(v.Prog[:]), Ifname: cString(v.Ifname[:]), NetnsName: cString(v.NetnsName[:]),
		Mode: v.Mode, LinkID: v.LinkID,
	}
	if v.AttachedAt != 0 {
		a.AttachedAt = time.Unix(int64(v.AttachedAt), 0).UTC()
	}
	return a
}

// ListAttachments returns every recorded attachment.
func ListAttachments(m *ebpf.Map) ([]Attachment, error) {
	if err := checkValueSize(m, attachValue{}); err != nil {
		return nil, err
	}
	return listMap(m, "attachments", attachmentFrom)
}
