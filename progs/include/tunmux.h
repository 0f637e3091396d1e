/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * tunmux.h: what every tunmux dataplane shares.
 *
 * - the per-CPU outcome counters (map "stats"), indexed by the dataplane's
 *   `enum stat`; userspace reads the counter names from that enum's BTF, so a
 *   name written here is the name `tunmux stats` prints. Enumerators are named
 *   S_<PROGRAM>__<OUTCOME>;
 * - the state maps that only userspace reads: "meta" (schema version and load
 *   parameters) and "attachments" (where each program is attached, with the
 *   names needed for display);
 * - the license, the verdict helper every program returns through, and the
 *   TC constants newer than the UAPI headers this builds against;
 * - small helpers for parsing and checksums.
 *
 * Include it after declaring the dataplane's `enum stat`, whose last
 * enumerator is STAT_MAX (the number of counters).
 */
#ifndef TUNMUX_H
#define TUNMUX_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <linux/in.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "Dual MIT/GPL";

/* Constants newer than this system's UAPI headers (kernel 6.3+). */
#ifndef TCX_NEXT
#define TCX_NEXT -1
#endif
#define ADJ_ROOM_DECAP_L3_IPV4 (1ULL << 7)
#define ADJ_ROOM_DECAP_L3_IPV6 (1ULL << 8)

/* One outcome counter. */
struct counter {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, enum stat); /* names the counters in BTF */
	__type(value, struct counter);
	__uint(max_entries, STAT_MAX);
} stats SEC(".maps");

/* Schema version and load parameters of one loaded dataplane (one entry). */
struct dataplane_meta {
	__u32 schema;      /* layout version of this dataplane's maps */
	__u32 max_entries; /* capacity of the main table, as loaded */
	__u64 loaded_at;   /* unix seconds of the first load */
	char version[32];  /* tunmux version that first loaded it */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct dataplane_meta);
	__uint(max_entries, 1);
} meta SEC(".maps");

/* Where a program is attached: netns inode, ifindex and hook. */
struct attach_key {
	__u64 netns;
	__u32 ifindex;
	__u32 hook; /* 1 XDP, 2 TC ingress, 3 TC egress */
};

/* What is attached there, with the names kept for display. */
struct attachment {
	char prog[16];       /* program name */
	char ifname[16];     /* interface name when attached */
	char netns_name[48]; /* --netns given, "" for the caller's namespace */
	__u32 mode;          /* XDP: 1 native, 2 generic */
	__u32 link_id;       /* id of the bpf_link when attached */
	__u64 attached_at;   /* unix seconds */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct attach_key);
	__type(value, struct attachment);
	__uint(max_entries, 1024);
} attachments SEC(".maps");

#include "observe.h"

static __always_inline void count(enum stat id, __u64 bytes)
{
	struct counter *c = bpf_map_lookup_elem(&stats, &id);

	observe_outcome(id);
	if (c) {
		c->packets++;
		c->bytes += bytes;
	}
}

/* Counts outcome id for a packet of bytes and returns the program's action. */
static __always_inline int verdict(enum stat id, __u64 bytes, int action)
{
	count(id, bytes);
	return action;
}

/*
 * copy_words copies n bytes (a constant) with the widest loads and stores.
 * clang copies a byte at a time between pointers it cannot prove aligned
 * (a frame's bytes, a map value's byte arrays): a tunnel's outer headers
 * took ~100 single-byte stores. The verifier accepts misaligned packet and
 * map-value accesses where the CPU does them (x86-64, arm64: no strict
 * alignment), so both ends are declared 8-byte aligned. Never for the
 * stack unless it is aligned there: the verifier insists on it.
 */
#define copy_words(dst, src, n) \
	__builtin_memcpy(__builtin_assume_aligned((dst), 8), __builtin_assume_aligned((src), 8), (n))

/* copy_u32s is copy_words for ends known to be 4-byte aligned (a field of
 * a key on the stack), with 4-byte loads and stores. */
#define copy_u32s(dst, src, n) \
	__builtin_memcpy(__builtin_assume_aligned((dst), 4), __builtin_assume_aligned((src), 4), (n))

/* Folds a 32-bit partial sum into a 16-bit one's complement checksum. */
static __always_inline __u16 csum_fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/* Checksum of a 20-byte IPv4 header (no options) with its check field zero. */
static __always_inline __u16 ipv4_csum(const struct iphdr *iph)
{
	const __u16 *w = (const __u16 *)iph;
	__u32 sum = 0;

#pragma unroll
	for (int i = 0; i < (int)sizeof(*iph) / 2; i++)
		sum += w[i];
	return csum_fold(sum);
}

/* A mixing function for flow hashes (the murmur3 finaliser). */
static __always_inline __u32 mix32(__u32 h)
{
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return h;
}

/* Maps a hash onto the UDP source port range the kernel's vxlan uses. */
static __always_inline __u16 flow_src_port(__u32 hash)
{
	const __u32 lo = 32768, hi = 61000;

	return (__u16)((((__u64)hash * (hi - lo)) >> 32) + lo);
}

#endif /* TUNMUX_H */
