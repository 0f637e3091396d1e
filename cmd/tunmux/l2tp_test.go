package main

import (
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/tunmux/tunmux/maps"
)

var sessionArgs = []string{"--session-id", "100", "--peer-session-id", "200", "--encap", "udp",
	"--local", "172.16.0.1", "--peer", "172.16.0.2", "--cookie", "0a0b0c0d", "--peer-cookie", "01020304",
	"--eth-iface", "wl0", "--tunnel-iface", "ul0", "--peer-mac", "02:00:00:00:0c:02"}

func TestL2TPAttachAndSessions(t *testing.T) {
	c := newCLI(t)
	c.ok("load", "l2tp")
	c.expect(exitInvalid, []string{"attach", "l2tp-encap", "wl0", "--mode", "generic"}, "--mode", "XDP programs only")
	c.ok("attach", "l2tp-encap", "wl0")
	c.ok("attach", "l2tp-decap", "ul0")
	var st struct {
		Dataplanes []struct {
			Name  string
			Links []struct{ Program, Hook, State string } `json:"links"`
		} `json:"dataplanes"`
	}
	c.jsonOut(&st, "status")
	if len(st.Dataplanes) != 1 || st.Dataplanes[0].Name != "l2tp" || len(st.Dataplanes[0].Links) != 2 {
		t.Fatalf("status: %+v", st)
	}
	for _, l := range st.Dataplanes[0].Links {
		if l.Hook != "tc-ingress" || l.State != "attached" {
			t.Errorf("link %+v: want an attached tc-ingress link", l)
		}
	}

	add := append([]string{"l2tp", "session", "add"}, sessionArgs...)
	// wl1 (the host side of wl0) has MTU 1500; the session carries 1442
	// bytes of IP (1500 - 14 - 44 of UDP, IPv4, cookie, sublayer): as
	// encap, l2tp says so.
	if r := c.ok(add...); !strings.Contains(r.Stderr, "has MTU 1500, but session 100 carries at most 1442 bytes of IP") || !strings.Contains(r.Stderr, "set that MTU to 1442") {
		t.Errorf("want the MTU warning:\n%s", r)
	}
	c.expect(exitFailed, add, "already exists")
	var s maps.SessionJSON
	c.jsonOut(&s, "l2tp", "session", "get", "--session-id", "100")
	if s.SessionID != 100 || s.PeerSessionID != 200 || s.Encap != "udp" || s.Local != "172.16.0.1" || *s.LocalPort != 1701 ||
		s.Peer != "172.16.0.2" || *s.PeerPort != 1701 || s.Cookie != "0a0b0c0d" || s.PeerCookie != "01020304" ||
		s.L2Spec != "default" || s.EthIface != "wl0" || s.TunnelIface != "ul0" || *s.PeerMAC != "02:00:00:00:0c:02" {
		t.Errorf("session get: %+v", s)
	}
	c.ok("l2tp", "session", "update", "--session-id", "100", "--peer-cookie", "none", "--peer", "172.16.0.3:1702")
	c.jsonOut(&s, "l2tp", "session", "get", "--session-id", "100")
	if s.PeerCookie != "" || s.Peer != "172.16.0.3" || *s.PeerPort != 1702 || s.Cookie != "0a0b0c0d" {
		t.Errorf("after update: %+v", s)
	}
	c.expect(exitNotFound, []string{"l2tp", "session", "update", "--session-id", "101", "--encap", "ip"}, "not found")
	c.expect(exitNotFound, []string{"l2tp", "session", "get", "--session-id", "101"}, "not found")
	// One session per Ethernet interface.
	c.expect(exitFailed, append([]string{"l2tp", "session", "add"}, withFlag(sessionArgs, "--session-id", "101")...), "wl0 already carries session 100")
	c.ok(append([]string{"l2tp", "session", "add"}, withFlag(withFlag(withFlag(sessionArgs, "--session-id", "101"), "--eth-iface", "x0"), "--encap", "ip")...)...)
	var list []maps.SessionJSON
	c.jsonOut(&list, "l2tp", "session", "list")
	if len(list) != 2 || list[0].SessionID != 100 || list[1].SessionID != 101 || list[1].LocalPort != nil {
		t.Errorf("list: %+v", list)
	}
	if table := c.ok("l2tp", "session", "list").Stdout; !strings.HasPrefix(table, "SESSION") || !strings.Contains(table, "172.16.0.3:1702") {
		t.Errorf("table:\n%s", table)
	} else {
		for _, line := range strings.Split(strings.TrimSpace(table), "\n") {
			if len(line) > 80 {
				t.Errorf("a line of %d columns:\n%s", len(line), table)
			}
		}
	}
	if wide := c.ok("-o", "wide", "l2tp", "session", "list").Stdout; !strings.Contains(wide, "PEER-COOKIE") {
		t.Errorf("wide table:\n%s", wide)
	}
	// Decap listens on the local UDP ports of UDP sessions only.
	if n := bpftoolEntries(t, c.root+"/l2tp/map_udp_ports"); n != 1 {
		t.Errorf("udp_ports holds %d ports, want 1", n)
	}
	c.ok("l2tp", "session", "del", "--session-id", "100")
	c.expect(exitNotFound, []string{"l2tp", "session", "del", "--session-id", "100"}, "not found")
	if n := bpftoolEntries(t, c.root+"/l2tp/map_udp_ports"); n != 0 {
		t.Errorf("udp_ports holds %d ports after the last UDP session went, want 0", n)
	}
	// Without --peer-mac, a peer that cannot be resolved is a warning, not an error.
	r := c.ok(append([]string{"l2tp", "session", "add"}, without(withFlag(sessionArgs, "--eth-iface", "wl1"), "--peer-mac")...)...)
	if !strings.Contains(r.Stderr, "warning") || !strings.Contains(r.Stderr, "non-IP frames") {
		t.Errorf("want a warning about the unresolved peer:\n%s", r)
	}
	c.ok("unload", "l2tp")
}

func TestL2TPBadInputChangesNothing(t *testing.T) {
	c := newCLI(t)
	c.ok("load", "l2tp")
	c.ok(append([]string{"l2tp", "session", "add"}, sessionArgs...)...)
	before := c.snapshot()
	fresh := withFlag(withFlag(sessionArgs, "--session-id", "300"), "--eth-iface", "x0")
	sessionAdd := []string{"l2tp", "session", "add"}
	c.refuse(slices.Concat(
		badValues(sessionAdd, fresh, "--session-id", "0", "4294967296", "abc", absent),
		badValues(sessionAdd, fresh, "--peer-session-id", "-1", absent),
		badValues(sessionAdd, fresh, "--encap", "gre", absent),
		badValues(sessionAdd, fresh, "--local", "1.2.3", "172.16.0.1:0", "[fd00::1]:70000", "224.0.0.5", absent),
		badValues(sessionAdd, fresh, "--peer", "fd00::2", "172.16.0.1"),
		badValues(sessionAdd, withFlag(fresh, "--encap", "ip"), "--local", "172.16.0.1:1701"),
		badValues(sessionAdd, fresh, "--cookie", "zz", "0a0b0c"),
		badValues(sessionAdd, fresh, "--peer-cookie", "0102030405"),
		badValues(sessionAdd, fresh, "--l2spec", "atm"),
		badValues(sessionAdd, fresh, "--eth-iface", "nosuchif", absent),
		badValues(sessionAdd, fresh, "--tunnel-iface", "x0", "no/such"),
		badValues(sessionAdd, fresh, "--peer-mac", "01:00:5e:00:00:01"),
		[]badInput{
			{[]string{"l2tp", "session", "update", "--session-id", "100", "--cookie", "xyz"}, "--cookie"},
			{[]string{"l2tp", "session", "update", "--session-id", "999", "--cookie", "xyz"}, "--cookie"},
			{[]string{"l2tp", "session", "get"}, "--session-id"},
			{[]string{"l2tp", "session", "del", "--session-id", "0"}, "--session-id"},
			{[]string{"l2tp", "tunnel"}, "tunnel"},
			{[]string{"load", "l2tp", "--max-entries", "0"}, "--max-entries"},
		},
	))
	c.unchanged(before, "bad input")
}

// bpftoolEntries counts a pinned map's entries as bpftool dumps them.
func bpftoolEntries(t *testing.T, pin string) int {
	t.Helper()
	out, err := exec.Command("bpftool", "-j", "map", "dump", "pinned", pin).Output()
	if err != nil {
		t.Fatalf("bpftool map dump %s: %v", pin, err)
	}
	var entries []any
	if err := json.Unmarshal(out, &entries); err != nil {
		t.Fatalf("bpftool JSON: %v\n%s", err, out)
	}
	return len(entries)
}
