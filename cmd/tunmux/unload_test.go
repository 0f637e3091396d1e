package main

import (
	"os"
	"strings"
	"testing"

	"github.com/tunmux/tunmux/internal/testnet"
)

type unloadAllJSON struct {
	Root       string `json:"root"`
	Dataplanes []struct {
		Dataplane string   `json:"dataplane"`
		Detached  []string `json:"detached"`
		Devices   []struct {
			Name, Kind, Netns, State string
		} `json:"devices"`
	} `json:"dataplanes"`
	Left        []string `json:"left"`
	RootRemoved bool     `json:"root_removed"`
}

func TestUnloadAllRemovesEveryDataplaneAndTheDevicesTunmuxCreated(t *testing.T) {
	c := newCLI(t)
	t.Cleanup(func() { c.run("unload", "--all") })
	other := testnet.NewNetns(t, "cli2")
	c.ns.Run(t, "ip", "addr", "add", "192.168.61.1/24", "dev", "ul0")
	for _, dp := range []string{"encap", "mux", "route"} {
		c.ok("load", dp)
	}
	c.ok("attach", "encap", "wl0")
	// A member created in another namespace than the one unload runs in
	// (before the carrier, whose offloads it would take from there).
	testnet.MustTunmux(t, bin, "--bpffs", c.root, "--netns", other.Name, "mux", "member", "add", "m2", "--label", "2", "--create", "--mtu", "1400")
	c.ok("mux", "carrier", "set", "x0")
	c.ok("mux", "member", "add", "m1", "--label", "1", "--create")
	c.ok("route", "dev", "create", "vxlan0", "--proto", "vxlan", "--local", "192.168.61.1")
	c.ok("route", "dev", "create", "rt0", "--routes")
	c.ok("attach", "route", "rt0")
	c.ok("attach", "route", "ul0") // an underlay: not a device tunmux made

	c.expect(exitInvalid, []string{"unload", "--all", "encap"}, "--all", "DATAPLANE")
	if _, err := os.Stat(c.root); err != nil {
		t.Fatalf("a refused unload --all changed the root: %v", err)
	}

	var res unloadAllJSON
	c.jsonOut(&res, "unload", "--all")
	if !res.RootRemoved || len(res.Left) != 0 || len(res.Dataplanes) != 3 {
		t.Errorf("unload --all: %+v", res)
	}
	if _, err := os.Stat(c.root); !os.IsNotExist(err) {
		t.Errorf("unload --all left the root folder %s: %v", c.root, err)
	}
	deleted := map[string]string{}
	for _, d := range res.Dataplanes {
		for _, dev := range d.Devices {
			if dev.State != "deleted" {
				t.Errorf("%s device %+v: want deleted", d.Dataplane, dev)
			}
			deleted[dev.Name] = d.Dataplane + " " + dev.Kind
		}
	}
	want := map[string]string{"m1": "mux member", "m2": "mux member", "vxlan0": "route tunnel", "rt0": "route routes"}
	if len(deleted) != len(want) {
		t.Errorf("devices deleted: %v, want %v", deleted, want)
	}
	for name, kind := range want {
		if deleted[name] != kind {
			t.Errorf("device %s: %q, want %q deleted", name, deleted[name], kind)
		}
	}
	for _, name := range []string{"m1", "vxlan0", "rt0"} {
		if _, err := c.ns.Try("ip", "link", "show", name); err == nil {
			t.Errorf("%s outlived unload --all", name)
		}
	}
	if _, err := other.Try("ip", "link", "show", "m2"); err == nil {
		t.Errorf("m2, in another namespace, outlived unload --all")
	}
	for _, name := range []string{"ul0", "x0", "wl0"} {
		if _, err := c.ns.Try("ip", "link", "show", name); err != nil {
			t.Errorf("%s, not created by tunmux, was deleted", name)
		}
	}
	c.wantXDP("wl0", false, "after unload --all")
	// Again: nothing to do.
	c.okSays("nothing loaded", "unload", "--all")
}

func TestUnloadOfOneDataplaneKeepsItsDevices(t *testing.T) {
	c := newCLI(t)
	c.loadMux("x0")
	r := c.ok("unload", "mux")
	if !strings.Contains(r.Stdout, "kept") || !strings.Contains(r.Stdout, "m1 (member)") {
		t.Errorf("unload mux does not list the member it keeps:\n%s", r)
	}
	if _, err := c.ns.Try("ip", "link", "show", "m1"); err != nil {
		t.Errorf("unload mux deleted m1: %v", err)
	}
}
