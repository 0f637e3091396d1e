package maps

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Parsing and validation shared by every typed entry: each problem is an
// *InvalidError naming the flag and the accepted form.

// ValidateIfaceName checks the form of an interface name given to flag.
func ValidateIfaceName(flag, name string) error {
	if name == "" || len(name) > 15 || name == "." || name == ".." || strings.ContainsAny(name, "/: \t\n") {
		return Invalid(flag, name, "is not an interface name", "1 to 15 characters without '/', ':' or spaces")
	}
	return nil
}

// fromBase is where a Parse starts: a copy of base for an update, the zero
// value for an add (base nil).
func fromBase[T any](base *T) T {
	var v T
	if base != nil {
		v = *base
	}
	return v
}

// choice is one keyword a flag accepts and the value it stands for.
type choice[T any] struct {
	name  string
	value T
}

// parseChoice sets *dst to the value of the keyword given to flag (in any
// case); "" (not given) leaves *dst as it is. An unknown keyword goes to
// bad as reason, with the keywords accepted.
func parseChoice[T any](bad func(error), flag, given, reason string, dst *T, choices ...choice[T]) {
	if given == "" {
		return
	}
	names := make([]string, len(choices))
	for i, c := range choices {
		if c.name == strings.ToLower(given) {
			*dst = c.value
			return
		}
		names[i] = c.name
	}
	bad(Invalid(flag, given, reason, strings.Join(names, "|")))
}

// ifaceName checks the interface name given to flag and returns the name
// to keep: the one given, or, when none is ("" given), the current one,
// which is then required. A problem goes to bad and keeps current. (It
// returns the name rather than storing it through a pointer, so that the
// entry being parsed stays on the caller's stack.)
func ifaceName(bad func(error), flag, given, current string) string {
	if given == "" {
		if current == "" {
			bad(Invalid(flag, "", "is required", "an interface name"))
		}
		return current
	}
	if err := ValidateIfaceName(flag, given); err != nil {
		bad(err)
		return current
	}
	return given
}

func parseIPv4(flag, s string, unicast bool) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, Invalid(flag, "", "is required", "an IPv4 address like 10.0.0.1")
	}
	ip, err := netip.ParseAddr(s)
	if err != nil || !ip.Is4() {
		return netip.Addr{}, Invalid(flag, s, "is not an IPv4 address", "an IPv4 address like 10.0.0.1")
	}
	if unicast && (ip.IsUnspecified() || ip.IsMulticast() || ip == netip.AddrFrom4([4]byte{255, 255, 255, 255})) {
		return netip.Addr{}, Invalid(flag, s, "is not a unicast address", "a unicast IPv4 address")
	}
	return ip, nil
}

// ParseUint parses a decimal number in lo..hi given to flag.
func ParseUint(flag, s string, lo, hi uint64) (uint64, *InvalidError) {
	accepted := fmt.Sprintf("%d..%d", lo, hi)
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, Invalid(flag, s, "is not a decimal number", accepted)
	}
	if n < lo || n > hi {
		return 0, Invalid(flag, s, "is out of range", accepted)
	}
	return n, nil
}

// macFlag parses the MAC address given to flag and returns the one to keep:
// the one given, or current when none is ("" given) or it is malformed
// (the problem goes to bad). Only --dst-mac may be a multicast address.
func macFlag(bad func(error), flag, given string, current net.HardwareAddr) net.HardwareAddr {
	if given == "" {
		return current
	}
	mac, err := parseMAC(flag, given, flag != "--dst-mac")
	if err != nil {
		bad(err)
		return current
	}
	return mac
}

func parseMAC(flag, s string, unicast bool) (net.HardwareAddr, error) {
	const form = "six colon-separated hex bytes like 02:00:00:00:00:01"
	mac, err := net.ParseMAC(s)
	if err != nil || len(mac) != 6 {
		return nil, Invalid(flag, s, "is not an Ethernet MAC address", form)
	}
	if isZero(mac) {
		return nil, Invalid(flag, s, "is the zero address", form)
	}
	if unicast && mac[0]&1 == 1 {
		return nil, Invalid(flag, s, "is a multicast or broadcast address", "a unicast MAC address")
	}
	return mac, nil
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// withoutMissing keeps, of the problems in err, those that are not a
// missing flag.
func withoutMissing(err error) error {
	var keep []error
	for _, e := range Flatten(err) {
		var inv *InvalidError
		if errors.As(e, &inv) && strings.HasPrefix(inv.Problem, "is required") {
			continue
		}
		keep = append(keep, e)
	}
	return errors.Join(keep...)
}

// Flatten lists the errors joined in err (errors.Join, recursively).
func Flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, Flatten(e)...)
		}
		return out
	}
	return []error{err}
}

// be32 returns the address as a uint32 whose memory holds network byte order.
func be32(a netip.Addr) uint32 {
	b := a.As4()
	return binary.NativeEndian.Uint32(b[:])
}

func fromBE32(v uint32) netip.Addr {
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

// htons swaps between host and network order on this (little-endian) target.
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

// ParseMAC parses a unicast MAC address given to flag.
func ParseMAC(flag, s string) (net.HardwareAddr, error) { return parseMAC(flag, s, true) }
