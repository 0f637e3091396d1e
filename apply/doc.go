// Package apply makes tunmux's pinned state equal a desired-state file, in
// the manner of a reconcile loop run once (or, with Watch, on every change
// of the file, every resync interval and after link events, repairing
// drift). [ApplyGuarded] refuses a prune that would remove more than a set
// share of the pinned entries.
//
// The file is YAML (JSON is YAML too). Each top-level section describes one
// dataplane; a section absent from the file leaves that dataplane alone:
//
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
//
// Entry keys are the flag names of the matching commands and take the same
// values. docs/apply.md is the full reference.
//
// [Parse] checks the form and reports every problem with its line. [Apply]
// then checks every value and resolves every interface before it writes
// anything ([InvalidFileError], exit 2), loads the dataplanes the file needs,
// computes the changes (add, change, remove; remove only with --prune) and,
// unless it is a dry run, writes them in dependency order with batch map
// operations under the lock.
package apply
