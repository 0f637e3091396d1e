package main

import (
	"strings"
	"testing"

	"github.com/tunmux/tunmux/maps"
)

func TestMuxCarrierAndMembers(t *testing.T) {
	c := newCLI(t)
	t.Cleanup(func() { c.run("unload", "mux") })
	c.ok("load", "mux")
	c.expect(exitNotFound, []string{"mux", "carrier", "show"}, "no carrier")
	c.expect(exitInvalid, []string{"mux", "member", "add", "m1", "--label", "1", "--create"}, "--mtu", "carrier")
	c.ok("mux", "carrier", "set", "ul0", "--on-miss", "pass")
	var carrier struct {
		Name     string `json:"name"`
		Ethernet bool   `json:"ethernet"`
		OnMiss   string `json:"on_miss"`
		PeerMAC  string `json:"peer_mac"`
	}
	c.jsonOut(&carrier, "mux", "carrier", "show")
	if carrier.Name != "ul0" || !carrier.Ethernet || carrier.OnMiss != "pass" || carrier.PeerMAC == "" {
		t.Errorf("carrier: %+v", carrier)
	}
	c.ok("mux", "member", "add", "m1", "--label", "1", "--create")
	c.ok("mux", "member", "add", "wl0", "--label", "2") // an existing (Ethernet) interface
	c.expect(exitFailed, []string{"mux", "member", "add", "m3", "--label", "1", "--create"}, "label 1 is member m1")
	c.expect(exitFailed, []string{"mux", "member", "add", "wl0", "--label", "3"}, "already member")
	c.expect(exitFailed, []string{"mux", "member", "add", "ul0", "--label", "4"}, "carrier")
	var members []maps.Member
	c.jsonOut(&members, "mux", "member", "list")
	if len(members) != 2 || members[0].Name != "m1" || !members[0].Created || members[0].L2 || members[1].Name != "wl0" || !members[1].L2 {
		t.Errorf("members: %+v", members)
	}
	if out := c.ns.Run(t, "ip", "-d", "link", "show", "m1"); !strings.Contains(out, "tun") || !strings.Contains(out, "persist on") || !strings.Contains(out, ",UP") {
		t.Errorf("m1 is not a persistent TUN that is up:\n%s", out)
	}
	var st struct {
		Dataplanes []struct {
			Links []struct{ Program, Interface, Hook string } `json:"links"`
		} `json:"dataplanes"`
	}
	c.jsonOut(&st, "status")
	hooks := map[string]string{}
	for _, l := range st.Dataplanes[0].Links {
		hooks[l.Program+" "+l.Interface] = l.Hook
	}
	if hooks["mux-ingress ul0"] != "tc-ingress" || hooks["mux-egress m1"] != "tc-egress" || hooks["mux-egress wl0"] != "tc-egress" {
		t.Errorf("links: %v", hooks)
	}
	// Moving the carrier moves its program.
	c.ok("mux", "carrier", "set", "x0")
	c.jsonOut(&st, "status")
	for _, l := range st.Dataplanes[0].Links {
		if l.Interface == "ul0" {
			t.Errorf("the old carrier keeps its program: %+v", l)
		}
	}
	c.ok("mux", "member", "del", "m1")
	if _, err := c.ns.Try("ip", "link", "show", "m1"); err == nil {
		t.Errorf("m1, created by tunmux, outlived its member")
	}
	c.ok("mux", "member", "del", "wl0")
	if _, err := c.ns.Try("ip", "link", "show", "wl0"); err != nil {
		t.Errorf("wl0, adopted, was deleted with its member")
	}
	c.expect(exitNotFound, []string{"mux", "member", "del", "wl0"}, "not found")
}

func TestMuxBadInputChangesNothing(t *testing.T) {
	c := newCLI(t)
	c.loadMux("ul0")
	before := c.snapshot()
	c.refuse([]badInput{
		{[]string{"mux", "member", "add", "m2", "--label", "0", "--create"}, "--label"},
		{[]string{"mux", "member", "add", "m2", "--label", "64", "--create"}, "--label"},
		{[]string{"mux", "member", "add", "m2", "--label", "x", "--create"}, "--label"},
		{[]string{"mux", "member", "add", "m2", "--create"}, "--label"},
		{[]string{"mux", "member", "add", "m2", "--label", "2", "--mtu", "1400"}, "--mtu"},
		{[]string{"mux", "member", "add", "m2", "--label", "2", "--create", "--mtu", "20"}, "--mtu"},
		{[]string{"mux", "member", "add", "nosuch0", "--label", "2"}, "NAME"},
		{[]string{"mux", "member", "add", "wl0", "--label", "2", "--create"}, "NAME"},
		{[]string{"mux", "member", "add", "a/b", "--label", "2"}, "NAME"},
		{[]string{"mux", "carrier", "set", "ul0", "--on-miss", "bounce"}, "--on-miss"},
		{[]string{"mux", "carrier", "set", "ul0", "--peer-mac", "01:00:5e:00:00:01"}, "--peer-mac"},
		{[]string{"mux", "carrier", "set", "nosuch0"}, "IFACE"},
		{[]string{"mux", "member", "del", "a/b"}, "NAME"},
		{[]string{"load", "mux", "--max-entries", "100"}, "--max-entries"},
	})
	c.unchanged(before, "bad input")
	if _, err := c.ns.Try("ip", "link", "show", "m2"); err == nil {
		t.Errorf("bad input left an m2 interface behind")
	}
}
