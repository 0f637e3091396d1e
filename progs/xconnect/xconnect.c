// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
//go:build ignore
/*
 * xconnect: interface pairs cross-connected by XDP devmap redirect (the
 * xdp-xconnect model). Frames arriving on one end of a pair leave on the
 * other, untouched. The redirect map is a devmap hash keyed by the ingress
 * ifindex, so any ifindex fits; frames from an interface in no pair pass to
 * the stack, counted.
 */
#include <linux/types.h>

enum stat {
	S_XCONNECT__REDIRECT,     /* redirected to the other end of the pair */
	S_XCONNECT__PASS_NO_PAIR, /* the ingress interface is in no pair */
	STAT_MAX,
};

#include "tunmux.h"

/* ingress ifindex -> the other end of its pair. */
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__type(key, __u32);
	__type(value, struct bpf_devmap_val);
	__uint(max_entries, 1024); /* tunmux load xconnect --max-entries: pair ends */
} ports SEC(".maps");

/* Frames and bytes that arrived on each pair end (one direction each). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__type(key, __u32);
	__type(value, struct counter);
	__uint(max_entries, 1024);
} port_stats SEC(".maps");

/* What userspace knows about each pair end (never read by the program). */
struct port_info {
	__u64 netns;       /* inode of the namespace of both ends */
	char name[16];     /* this end */
	char peer_name[16];
	__u32 peer;        /* ifindex of the other end */
	__u8 readiness;    /* how the other end accepts redirected frames */
	__u8 pad[3];
	char ready_peer[64]; /* "netns/ifname" of the other end's veth peer */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct port_info);
	__uint(max_entries, 1024);
} port_names SEC(".maps");

XDP_PROGRAM(xconnect, ctx)
{
	__u32 in = ctx->ingress_ifindex;
	__u64 len = ctx->data_end - ctx->data;

	if (bpf_redirect_map(&ports, in, XDP_PASS) != XDP_REDIRECT) {
		count(S_XCONNECT__PASS_NO_PAIR, len);
		return XDP_PASS;
	}
	struct counter *c = bpf_map_lookup_elem(&port_stats, &in);

	if (c) {
		c->packets++;
		c->bytes += len;
	}
	count(S_XCONNECT__REDIRECT, len);
	return XDP_REDIRECT;
}
