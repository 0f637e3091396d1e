// Package maps is tunmux's state side: everything it keeps lives in BPF maps
// pinned on a bpffs, and this package owns how.
//
// The pin layout under a root (default /sys/fs/bpf/tunmux, flag --bpffs, env
// TUNMUX_BPFFS) is one folder per loaded dataplane:
//
//	<root>/<dataplane>/map_<name>                   pinned maps (the state)
//	<root>/<dataplane>/prog_<name>                  pinned programs
//	<root>/<dataplane>/link_<prog>_<netns>_<ifindex> pinned bpf_links, one per attachment
//
// docs/pin-layout.md is the full contract. This package provides:
//
//   - [Root]: finding and mounting the bpffs, the dataplane folders;
//   - [Lock]: the exclusive flock every mutating command holds. Functions that
//     write take a *Lock, so holding it is visible in their signature;
//   - [OpenMaps]: opening pinned maps against a spec, with compatibility
//     checks that name every difference ([ErrIncompatible]);
//   - the records every dataplane keeps: [Meta] (schema version, load
//     parameters) and [Attachment] (where programs are attached);
//   - typed entries with parsing and validation, and their CRUD: tunnels and
//     redirect slots of the encap dataplane ([Tunnel], [Slot], [EncapState]);
//   - the sentinel errors callers test, and [InvalidError] for bad input.
package maps
