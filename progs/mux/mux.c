// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
//go:build ignore
/*
 * mux: up to 63 L3 interfaces (members) multiplexed through one (the
 * carrier) by a label in the DSCP field, with zero bytes of overhead (the
 * L3MP model).
 *
 *   mux_egress   TC egress of every member: the member's label (1..63) is
 *                written into the DSCP bits (IPv4: the checksum is updated;
 *                ECN is kept, IPv4 and IPv6) and the packet is redirected out
 *                of the carrier (an Ethernet header is pushed when the carrier
 *                is Ethernet and the member is not);
 *   mux_ingress  TC ingress of the carrier: DSCP 0 is the carrier's own
 *                traffic and passes; another label selects its member, the
 *                DSCP bits are set back to 0 (the sender's DSCP is not
 *                preserved: the price of zero overhead) and the packet is
 *                delivered into the member's ingress. A label no member owns
 *                is dropped or passed, as --on-miss says, and counted.
 */
#include <linux/types.h>

enum stat {
	S_MUX_EGRESS__LABELLED,          /* labelled, redirected to the carrier */
	S_MUX_EGRESS__PASS_NOT_MEMBER,   /* the device is no member */
	S_MUX_EGRESS__PASS_NOT_IP,       /* neither IPv4 nor IPv6 (an Ethernet member's ARP) */
	S_MUX_EGRESS__DROP_NO_CARRIER,   /* no carrier is set */
	S_MUX_EGRESS__DROP_MALFORMED,    /* truncated IP header (shorter than its fixed part) */
	S_MUX_EGRESS__DROP_ERROR,        /* the kernel refused a header change */
	S_MUX_INGRESS__DELIVERED,        /* delivered into its member's ingress */
	S_MUX_INGRESS__PASS_OWN,         /* DSCP 0: the carrier's own traffic */
	S_MUX_INGRESS__PASS_NOT_IP,      /* neither IPv4 nor IPv6 */
	S_MUX_INGRESS__PASS_MALFORMED,   /* truncated IP header (shorter than its fixed part), bad version */
	S_MUX_INGRESS__DROP_NO_MEMBER,   /* a label no member owns, --on-miss drop */
	S_MUX_INGRESS__PASS_NO_MEMBER,   /* a label no member owns, --on-miss pass */
	S_MUX_INGRESS__DROP_ERROR,       /* the kernel refused a header change */
	STAT_MAX,
};

#include "tunmux.h"

#define MAX_LABEL 63
#define PACKET_HOST 0

enum on_miss { ON_MISS_DROP = 0, ON_MISS_PASS = 1 };

/* The carrier (one entry). */
struct carrier {
	__u32 ifindex;     /* 0: no carrier set */
	__u8 l2;           /* 1: an Ethernet carrier */
	__u8 on_miss;      /* enum on_miss */
	__u8 pad[2];
	__u8 src_mac[6];   /* Ethernet carrier: its own address */
	__u8 dst_mac[6];   /* Ethernet carrier: the far end's */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct carrier);
	__uint(max_entries, 1);
} carriers SEC(".maps");

/* A member. */
struct member {
	__u32 ifindex;
	__u8 label;        /* 1..63 */
	__u8 l2;           /* 1: an Ethernet member */
	__u8 mac[6];       /* Ethernet member: its address */
};

/* Members by ifindex (egress) and by label (ingress; ifindex 0: none). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct member);
	__uint(max_entries, MAX_LABEL);
} members SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct member);
	__uint(max_entries, MAX_LABEL + 1);
} labels SEC(".maps");

/* Per label: packets and bytes out through the carrier and in from it. */
struct member_counters {
	__u64 tx_packets;
	__u64 tx_bytes;
	__u64 rx_packets;
	__u64 rx_bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct member_counters);
	__uint(max_entries, MAX_LABEL + 1);
} member_stats SEC(".maps");

/* What userspace knows about each label (never read by the programs). */
struct member_info {
	__u64 netns;
	char name[16];
	__u8 created;      /* tunmux created the interface (member add --create) */
	__u8 pad[7];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32); /* label; 0: the carrier */
	__type(value, struct member_info);
	__uint(max_entries, MAX_LABEL + 1);
} member_names SEC(".maps");

/*
 * ip_cut_short reports whether the skb ends before the fixed IP header at
 * off does: its DSCP (and an IPv4 checksum) may be there while the rest is
 * not, and such a packet must be neither relabelled nor sent on.
 */
static __always_inline int ip_cut_short(struct __sk_buff *skb, __u32 off, int ipv6)
{
	return skb->len < off + (ipv6 ? sizeof(struct ipv6hdr) : sizeof(struct iphdr));
}

/*
 * set_dscp writes dscp into the IP header at off (the ECN bits stay), and
 * fixes the IPv4 checksum. It returns the DSCP it found, or -1 if the header
 * is not there.
 */
static __always_inline int set_dscp(struct __sk_buff *skb, __u32 off, int ipv6, __u8 dscp)
{
	__u8 b[2];

	if (ip_cut_short(skb, off, ipv6) || bpf_skb_load_bytes(skb, off, b, 2))
		return -1;
	if (ipv6) {
		/* Traffic class: the low nibble of byte 0, the high nibble of byte 1. */
		__u8 tc = (__u8)((b[0] & 0x0f) << 4) | (b[1] >> 4);
		__u8 old = tc >> 2, ntc = (__u8)(dscp << 2) | (tc & 3);

		if (old == dscp)
			return old;
		b[0] = (b[0] & 0xf0) | (ntc >> 4);
		b[1] = (b[1] & 0x0f) | (__u8)(ntc << 4);
		if (bpf_skb_store_bytes(skb, off, b, 2, 0))
			return -1;
		return old;
	}
	__u8 old = b[1] >> 2;

	if (old == dscp)
		return old;
	__be16 from, to;

	__builtin_memcpy(&from, b, 2);
	b[1] = (__u8)(dscp << 2) | (b[1] & 3);
	__builtin_memcpy(&to, b, 2);
	if (bpf_l3_csum_replace(skb, off + 10, from, to, 2) ||
	    bpf_skb_store_bytes(skb, off + 1, &b[1], 1, 0))
		return -1;
	return old;
}

/* read_dscp returns the DSCP of the IP header at off, or -1. */
static __always_inline int read_dscp(struct __sk_buff *skb, __u32 off, int ipv6)
{
	__u8 b[2];

	if (ip_cut_short(skb, off, ipv6) || bpf_skb_load_bytes(skb, off, b, 2))
		return -1;
	if ((b[0] >> 4) != (ipv6 ? 6 : 4))
		return -1;
	if (ipv6)
		return ((b[0] & 0x0f) << 2) | (b[1] >> 6);
	return b[1] >> 2;
}

static __always_inline void count_label(__u32 label, __u64 bytes, int rx)
{
	struct member_counters *c = bpf_map_lookup_elem(&member_stats, &label);

	if (!c)
		return;
	if (rx) {
		c->rx_packets++;
		c->rx_bytes += bytes;
	} else {
		c->tx_packets++;
		c->tx_bytes += bytes;
	}
}

TC_PROGRAM(mux_egress, skb)
{
	__u32 ifindex = skb->ifindex, zero = 0, len = skb->len;
	struct member *m = bpf_map_lookup_elem(&members, &ifindex);
	struct carrier *c = bpf_map_lookup_elem(&carriers, &zero);

	if (!m)
		return verdict(S_MUX_EGRESS__PASS_NOT_MEMBER, len, TCX_NEXT);
	if (!c || !c->ifindex)
		return verdict(S_MUX_EGRESS__DROP_NO_CARRIER, len, TC_ACT_SHOT);
	int ipv6 = skb->protocol == bpf_htons(ETH_P_IPV6);

	if (!ipv6 && skb->protocol != bpf_htons(ETH_P_IP))
		return verdict(S_MUX_EGRESS__PASS_NOT_IP, len, TCX_NEXT);

	__u32 label = m->label & MAX_LABEL;
	__u32 off = m->l2 ? ETH_HLEN : 0;

	if (set_dscp(skb, off, ipv6, label) < 0)
		return verdict(S_MUX_EGRESS__DROP_MALFORMED, len, TC_ACT_SHOT);
	if (c->l2) {
		struct ethhdr eth;

		__builtin_memcpy(eth.h_dest, c->dst_mac, ETH_ALEN);
		__builtin_memcpy(eth.h_source, c->src_mac, ETH_ALEN);
		eth.h_proto = skb->protocol;
		/* An L3 member's packet has no Ethernet header: push one. */
		if (!m->l2 && bpf_skb_change_head(skb, ETH_HLEN, 0))
			return verdict(S_MUX_EGRESS__DROP_ERROR, len, TC_ACT_SHOT);
		if (bpf_skb_store_bytes(skb, 0, &eth, ETH_HLEN, 0))
			return verdict(S_MUX_EGRESS__DROP_ERROR, len, TC_ACT_SHOT);
	}
	/* Into an L3 carrier, the redirect drops an Ethernet member's header. */
	count_label(label, len - off, 0);
	count(S_MUX_EGRESS__LABELLED, len);
	return bpf_redirect(c->ifindex, 0);
}

TC_PROGRAM(mux_ingress, skb)
{
	__u32 zero = 0, len = skb->len;
	struct carrier *c = bpf_map_lookup_elem(&carriers, &zero);
	int ipv6 = skb->protocol == bpf_htons(ETH_P_IPV6);

	if (!c || (!ipv6 && skb->protocol != bpf_htons(ETH_P_IP)))
		return verdict(S_MUX_INGRESS__PASS_NOT_IP, len, TCX_NEXT);
	__u32 off = c->l2 ? ETH_HLEN : 0;
	int dscp = read_dscp(skb, off, ipv6);

	if (dscp < 0)
		return verdict(S_MUX_INGRESS__PASS_MALFORMED, len, TCX_NEXT);
	if (dscp == 0)
		return verdict(S_MUX_INGRESS__PASS_OWN, len, TCX_NEXT);

	__u32 label = dscp & MAX_LABEL;
	struct member *m = bpf_map_lookup_elem(&labels, &label);

	if (!m || !m->ifindex) {
		if (c->on_miss == ON_MISS_PASS)
			return verdict(S_MUX_INGRESS__PASS_NO_MEMBER, len, TCX_NEXT);
		return verdict(S_MUX_INGRESS__DROP_NO_MEMBER, len, TC_ACT_SHOT);
	}
	__u32 member = m->ifindex;
	int push = m->l2 && !c->l2;
	struct ethhdr eth;

	__builtin_memcpy(eth.h_dest, m->mac, ETH_ALEN);
	__builtin_memcpy(eth.h_source, m->mac, ETH_ALEN);
	eth.h_proto = skb->protocol;
	if (set_dscp(skb, off, ipv6, 0) < 0)
		return verdict(S_MUX_INGRESS__DROP_ERROR, len, TC_ACT_SHOT);
	/* An Ethernet member behind an L3 carrier needs a header; the other way,
	 * the redirect drops the carrier's. */
	if (push && (bpf_skb_change_head(skb, ETH_HLEN, 0) ||
		     bpf_skb_store_bytes(skb, 0, &eth, ETH_HLEN, 0)))
		return verdict(S_MUX_INGRESS__DROP_ERROR, len, TC_ACT_SHOT);
	bpf_skb_change_type(skb, PACKET_HOST);
	count_label(label, len - off, 1);
	count(S_MUX_INGRESS__DELIVERED, len);
	return bpf_redirect(member, BPF_F_INGRESS);
}
