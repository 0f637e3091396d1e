// Package dataplane loads tunmux's dataplanes into the kernel and keeps
// their programs, maps and links pinned under a bpffs root (see package maps
// for the layout).
//
// A [Dataplane] describes one family of BPF programs and maps (today:
// encap). [Load] pins it, reusing compatible pins and refusing incompatible
// ones without changing anything; [Unload] detaches and unpins everything.
// [Open] gives a [Loaded] handle for commands that read or change its
// state: [Loaded.Attach] and [Loaded.Detach] manage pinned bpf_links, one
// per interface and hook, [Loaded.Stats] sums the outcome counters, and
// [ReadStatus] describes everything pinned under a root.
//
// The encap dataplane's entries are managed by [Encap]: tunnels and their
// reference-counted redirect slots, including making veth redirect targets
// ready to receive XDP-redirected frames.
//
// Functions that change pinned state take the root's *maps.Lock. Functions
// that resolve interfaces take a network namespace name ("" for the
// caller's) and do that work on a thread inside it.
package dataplane
