// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
//go:build ignore
/*
 * limits: the least an XDP encap that looks a tunnel up per frame can do,
 * one step at a time, for the benchmarks (never loaded by tunmux). Each
 * program ends as the floor does (a devmap redirect and one outcome
 * counter), so that its cost over the floor is the cost of its steps:
 *   - lookup: one hash lookup keyed by the frame's IPv4 (source,
 *     destination), 8 bytes, whose value names the redirect slot;
 *   - push: 50 bytes of room in front of the frame and a VXLAN-over-IPv4
 *     header template copied into it, 8 bytes a store, with no lookup;
 *   - encap: both, with the template taken from the looked-up value and its
 *     two lengths and IPv4 checksum patched: a VXLAN encap stripped of every
 *     feature (no ARP, IPv6, options, MTU rule, per-flow source port or
 *     per-tunnel counters).
 */
#include <linux/types.h>

enum stat {
	S_LOOKUP__OUT, /* found, redirected */
	S_PUSH__OUT,   /* pushed the template, redirected */
	S_ENCAP__OUT,  /* found, pushed, redirected */
	S_LIMITS__PASS, /* anything else */
	STAT_MAX,
};

#include "tunmux.h"

#define HDR_LEN 50 /* Ethernet, IPv4, UDP, VXLAN */

/* A tunnel: its redirect slot and its outer headers, prebuilt by whoever
 * writes it, with the IPv4 total length and the UDP length 0 and the IPv4
 * checksum over the rest. */
struct tmpl {
	__u32 slot;
	__u32 pad;
	__u8 hdr[56];
} __attribute__((aligned(8)));

struct tmpl_key {
	__u32 src;
	__u32 dst;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct tmpl_key);
	__type(value, struct tmpl);
	__uint(max_entries, 1024);
} tunnels4 SEC(".maps");

/* push's template: entry 0. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct tmpl);
	__uint(max_entries, 1);
} fixed SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__type(key, __u32);
	__type(value, struct bpf_devmap_val);
	__uint(max_entries, 64);
} devmap SEC(".maps");

static __always_inline struct tmpl *find(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph = (void *)(eth + 1);
	struct tmpl_key k;

	if ((void *)(iph + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return NULL;
	k.src = iph->saddr;
	k.dst = iph->daddr;
	return bpf_map_lookup_elem(&tunnels4, &k);
}

/* push_tmpl puts t's headers in front of a frame of len bytes. */
static __always_inline int push_tmpl(struct xdp_md *ctx, const struct tmpl *t, __u32 len)
{
	void *data, *end;

	if (bpf_xdp_adjust_head(ctx, -HDR_LEN))
		return -1;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (data + HDR_LEN > end)
		return -1;
	copy_words(data, t->hdr, 48);
	copy_u32s(data + 48, t->hdr + 48, 2);

	struct iphdr *iph = data + ETH_HLEN;
	struct udphdr *udp = (void *)(iph + 1);
	__u16 tot = len + HDR_LEN - ETH_HLEN;
	__u32 sum = (__u16)~iph->check + bpf_htons(tot);

	iph->tot_len = bpf_htons(tot);
	iph->check = csum_fold(sum);
	udp->len = bpf_htons(tot - sizeof(struct iphdr));
	return 0;
}

/* finish redirects through t's slot, after pushing its headers if push,
 * and counts done: each program's common end. */
static __always_inline int finish(struct xdp_md *ctx, const struct tmpl *t, int push, enum stat done)
{
	__u64 len = ctx->data_end - ctx->data;

	if (!t || bpf_redirect_map(&devmap, t->slot, XDP_PASS) != XDP_REDIRECT)
		return verdict(S_LIMITS__PASS, len, XDP_PASS);
	if (push && push_tmpl(ctx, t, len))
		return verdict(S_LIMITS__PASS, len, XDP_DROP);
	return verdict(done, push ? len + HDR_LEN : len, XDP_REDIRECT);
}

SEC("xdp")
int lookup(struct xdp_md *ctx)
{
	return finish(ctx, find(ctx), 0, S_LOOKUP__OUT);
}

SEC("xdp")
int push(struct xdp_md *ctx)
{
	__u32 zero = 0;

	return finish(ctx, bpf_map_lookup_elem(&fixed, &zero), 1, S_PUSH__OUT);
}

SEC("xdp")
int encap(struct xdp_md *ctx)
{
	return finish(ctx, find(ctx), 1, S_ENCAP__OUT);
}
