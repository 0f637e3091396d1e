package main

import (
	"strings"
	"testing"
)

type routeJSON struct {
	Prefix   string `json:"prefix"`
	Nexthops []struct {
		Remote  string  `json:"remote"`
		VNI     *uint32 `json:"vni"`
		Weight  int     `json:"weight"`
		Proto   string  `json:"proto"`
		Dev     string  `json:"dev"`
		MAC     *string `json:"mac"`
		Healthy bool    `json:"healthy"`
	} `json:"nexthops"`
}

func TestRouteCommands(t *testing.T) {
	c := newCLI(t)
	t.Cleanup(func() { c.run("unload", "route") })
	c.ns.Run(t, "ip", "addr", "add", "192.168.60.1/24", "dev", "ul0")
	c.ok("load", "route")
	c.expect(exitInvalid, []string{"route", "add", "10.200.0.0/16", "--nexthop", "192.168.60.2,vni=100"}, "no vxlan device is registered", "route dev create")
	c.expect(exitInvalid, []string{"route", "dev", "create", "rt0", "--routes"}, "--mtu")

	var dev struct {
		Name, Kind string
		Proto, MAC *string
		MTU        int
		Local      *string
	}
	c.jsonOut(&dev, "route", "dev", "create", "vxlan0", "--proto", "vxlan", "--local", "192.168.60.1")
	if dev.Name != "vxlan0" || *dev.MAC != "02:c0:a8:3c:01:ff" || dev.MTU != 1500-70 || *dev.Local != "192.168.60.1" {
		t.Errorf("vxlan0: %+v", dev)
	}
	if out := c.ns.Run(t, "ip", "-d", "link", "show", "vxlan0"); !strings.Contains(out, "external") || !strings.Contains(out, "dstport 4789") {
		t.Errorf("vxlan0 is not an external vxlan device on port 4789:\n%s", out)
	}
	c.expect(exitFailed, []string{"route", "dev", "create", "vxlan1", "--proto", "vxlan"}, "vxlan0 is already")
	c.expect(exitFailed, []string{"route", "dev", "create", "g0", "--proto", "geneve"}, "no geneve device type")
	c.jsonOut(&dev, "route", "dev", "create", "rt0", "--routes")
	if dev.Kind != "routes" || dev.MTU != 1430 {
		t.Errorf("rt0: %+v", dev)
	}
	c.ok("attach", "route", "rt0")
	c.ok("attach", "route", "ul0") // an underlay: the Ethernet variant

	c.ok("route", "add", "10.200.0.0/16", "--nexthop", "192.168.60.2,vni=100", "--nexthop", "192.168.60.3,vni=100,weight=3")
	c.ok("route", "add", "10.200.7.0/24", "--nexthop", "fd60::2,vni=7,mac=02:00:00:00:07:07")
	c.ok("route", "add", "fd00:200::/48", "--nexthop", "192.168.60.2,vni=200")
	c.ok("route", "add", "10.250.0.0/16", "--nexthop", "192.168.60.9,proto=none,dev=ul0")
	c.expect(exitFailed, []string{"route", "add", "10.200.0.0/16", "--nexthop", "192.168.60.4,vni=1"}, "already exists")
	c.ok("route", "add", "10.200.0.0/16", "--nexthop", "192.168.60.2,vni=100", "--nexthop", "192.168.60.3,vni=100,weight=3", "--replace")
	c.expect(exitNotFound, []string{"route", "update", "10.99.0.0/16", "--nexthop", "192.168.60.4,vni=1"}, "not found")

	var r routeJSON
	c.jsonOut(&r, "route", "get", "10.200.7.9") // the longest match
	if r.Prefix != "10.200.7.0/24" || len(r.Nexthops) != 1 || *r.Nexthops[0].MAC != "02:00:00:00:07:07" || *r.Nexthops[0].VNI != 7 {
		t.Errorf("get 10.200.7.9: %+v", r)
	}
	c.jsonOut(&r, "route", "get", "10.200.8.9")
	if r.Prefix != "10.200.0.0/16" || len(r.Nexthops) != 2 || r.Nexthops[1].Weight != 3 || *r.Nexthops[0].MAC != "02:c0:a8:3c:02:ff" || r.Nexthops[0].Dev != "vxlan0" {
		t.Errorf("get 10.200.8.9: %+v", r)
	}
	c.jsonOut(&r, "route", "get", "10.200.0.0/16")
	if r.Prefix != "10.200.0.0/16" {
		t.Errorf("get 10.200.0.0/16: %+v", r)
	}
	c.expect(exitNotFound, []string{"route", "get", "10.200.0.0/17"}, "not found")
	c.expect(exitNotFound, []string{"route", "get", "fd01::1"}, "no route")
	c.jsonOut(&r, "route", "get", "10.250.1.1")
	if r.Nexthops[0].Proto != "none" || r.Nexthops[0].VNI != nil || r.Nexthops[0].Dev != "ul0" {
		t.Errorf("proto none: %+v", r)
	}

	c.ok("peer", "set", "192.168.60.3", "--health", "down", "--probe-port", "9997")
	var rs []routeJSON
	c.jsonOut(&rs, "route", "list")
	if len(rs) != 4 || rs[0].Prefix != "10.200.0.0/16" || rs[0].Nexthops[1].Healthy || !rs[0].Nexthops[0].Healthy || rs[3].Prefix != "fd00:200::/48" {
		t.Errorf("route list: %+v", rs)
	}
	var peers []struct {
		Remote, Health string
		ProbePort      *int `json:"probe_port"`
		Set            bool
		Routes         int
	}
	c.jsonOut(&peers, "peer", "list")
	got := map[string]string{}
	for _, p := range peers {
		got[p.Remote] = p.Health
		if p.Remote == "192.168.60.3" && (p.ProbePort == nil || *p.ProbePort != 9997 || !p.Set || p.Routes != 1) {
			t.Errorf("peer 192.168.60.3: %+v", p)
		}
		if p.Remote == "192.168.60.2" && (p.Set || p.Routes != 2) {
			t.Errorf("peer 192.168.60.2: %+v", p)
		}
	}
	if got["192.168.60.3"] != "down" || got["192.168.60.2"] != "up" || got["fd60::2"] != "up" || len(got) != 4 {
		t.Errorf("peers: %v", got)
	}
	c.ok("peer", "set", "192.168.60.3", "--health", "up") // keeps the probe port
	var peer struct {
		Health    string
		ProbePort *int `json:"probe_port"`
	}
	c.jsonOut(&peer, "peer", "get", "192.168.60.3")
	if peer.Health != "up" || peer.ProbePort == nil || *peer.ProbePort != 9997 {
		t.Errorf("peer get: %+v", peer)
	}
	c.expect(exitNotFound, []string{"peer", "get", "192.168.60.2"}, "counts as up")
	c.ok("peer", "del", "192.168.60.3")
	c.expect(exitNotFound, []string{"peer", "del", "192.168.60.3"}, "not found")

	// A tunnel device that routes use cannot go.
	c.expect(exitFailed, []string{"route", "dev", "del", "vxlan0"}, "carries 3 route(s)")
	for _, p := range []string{"10.200.0.0/16", "10.200.7.0/24", "fd00:200::/48", "10.250.0.0/16"} {
		c.ok("route", "del", p)
	}
	c.expect(exitNotFound, []string{"route", "del", "10.200.0.0/16"}, "not found")
	c.ok("route", "dev", "del", "vxlan0")
	c.ok("route", "dev", "del", "rt0")
	for _, d := range []string{"vxlan0", "rt0"} {
		if _, err := c.ns.Try("ip", "link", "show", d); err == nil {
			t.Errorf("%s outlived route dev del", d)
		}
	}
	c.expect(exitInvalid, []string{"route", "dev", "del", "ul0"}, "NAME")
	var devs []struct{ Name, Kind string }
	c.jsonOut(&devs, "route", "dev", "list")
	if len(devs) != 1 || devs[0].Name != "ul0" || devs[0].Kind != "underlay" {
		t.Errorf("dev list: %+v", devs)
	}
}

func TestRouteBadInputChangesNothing(t *testing.T) {
	c := newCLI(t)
	t.Cleanup(func() { c.run("unload", "route") })
	c.ok("load", "route")
	c.ok("route", "dev", "create", "vxlan0", "--proto", "vxlan")
	c.ok("route", "add", "10.200.0.0/16", "--nexthop", "192.168.60.2,vni=100")
	c.ok("peer", "set", "192.168.60.2", "--health", "down")
	before := c.snapshot()
	nine := []string{"route", "add", "10.9.0.0/16"}
	for i := 1; i <= 9; i++ {
		nine = append(nine, "--nexthop", "192.168.60."+string(rune('0'+i))+",vni=1")
	}
	c.refuse([]badInput{
		{nine, "--nexthop"},
		{[]string{"route", "add", "10.9.0.0/16"}, "--nexthop"},
		{[]string{"route", "add", "10.9.0.1/16", "--nexthop", "192.168.60.2,vni=1"}, "PREFIX"},
		{[]string{"route", "add", "10.9.0.0/33", "--nexthop", "192.168.60.2,vni=1"}, "PREFIX"},
		{[]string{"route", "add", "::ffff:10.9.0.0/112", "--nexthop", "192.168.60.2,vni=1"}, "PREFIX"},
		{[]string{"route", "add", "10.9.0.0/16", "--nexthop", "192.168.60.2"}, "vni="},
		{[]string{"route", "add", "10.9.0.0/16", "--nexthop", "192.168.60.2,vni=16777216"}, "vni"},
		{[]string{"route", "add", "10.9.0.0/16", "--nexthop", "192.168.60.2,vni=1,weight=0"}, "weight"},
		{[]string{"route", "add", "10.9.0.0/16", "--nexthop", "192.168.60.2,vni=1,weight=65536"}, "weight"},
		{[]string{"route", "add", "10.9.0.0/16", "--nexthop", "192.168.60.2,vni=1,proto=gre"}, "proto"},
		{[]string{"route", "add", "10.9.0.0/16", "--nexthop", "192.168.60.2,vni=1,colour=red"}, "colour"},
		{[]string{"route", "add", "10.9.0.0/16", "--nexthop", "192.168.60.2,vni=1,mac=01:00:5e:00:00:01"}, "mac"},
		{[]string{"route", "add", "10.9.0.0/16", "--nexthop", "192.168.60.2,vni=1,dev=nosuch0"}, "dev"},
		{[]string{"route", "add", "10.9.0.0/16", "--nexthop", "192.168.60.2,vni=1,dev=ul0"}, "flow-based"},
		{[]string{"route", "add", "10.9.0.0/16", "--nexthop", "192.168.60.2,proto=none"}, "dev="},
		{[]string{"route", "add", "10.9.0.0/16", "--nexthop", "192.168.60.2,proto=none,dev=ul0,vni=3"}, "vni="},
		{[]string{"route", "add", "10.9.0.0/16", "--nexthop", "224.0.0.1,vni=1"}, "unicast"},
		{[]string{"route", "add", "10.9.0.0/16", "--nexthop", "nothing,vni=1"}, "--nexthop"},
		{[]string{"route", "add", "10.9.0.0/16", "--nexthop", "192.168.60.2,vni=1", "--nexthop", "192.168.60.2,vni=1"}, "repeats"},
		{[]string{"route", "update", "10.200.0.0/16", "--nexthop", "192.168.60.2,vni=1,weight=x"}, "weight"},
		{[]string{"route", "get", "banana"}, "PREFIX|ADDRESS"},
		{[]string{"route", "get", "10.200.0.0/16", "--from", "10.1.1.1"}, "--from"},
		{[]string{"route", "get", "10.200.0.1", "--from", "fd00::1"}, "--from"},
		{[]string{"route", "get", "10.200.0.1", "--from", "10.1.1.1", "--ip-proto", "bogus"}, "--ip-proto"},
		{[]string{"route", "get", "10.200.0.1", "--from", "10.1.1.1", "--sport", "70000"}, "--sport"},
		{[]string{"route", "del", "10.200.0.0"}, "PREFIX"},
		{[]string{"peer", "set", "192.168.60.2", "--health", "sideways"}, "--health"},
		{[]string{"peer", "set", "192.168.60.2"}, "--health"},
		{[]string{"peer", "set", "192.168.60.2", "--health", "up", "--probe-port", "70000"}, "--probe-port"},
		{[]string{"peer", "set", "not-an-ip", "--health", "up"}, "REMOTE"},
		{[]string{"route", "dev", "create", "vx1", "--proto", "gre"}, "--proto"},
		{[]string{"route", "dev", "create", "vx1"}, "--proto"},
		{[]string{"route", "dev", "create", "vx1", "--proto", "vxlan", "--routes"}, "--proto"},
		{[]string{"route", "dev", "create", "vx1", "--proto", "vxlan", "--port", "0"}, "--port"},
		{[]string{"route", "dev", "create", "vx1", "--proto", "vxlan", "--local", "nowhere"}, "--local"},
		{[]string{"route", "dev", "create", "vx1", "--proto", "vxlan", "--mtu", "20"}, "--mtu"},
		{[]string{"route", "dev", "create", "rt1", "--routes", "--local", "192.168.60.1"}, "--routes"},
		{[]string{"route", "dev", "create", "ul0", "--routes"}, "NAME"},
		{[]string{"route", "dev", "del", "wl0"}, "NAME"},
	})
	c.unchanged(before, "bad input")
	for _, d := range []string{"vx1", "rt1"} {
		if _, err := c.ns.Try("ip", "link", "show", d); err == nil {
			t.Errorf("bad input left %s behind", d)
		}
	}
}

const routeYAML = `route:
  routes:
    - prefix: 10.200.0.0/16
      nexthops:
        - 192.168.60.2,vni=100
        - {remote: 192.168.60.3, vni: 100, weight: 3}
    - prefix: fd00:200::/48
      nexthops: [fd60::2]
  peers:
    - {remote: 192.168.60.3, health: down, probe-port: 9997}
`

func TestApplyRouteSection(t *testing.T) {
	c := newCLI(t)
	t.Cleanup(func() { c.run("unload", "route") })
	c.ok("load", "route")
	c.ok("route", "dev", "create", "vxlan0", "--proto", "vxlan")

	// Every problem at its line, nothing written.
	bad := writeFile(t, "bad.yaml", routeYAML)
	r := c.expect(exitInvalid, []string{"apply", "-f", bad}, "bad.yaml:8: route.routes[1]", "vni= is required")
	if strings.Contains(r.Stderr, ":4:") {
		t.Errorf("a good route reported:\n%s", r)
	}
	var rs []routeJSON
	c.jsonOut(&rs, "route", "list")
	if len(rs) != 0 {
		t.Errorf("a bad file wrote routes: %+v", rs)
	}

	good := writeFile(t, "good.yaml", strings.Replace(routeYAML, "[fd60::2]", "[\"fd60::2,vni=7\"]", 1))
	var res applyResult
	c.jsonOut(&res, "apply", "-f", good)
	if res.Summary["add"] != 3 {
		t.Errorf("first apply: %+v", res)
	}
	c.jsonOut(&rs, "route", "list")
	if len(rs) != 2 || len(rs[0].Nexthops) != 2 || rs[0].Nexthops[1].Weight != 3 || rs[0].Nexthops[1].Healthy || *rs[1].Nexthops[0].VNI != 7 {
		t.Errorf("routes after apply: %+v", rs)
	}
	c.jsonOut(&res, "apply", "-f", good)
	if len(res.Changes) != 0 {
		t.Errorf("second apply changed %+v", res.Changes)
	}
	// A route added by hand stays without --prune and goes with it.
	c.ok("route", "add", "10.9.0.0/16", "--nexthop", "192.168.60.9,vni=1")
	c.ok("peer", "set", "192.168.60.9", "--health", "down")
	changed := writeFile(t, "changed.yaml", strings.Replace(strings.Replace(routeYAML, "[fd60::2]", "[\"fd60::2,vni=8\"]", 1), "health: down", "health: up", 1))
	c.jsonOut(&res, "apply", "-f", changed)
	if res.Summary["change"] != 2 || res.Summary["remove"] != 0 {
		t.Errorf("changed apply: %+v", res)
	}
	c.jsonOut(&res, "apply", "-f", changed, "--prune")
	if res.Summary["remove"] != 2 {
		t.Errorf("pruning apply: %+v", res)
	}
	c.expect(exitNotFound, []string{"route", "get", "10.9.0.0/16"}, "not found")
	c.expect(exitNotFound, []string{"peer", "get", "192.168.60.9"}, "counts as up")
}
