// Package apply is tunmux's one write path. It makes the pinned state equal
// a desired-state document: a file (mode [Sync]), or the one entry a
// command writes ([Create] for add, [Modify] for update, [Replace], [Remove]
// for del), by the same checks, conflicts, warnings, order of writes and
// batch map operations. [Export] is its inverse: the pinned state as a file
// that Apply takes back (after 'unload --all', or on the empty bpffs of a
// rebooted node). [Watch] runs Apply on every change of a file, every resync
// interval and after link events, repairing drift; [ApplyGuarded] refuses a
// prune that would remove more than a set share of the pinned entries.
//
// The file is YAML (JSON is YAML too). Each top-level section describes one
// dataplane (and load and attach, the dataplanes and their attachments); a
// section absent from the file leaves that dataplane alone:
//
//	load: {encap: {max-entries: 4096}}
//	attach:
//	  - {program: encap, iface: wl0}
//	encap:
//	  tunnels:
//	    - {inner-src: 10.0.0.1, inner-dst: 10.0.0.2, proto: vxlan, vni: 100,
//	       outer-src: 192.168.1.1, outer-dst: 192.168.1.2, dst-mac: "02:00:00:00:0a:02",
//	       underlay: ul0, overlay: wl0}
//	  devmap:
//	    - {in: wl1, out: ul0}
//	xconnect:
//	  pairs:
//	    - [veth1, veth2]
//	l2tp:
//	  sessions:
//	    - {session-id: 101, peer-session-id: 102, encap: udp, local: 172.16.0.1,
//	       peer: 172.16.0.2, eth-iface: eth1, tunnel-iface: tun0}
//	mux:
//	  carrier: c0
//	  members: [{name: m1, label: 1, create: true}]
//	route:
//	  devices: [{name: vxlan0, proto: vxlan, local: 192.168.60.1}]
//	  routes: [{prefix: 10.200.0.0/16, nexthops: ["192.168.60.2,vni=100"]}]
//
// Entry keys are the flag names of the matching commands and take the same
// values. docs/apply.md is the full reference.
//
// [Parse] checks the form and reports every problem with its line. [Apply]
// then checks every value and resolves every interface before it writes
// anything ([InvalidFileError], exit 2; a command's own errors name its
// flags), finds the conflicts with the machine (exit 1), loads the
// dataplanes the file needs, plans every section (add, change, remove;
// remove only with --prune, or what a command deletes) and, unless it is a
// dry run, writes them in dependency order under the lock, undoing the
// encap writes of an apply that fails halfway.
package apply
