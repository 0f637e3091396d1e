// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
//go:build ignore
/*
 * encap: per-flow GENEVE, VXLAN and 802.1Q push and pop (the MPTM model, and
 * beyond it: IPv6 inner pairs and underlays, a TC hook that keeps GSO,
 * per-tunnel counters, GENEVE options).
 *
 * One tunnel entry, keyed by the inner (source, destination) pair (IPv4 or
 * IPv6), serves both directions of a flow pair:
 *   - encap (where workload frames arrive) looks up the frame's (src, dst),
 *     pushes the tunnel's headers and sends the frame out of the tunnel's
 *     underlay interface;
 *   - decap (where tunnelled frames arrive) looks up the swapped inner pair
 *     (dst, src) of a received frame, checks protocol, port, VNI or VLAN id
 *     and that the outer destination is the entry's outer source, strips the
 *     outer headers and sends the inner frame to the tunnel's overlay.
 * ARP frames are matched by their sender and target protocol addresses and
 * IPv6 neighbour solicitations by their target, so the real peer answers
 * across the tunnel.
 *
 * Two hooks run the same tunnels:
 *   - XDP (encap, decap): redirect through the devmap slots of the underlay
 *     and overlay; no GSO (frames are single packets);
 *   - TC ingress (encap_tc, decap_tc): bpf_skb_adjust_room with the encap
 *     flags, so GSO super-frames stay whole and the kernel segments them
 *     after the underlay; decap delivers into a workload namespace with
 *     bpf_redirect_peer.
 *
 * Nothing is changed before the lookup succeeds; everything that is not ours
 * passes untouched (XDP_PASS, or TCX_NEXT for the next TC program), and every
 * outcome is counted in "stats".
 */
#include <linux/types.h>

enum stat {
	S_ENCAP__GENEVE,                 /* pushed GENEVE, redirected to the underlay */
	S_ENCAP__VXLAN,                  /* pushed VXLAN, redirected to the underlay */
	S_ENCAP__VLAN,                   /* pushed an 802.1Q tag, redirected to the underlay */
	S_ENCAP__PASS_NOT_IP,            /* neither IPv4, IPv6 nor ARP (tagged frames included) */
	S_ENCAP__PASS_MALFORMED,         /* truncated header, bad IHL, not ARP for IPv4; multi-buffer */
	S_ENCAP__PASS_NO_TUNNEL,         /* no tunnel for (src, dst) */
	S_ENCAP__PASS_NO_SLOT,           /* the underlay has no redirect slot */
	S_ENCAP__DROP_TOO_BIG,           /* would exceed the underlay MTU once encapsulated */
	S_ENCAP__DROP_ERROR,             /* the kernel refused to grow the frame */
	S_DECAP__GENEVE,                 /* popped GENEVE, redirected to the overlay */
	S_DECAP__VXLAN,                  /* popped VXLAN, redirected to the overlay */
	S_DECAP__VLAN,                   /* popped an 802.1Q tag, redirected to the overlay */
	S_DECAP__PASS_NOT_TUNNEL,        /* not 802.1Q, not IP/UDP to port 6081 or 4789 */
	S_DECAP__PASS_MALFORMED,         /* truncated at a header, bad IHL or lengths, bad version; multi-buffer */
	S_DECAP__PASS_FRAGMENT,          /* outer fragment */
	S_DECAP__PASS_INNER_NOT_IP,      /* inner frame neither IPv4, IPv6 nor ARP */
	S_DECAP__PASS_STACKED_VLAN,      /* 802.1Q inside 802.1Q (or 802.1ad) */
	S_DECAP__PASS_OAM,               /* GENEVE control (O bit) packet */
	S_DECAP__PASS_NO_TUNNEL,         /* no tunnel for the swapped inner pair */
	S_DECAP__PASS_MISMATCH,          /* tunnel found; protocol, VNI/VLAN id or outer dst differ */
	S_DECAP__PASS_NO_SLOT,           /* the overlay has no redirect slot */
	S_DECAP__DROP_CRITICAL_OPT,      /* GENEVE critical options, which we cannot honour */
	S_DECAP__DROP_ERROR,             /* the kernel refused to shrink the frame */
	S_ENCAP_TC__GENEVE,              /* TC: pushed GENEVE (GSO kept), redirected to the underlay */
	S_ENCAP_TC__VXLAN,               /* TC: pushed VXLAN (GSO kept), redirected to the underlay */
	S_ENCAP_TC__VLAN,                /* TC: pushed an 802.1Q tag, redirected to the underlay */
	S_ENCAP_TC__PASS_NOT_IP,         /* TC: neither IPv4, IPv6 nor ARP */
	S_ENCAP_TC__PASS_MALFORMED,      /* TC: truncated or bad inner header */
	S_ENCAP_TC__PASS_NO_TUNNEL,      /* TC: no tunnel for (src, dst) */
	S_ENCAP_TC__DROP_TOO_BIG,        /* TC: a packet or GSO segment would exceed the underlay MTU */
	S_ENCAP_TC__DROP_ERROR,          /* TC: the kernel refused a header change */
	S_DECAP_TC__GENEVE,              /* TC: popped GENEVE, delivered to the overlay */
	S_DECAP_TC__VXLAN,               /* TC: popped VXLAN, delivered to the overlay */
	S_DECAP_TC__VLAN,                /* TC: popped an 802.1Q tag, delivered to the overlay */
	S_DECAP_TC__PASS_NOT_TUNNEL,     /* TC: not ours */
	S_DECAP_TC__PASS_MALFORMED,      /* TC: truncated at a header, bad lengths or version */
	S_DECAP_TC__PASS_FRAGMENT,       /* TC: outer fragment */
	S_DECAP_TC__PASS_INNER_NOT_IP,   /* TC: inner frame neither IPv4, IPv6 nor ARP */
	S_DECAP_TC__PASS_OAM,            /* TC: GENEVE control packet */
	S_DECAP_TC__PASS_NO_TUNNEL,      /* TC: no tunnel for the swapped inner pair */
	S_DECAP_TC__PASS_MISMATCH,       /* TC: protocol, VNI/VLAN id or outer dst differ */
	S_DECAP_TC__DROP_CRITICAL_OPT,   /* TC: GENEVE critical options */
	S_DECAP_TC__DROP_ERROR,          /* TC: the kernel refused a header change */
	S_REDIRECT__OUT,                 /* redirected through the ingress interface's slot */
	S_REDIRECT__PASS_NO_SLOT,        /* the ingress interface has no slot */
	S_PASS__PASS,                    /* frames received by a readied veth peer */
	STAT_MAX,
};

#include "tunmux.h"
#include "proto.h"
#include <linux/icmpv6.h>
#include "csum.h"

enum tunnel_proto {
	PROTO_VLAN = 1,
	PROTO_VXLAN = 2,
	PROTO_GENEVE = 3,
};

enum tunnel_flags {
	TUNNEL_F_INNER_DMAC = 1, /* rewrite the inner destination MAC on encap */
	TUNNEL_F_OUTER_V6 = 2,   /* IPv6 underlay */
	TUNNEL_F_PEER_NETNS = 4, /* the overlay veth's peer is in another namespace */
};

#define FAMILY_V4 4
#define FAMILY_V6 6
#define MAX_OPT_LEN 64 /* bytes of GENEVE options a tunnel sends */

/* Key of a tunnel: the inner pair, as sent by the local workload. IPv4
 * addresses take the first 4 bytes. */
struct tunnel_key {
	__u8 family;         /* of the inner pair: 4 or 6 */
	__u8 pad[3];
	__u8 inner_src[16];
	__u8 inner_dst[16];
} __attribute__((aligned(4))); /* the addresses are written a word at a time */

/* Key of a tunnel with an IPv4 inner pair, in tunnels4: 8 bytes hash and
 * compare in far less time than tunnel_key's 36 (about 18 ns a frame here). */
struct tunnel_key4 {
	__u8 inner_src[4];
	__u8 inner_dst[4];
} __attribute__((aligned(4)));

/* A tunnel: how to encapsulate (src, dst) and how to recognise (dst, src). */
struct tunnel {
	__u8 proto;          /* enum tunnel_proto */
	__u8 flags;          /* enum tunnel_flags */
	__u16 vlan_id;       /* 1..4094 for PROTO_VLAN */
	__u32 vni;           /* 0..2^24-1 for PROTO_VXLAN and PROTO_GENEVE */
	__u8 outer_src[16];  /* local underlay address (IPv4: first 4 bytes) */
	__u8 outer_dst[16];  /* remote underlay address */
	__u8 src_mac[6];     /* outer Ethernet source */
	__u8 dst_mac[6];     /* outer Ethernet destination */
	__u8 inner_dst_mac[6];
	__be16 src_port;     /* 0: derived from the inner flow */
	__u32 underlay_ifindex;
	__u32 overlay_ifindex;
	__u8 opt_len;        /* bytes of GENEVE options, a multiple of 4, up to 64 */
	__u8 geneve_flags;   /* GENEVE_F_CRITICAL when an option is critical */
	__u8 pad[2];
	__u32 counters;      /* index of the tunnel's counters in tunnel_stats */
	__u8 opts[MAX_OPT_LEN];
};

/* The tunnels of IPv6 inner pairs (family 6 keys only). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct tunnel_key);
	__type(value, struct tunnel);
	__uint(max_entries, 1024); /* tunmux load encap --max-entries */
} tunnels SEC(".maps");

/* The tunnels of IPv4 inner pairs. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct tunnel_key4);
	__type(value, struct tunnel);
	__uint(max_entries, 1024); /* sized with tunnels */
} tunnels4 SEC(".maps");

/* Per tunnel: frames encapsulated (tx) and decapsulated (rx), bytes of the
 * inner frames, and frames dropped as too big for the underlay. */
struct tunnel_counters {
	__u64 tx_packets;
	__u64 tx_bytes;
	__u64 rx_packets;
	__u64 rx_bytes;
	__u64 drop_too_big;
};

/* Indexed by tunnel.counters, which userspace gives each tunnel (the lowest
 * index no other tunnel holds, zeroed first): an array lookup costs the
 * datapath far less than a second hash lookup by key. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct tunnel_counters);
	__uint(max_entries, 1024); /* sized with tunnels */
} tunnel_stats SEC(".maps");

/* Redirect slots: tunnels hold identity slots (ifindex -> itself) for their
 * underlay and overlay; `devmap add IN OUT` holds IN -> OUT. */
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__type(key, __u32);
	__type(value, struct bpf_devmap_val);
	__uint(max_entries, 1024);
} devmap SEC(".maps");

/* What userspace knows about a slot (never read by the programs). */
struct slot_info {
	__u64 netns;        /* inode of the namespace the ifindexes belong to */
	char in_name[16];   /* the slot's key interface */
	char out_name[16];  /* where the slot redirects */
	__u32 out_ifindex;
	__u8 explicit_slot; /* added by `devmap add`; kept until `devmap del` */
	__u8 readiness;     /* how the out interface accepts redirected frames */
	__u8 pad[2];
	char peer[64];      /* "netns/ifname" of a veth out interface's peer */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct slot_info);
	__uint(max_entries, 1024);
} slots SEC(".maps");


#define UDP_TUN_LEN (sizeof(struct udphdr) + 8) /* UDP + VXLAN or GENEVE base header */
#define ETH_MACS_LEN 12

enum { PARSE_OK = 0, PARSE_NOT_IP = 1, PARSE_MALFORMED = 2 };

enum tunnel_count { COUNT_TX, COUNT_RX, COUNT_TOO_BIG };

static __always_inline void count_tunnel(const struct tunnel *t, __u64 bytes, enum tunnel_count what)
{
	__u32 i = t->counters;
	struct tunnel_counters *c = bpf_map_lookup_elem(&tunnel_stats, &i);

	if (!c)
		return;
	if (what == COUNT_TX) {
		c->tx_packets++;
		c->tx_bytes += bytes;
	} else if (what == COUNT_RX) {
		c->rx_packets++;
		c->rx_bytes += bytes;
	} else {
		c->drop_too_big++;
	}
}

/* The bytes of GENEVE options tunnel t sends. */
static __always_inline __u32 opt_len(const struct tunnel *t)
{
	__u32 n = t->opt_len;

	if (t->proto != PROTO_GENEVE)
		return 0;
	if (n > MAX_OPT_LEN)
		n = MAX_OPT_LEN;
	return n & ~3U;
}

/* The outer IP header's length of tunnel t. */
static __always_inline __u32 ip_len(const struct tunnel *t)
{
	return (t->flags & TUNNEL_F_OUTER_V6) ? sizeof(struct ipv6hdr) : sizeof(struct iphdr);
}

/* The outer header length of a tunnel, from the outer IP header to the inner
 * frame (0 for VLAN). */
static __always_inline __u32 outer_len(const struct tunnel *t)
{
	if (t->proto == PROTO_VLAN)
		return 0;
	return ip_len(t) + UDP_TUN_LEN + opt_len(t);
}

/*
 * parse_inner reads the pair of an IPv4, IPv6 or ARP payload of ethertype
 * proto at l3 into key, and a hash of its flow (addresses, protocol,
 * ports). An IPv6 neighbour solicitation is keyed by its target, as ARP is.
 * With reverse, the pair goes into key the other way round: the key of the
 * tunnel a received frame travels (the frame's source is the tunnel's
 * inner destination). key is zeroed by the caller.
 */
static __always_inline int parse_inner(__be16 proto, void *l3, void *end,
				       struct tunnel_key *key, __u32 *hash, int reverse)
{
	__u8 *src = reverse ? key->inner_dst : key->inner_src;
	__u8 *dst = reverse ? key->inner_src : key->inner_dst;

	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *iph = l3;
		__u32 h;

		if ((void *)(iph + 1) > end)
			return PARSE_MALFORMED;
		if (iph->version != 4 || iph->ihl < 5)
			return PARSE_MALFORMED;
		key->family = FAMILY_V4;
		copy_u32s(src, &iph->saddr, 4);
		copy_u32s(dst, &iph->daddr, 4);
		h = iph->saddr ^ mix32(iph->daddr ^ iph->protocol);
		if ((iph->frag_off & bpf_htons(0x3fff)) == 0 &&
		    (iph->protocol == IPPROTO_TCP || iph->protocol == IPPROTO_UDP ||
		     iph->protocol == IPPROTO_SCTP)) {
			__u32 *ports = l3 + ((iph->ihl & 0xf) << 2);

			if ((void *)(ports + 1) <= end)
				h ^= mix32(*ports);
		}
		*hash = mix32(h);
		return PARSE_OK;
	}
	if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = l3;
		__u32 h, *s, *d;

		if ((void *)(ip6 + 1) > end)
			return PARSE_MALFORMED;
		if (ip6->version != 6)
			return PARSE_MALFORMED;
		key->family = FAMILY_V6;
		copy_u32s(src, &ip6->saddr, 16);
		copy_u32s(dst, &ip6->daddr, 16);
		s = (__u32 *)&ip6->saddr;
		d = (__u32 *)&ip6->daddr;
		h = mix32(s[0] ^ s[1] ^ s[2] ^ s[3]) ^ (d[0] ^ d[1] ^ d[2] ^ d[3]) ^ ip6->nexthdr;
		if (ip6->nexthdr == IPPROTO_TCP || ip6->nexthdr == IPPROTO_UDP || ip6->nexthdr == IPPROTO_SCTP) {
			__u32 *ports = (void *)(ip6 + 1);

			if ((void *)(ports + 1) <= end)
				h ^= mix32(*ports);
		} else if (ip6->nexthdr == IPPROTO_ICMPV6) {
			/* Neighbour solicitation: type 135, the target at byte 8. */
			__u8 *icmp = (void *)(ip6 + 1);

			if ((void *)(icmp + 24) <= end && icmp[0] == 135)
				copy_u32s(dst, icmp + 8, 16);
		}
		*hash = mix32(h);
		return PARSE_OK;
	}
	if (proto == bpf_htons(ETH_P_ARP)) {
		struct arp_ipv4 *arp = l3;
		__u32 spa, tpa;

		if ((void *)(arp + 1) > end)
			return PARSE_MALFORMED;
		if (arp->hrd != bpf_htons(1) || arp->pro != bpf_htons(ETH_P_IP) ||
		    arp->hln != 6 || arp->pln != 4)
			return PARSE_MALFORMED;
		key->family = FAMILY_V4;
		__builtin_memcpy(src, arp->spa, 4);
		__builtin_memcpy(dst, arp->tpa, 4);
		__builtin_memcpy(&spa, arp->spa, 4);
		__builtin_memcpy(&tpa, arp->tpa, 4);
		*hash = mix32(spa ^ mix32(tpa));
		return PARSE_OK;
	}
	return PARSE_NOT_IP;
}

/* lookup_tunnel finds the tunnel of key: an IPv4 pair in tunnels4, an IPv6
 * one in tunnels. */
static __always_inline struct tunnel *lookup_tunnel(const struct tunnel_key *key)
{
	if (key->family == FAMILY_V4) {
		struct tunnel_key4 k4;

		copy_u32s(k4.inner_src, key->inner_src, 4);
		copy_u32s(k4.inner_dst, key->inner_dst, 4);
		return bpf_map_lookup_elem(&tunnels4, &k4);
	}
	return bpf_map_lookup_elem(&tunnels, key);
}

/* Everything between the outer Ethernet header and the inner frame. */
struct outer {
	union {
		struct iphdr ip4;
		struct ipv6hdr ip6;
	};
	__u8 rest[sizeof(struct udphdr) + 8]; /* UDP, then VXLAN or GENEVE */
} __attribute__((aligned(8))); /* copied into the frame 8 bytes at a time */

/* The outer headers up to the GENEVE options: an IPv6 header is 20 bytes
 * longer than an IPv4 one, and the union covers both. */
#define BASE_LEN(v6) (((v6) ? sizeof(struct ipv6hdr) : sizeof(struct iphdr)) + UDP_TUN_LEN)

/*
 * build_outer fills the outer IP, UDP and tunnel headers of tunnel t (all but
 * the GENEVE options) for an inner frame of inner_len bytes, and returns the
 * length of all outer headers, options included. The IPv6 UDP checksum is
 * left 0 (the caller fills it in where it can).
 */
static __always_inline __u32 build_outer(struct outer *o, const struct tunnel *t, __be16 sport, __u32 inner_len)
{
	__u32 olen = outer_len(t), opts = opt_len(t);
	__u32 udp_len = inner_len + UDP_TUN_LEN + opts;
	struct udphdr *udp;

	if (t->flags & TUNNEL_F_OUTER_V6) {
		o->ip6.version = 6;
		o->ip6.payload_len = bpf_htons(udp_len);
		o->ip6.nexthdr = IPPROTO_UDP;
		o->ip6.hop_limit = 64;
		copy_words(&o->ip6.saddr, t->outer_src, 16);
		copy_words(&o->ip6.daddr, t->outer_dst, 16);
		udp = (void *)o + sizeof(struct ipv6hdr);
	} else {
		o->ip4.version = 4;
		o->ip4.ihl = 5;
		o->ip4.tot_len = bpf_htons(sizeof(struct iphdr) + udp_len);
		o->ip4.frag_off = bpf_htons(0x4000); /* DF, an atomic datagram (RFC 6864) */
		o->ip4.ttl = 64;
		o->ip4.protocol = IPPROTO_UDP;
		copy_u32s(&o->ip4.saddr, t->outer_src, 4);
		copy_u32s(&o->ip4.daddr, t->outer_dst, 4);
		o->ip4.check = ipv4_csum(&o->ip4);
		udp = (void *)o + sizeof(struct iphdr);
	}
	udp->source = sport;
	udp->len = bpf_htons(udp_len);
	udp->check = 0; /* IPv4: allowed (RFC 768), as the kernel's vxlan does */
	if (t->proto == PROTO_GENEVE) {
		struct geneve_hdr *gh = (void *)(udp + 1);

		udp->dest = bpf_htons(GENEVE_PORT);
		gh->ver_optlen = opts >> 2;
		gh->flags = t->geneve_flags & GENEVE_F_CRITICAL;
		gh->proto = bpf_htons(ETH_P_TEB);
		gh->vni[0] = t->vni >> 16;
		gh->vni[1] = t->vni >> 8;
		gh->vni[2] = t->vni;
		gh->reserved = 0;
	} else {
		struct vxlan_hdr *vh = (void *)(udp + 1);

		udp->dest = bpf_htons(VXLAN_PORT);
		vh->flags = bpf_htonl(VXLAN_F_VNI);
		vh->vni = bpf_htonl(t->vni << 8);
	}
	return olen;
}

/* ------------------------------------------------------------------ XDP */

/*
 * multi_buffer reports whether the frame of ctx, len bytes in its first
 * buffer, goes on in more: the XDP programs (without frags support) see the
 * first buffer only, and would write or trim by lengths that miss the rest.
 * The kernel hands them single-buffer frames (it attaches them natively only
 * where frames fit one buffer, and linearizes an skb for generic XDP); a
 * test run of a large frame makes one with more.
 */
static __always_inline int multi_buffer(struct xdp_md *ctx, __u64 len)
{
	return bpf_xdp_get_buff_len(ctx) != len;
}

static __always_inline int push_vlan(struct xdp_md *ctx, __u16 vlan_id)
{
	__u8 macs[ETH_MACS_LEN] __attribute__((aligned(8)));
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;

	if (data + ETH_MACS_LEN > end)
		return -1;
	copy_words(macs, data, ETH_MACS_LEN);
	if (bpf_xdp_adjust_head(ctx, -(int)sizeof(struct vlan_hdr)))
		return -1;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (data + ETH_MACS_LEN + sizeof(struct vlan_hdr) > end)
		return -1;
	copy_words(data, macs, ETH_MACS_LEN);
	/* TPID 0x8100, then TCI (PCP 0, DEI 0, VID); the original ethertype
	 * now follows the tag. */
	__be16 *tag = data + ETH_MACS_LEN;

	tag[0] = bpf_htons(ETH_P_8021Q);
	tag[1] = bpf_htons(vlan_id & 0x0fff);
	return 0;
}

/*
 * grow_eth makes room for head bytes of outer headers in front of the frame
 * and writes t's outer Ethernet header (ethertype proto) there; at least
 * need bytes from the frame's start must be readable afterwards.
 */
static __always_inline int grow_eth(struct xdp_md *ctx, const struct tunnel *t, __u32 head,
				    __u32 need, __be16 proto, void **data, void **end)
{
	if (bpf_xdp_adjust_head(ctx, -(int)head))
		return -1;
	*data = (void *)(long)ctx->data;
	*end = (void *)(long)ctx->data_end;
	if (*data + need > *end)
		return -1;

	struct ethhdr *eth = *data;

	copy_words(eth->h_dest, t->dst_mac, ETH_ALEN);
	copy_words(eth->h_source, t->src_mac, ETH_ALEN);
	eth->h_proto = proto;
	return 0;
}

/* put_opts writes t's opts bytes of GENEVE options at dst, a word at a time. */
static __always_inline int put_opts(__u8 *dst, void *end, const struct tunnel *t, __u32 opts)
{
	for (int i = 0; i < MAX_OPT_LEN / 4; i++) {
		if (i * 4 >= opts)
			break;
		if ((void *)(dst + i * 4 + 4) > end)
			return -1;
		copy_words(dst + i * 4, t->opts + i * 4, 4);
	}
	return 0;
}

/*
 * push_udp4 puts the outer headers of t, an IPv4 underlay, in front of an
 * inner frame of inner_len bytes: written straight into the frame a word at
 * a time, the IPv4 checksum summed from the words as they are written (no
 * header built on the stack and copied: that cost a frame ~9 ns).
 */
static __always_inline int push_udp4(struct xdp_md *ctx, const struct tunnel *t,
				     __be16 sport, __u32 inner_len)
{
	__u32 opts = opt_len(t), udp_len = inner_len + UDP_TUN_LEN + opts;
	__u32 tot = sizeof(struct iphdr) + udp_len, head = ETH_HLEN + tot - inner_len;
	void *data, *end;

	if (grow_eth(ctx, t, head, ETH_HLEN + BASE_LEN(0), bpf_htons(ETH_P_IP), &data, &end))
		return -1;

	__u32 *w = data + ETH_HLEN; /* the IPv4 header, then UDP and the tunnel header */
	__u32 src = *(const __u32 *)t->outer_src, dst = *(const __u32 *)t->outer_dst;
	/* Version 4, IHL 5; id 0, DF (RFC 6864); TTL 64, UDP. The sum is of
	 * 16-bit words as they lie in memory, the order they are stored in. */
	__u32 sum = bpf_htons(0x4500) + bpf_htons(tot) + bpf_htons(0x4000) + bpf_htons(0x4011) +
		    (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff);

	w[0] = bpf_htonl(0x45000000 | tot);
	w[1] = bpf_htonl(0x00004000);
	w[2] = bpf_htonl(0x40110000) | ((__u32)csum_fold(sum) << 16);
	w[3] = src;
	w[4] = dst;
	/* UDP: checksum 0 over IPv4 (RFC 768), as the kernel's vxlan sends. */
	if (t->proto == PROTO_GENEVE) {
		w[5] = sport | ((__u32)bpf_htons(GENEVE_PORT) << 16);
		w[6] = bpf_htons(udp_len);
		w[7] = bpf_htonl(((opts >> 2) << 24) | ((__u32)(t->geneve_flags & GENEVE_F_CRITICAL) << 16) | ETH_P_TEB);
		w[8] = bpf_htonl(t->vni << 8);
	} else {
		w[5] = sport | ((__u32)bpf_htons(VXLAN_PORT) << 16);
		w[6] = bpf_htons(udp_len);
		w[7] = bpf_htonl(VXLAN_F_VNI);
		w[8] = bpf_htonl(t->vni << 8);
	}
	return put_opts(data + ETH_HLEN + BASE_LEN(0), end, t, opts);
}

/* push_udp6 puts the outer headers of t, an IPv6 underlay, in front of an
 * inner frame of inner_len bytes, with the UDP checksum. */
static __always_inline int push_udp6(struct xdp_md *ctx, const struct tunnel *t,
				     __be16 sport, __u32 inner_len)
{
	struct outer o = {};
	__u32 olen = build_outer(&o, t, sport, inner_len), opts = opt_len(t);
	__u32 head = ETH_HLEN + olen, udp_off = ETH_HLEN + sizeof(struct ipv6hdr);
	void *data, *end;

	if (grow_eth(ctx, t, head, ETH_HLEN + BASE_LEN(1), bpf_htons(ETH_P_IPV6), &data, &end))
		return -1;
	copy_words(data + ETH_HLEN, &o, BASE_LEN(1));
	if (put_opts(data + ETH_HLEN + BASE_LEN(1), end, t, opts))
		return -1;

	__u16 csum = udp6_csum(ctx, 1, &o.ip6, udp_off, head + inner_len, head + inner_len - udp_off, 0);

	return bpf_xdp_store_bytes(ctx, udp_off + 6, &csum, 2) ? -1 : 0;
}

XDP_PROGRAM(encap, ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u64 len = end - data;
	struct ethhdr *eth = data;
	struct tunnel_key key = {};
	struct tunnel *t;
	__u32 hash = 0, mtu = 0;
	int ret;

	if ((void *)(eth + 1) > end)
		return verdict(S_ENCAP__PASS_MALFORMED, len, XDP_PASS);
	ret = parse_inner(eth->h_proto, eth + 1, end, &key, &hash, 0);
	if (ret == PARSE_NOT_IP)
		return verdict(S_ENCAP__PASS_NOT_IP, len, XDP_PASS);
	if (ret != PARSE_OK)
		return verdict(S_ENCAP__PASS_MALFORMED, len, XDP_PASS);

	t = lookup_tunnel(&key);
	if (!t)
		return verdict(S_ENCAP__PASS_NO_TUNNEL, len, XDP_PASS);
	/* (A tag pushed in front of the first buffer is right whatever follows.) */
	if (t->proto != PROTO_VLAN && multi_buffer(ctx, len))
		return verdict(S_ENCAP__PASS_MALFORMED, len, XDP_PASS);

	/* The growth must fit the underlay's MTU (a VLAN tag is not counted
	 * against it, as Ethernet allows the tag on top of the MTU). */
	if (bpf_check_mtu(ctx, t->underlay_ifindex, &mtu,
			  t->proto == PROTO_VLAN ? 0 : (int)(ETH_HLEN + outer_len(t)), 0)) {
		count_tunnel(t, len, COUNT_TOO_BIG);
		return verdict(S_ENCAP__DROP_TOO_BIG, len, XDP_DROP);
	}

	/* Choose the slot first: on a miss nothing has been changed yet. */
	if (bpf_redirect_map(&devmap, t->underlay_ifindex, XDP_PASS) != XDP_REDIRECT)
		return verdict(S_ENCAP__PASS_NO_SLOT, len, XDP_PASS);

	if ((t->flags & TUNNEL_F_INNER_DMAC) && !(eth->h_dest[0] & 1))
		copy_words(eth->h_dest, t->inner_dst_mac, ETH_ALEN);

	if (t->proto == PROTO_VLAN) {
		if (push_vlan(ctx, t->vlan_id))
			return verdict(S_ENCAP__DROP_ERROR, len, XDP_DROP);
		count_tunnel(t, len, COUNT_TX);
		return verdict(S_ENCAP__VLAN, len + sizeof(struct vlan_hdr), XDP_REDIRECT);
	}

	__be16 sport = t->src_port ? t->src_port : bpf_htons(flow_src_port(hash));
	__u32 grown = ETH_HLEN + outer_len(t);
	enum stat done = t->proto == PROTO_GENEVE ? S_ENCAP__GENEVE : S_ENCAP__VXLAN;

	if ((t->flags & TUNNEL_F_OUTER_V6) ? push_udp6(ctx, t, sport, len) : push_udp4(ctx, t, sport, len))
		return verdict(S_ENCAP__DROP_ERROR, len, XDP_DROP);
	count_tunnel(t, len, COUNT_TX);
	return verdict(done, len + grown, XDP_REDIRECT);
}

/* lookup_for_decap finds the tunnel of a received inner frame and checks it;
 * key is set to the tunnel's key. */
static __always_inline struct tunnel *lookup_for_decap(__be16 proto, void *l3, void *end,
						       struct tunnel_key *key, int *why_not_ip)
{
	__u32 hash;
	int ret;

	__builtin_memset(key, 0, sizeof(*key));
	ret = parse_inner(proto, l3, end, key, &hash, 1);
	*why_not_ip = ret;
	if (ret != PARSE_OK)
		return NULL;
	return lookup_tunnel(key);
}

static __always_inline int decap_vlan(struct xdp_md *ctx, struct vlan_hdr *vh, void *end,
				      __u64 len)
{
	struct tunnel_key key;
	struct tunnel *t;
	__u8 macs[ETH_MACS_LEN] __attribute__((aligned(8)));
	void *data;
	int why;

	if ((void *)(vh + 1) > end)
		return verdict(S_DECAP__PASS_MALFORMED, len, XDP_PASS);
	if (vh->proto == bpf_htons(ETH_P_8021Q) || vh->proto == bpf_htons(ETH_P_8021AD))
		return verdict(S_DECAP__PASS_STACKED_VLAN, len, XDP_PASS);

	t = lookup_for_decap(vh->proto, vh + 1, end, &key, &why);
	if (why == PARSE_NOT_IP)
		return verdict(S_DECAP__PASS_INNER_NOT_IP, len, XDP_PASS);
	if (why != PARSE_OK)
		return verdict(S_DECAP__PASS_MALFORMED, len, XDP_PASS);
	if (!t)
		return verdict(S_DECAP__PASS_NO_TUNNEL, len, XDP_PASS);
	if (t->proto != PROTO_VLAN || t->vlan_id != (bpf_ntohs(vh->tci) & 0x0fff))
		return verdict(S_DECAP__PASS_MISMATCH, len, XDP_PASS);
	if (bpf_redirect_map(&devmap, t->overlay_ifindex, XDP_PASS) != XDP_REDIRECT)
		return verdict(S_DECAP__PASS_NO_SLOT, len, XDP_PASS);

	data = (void *)(long)ctx->data;
	if (data + ETH_MACS_LEN > end)
		return verdict(S_DECAP__DROP_ERROR, len, XDP_DROP);
	copy_words(macs, data, ETH_MACS_LEN);
	if (bpf_xdp_adjust_head(ctx, (int)sizeof(struct vlan_hdr)))
		return verdict(S_DECAP__DROP_ERROR, len, XDP_DROP);
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (data + ETH_MACS_LEN > end)
		return verdict(S_DECAP__DROP_ERROR, len, XDP_DROP);
	copy_words(data, macs, ETH_MACS_LEN);
	count_tunnel(t, len - sizeof(struct vlan_hdr), COUNT_RX);
	return verdict(S_DECAP__VLAN, len - sizeof(struct vlan_hdr), XDP_REDIRECT);
}

/* What parse_outer found of a tunnelled datagram. */
struct outer_info {
	__u8 proto;        /* PROTO_GENEVE or PROTO_VXLAN */
	__u8 critical;     /* GENEVE C bit */
	__u8 v6;
	__u32 vni;
	__u32 datagram;    /* outer IP header to the end of the datagram */
	__u32 inner;       /* offset of the inner Ethernet frame */
	__u8 dst[16];      /* outer destination */
};

enum {
	OUTER_OK = 0,
	OUTER_NOT_TUNNEL,
	OUTER_MALFORMED,
	OUTER_FRAGMENT,
	OUTER_OAM,
};

/*
 * parse_outer reads the outer IPv4 or IPv6, UDP and GENEVE or VXLAN headers
 * of the frame at data (len bytes in all, end the end of what can be read).
 */
static __always_inline int parse_outer(void *data, void *end, __u32 len, struct outer_info *oi)
{
	struct ethhdr *eth = data;
	struct udphdr *udp;
	__u32 ip_len, ulen;

	if ((void *)(eth + 1) > end)
		return OUTER_MALFORMED;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *iph = (void *)(eth + 1);

		if ((void *)(iph + 1) > end)
			return OUTER_MALFORMED;
		if (iph->protocol != IPPROTO_UDP)
			return OUTER_NOT_TUNNEL;
		if (iph->version != 4 || iph->ihl < 5)
			return OUTER_MALFORMED;
		if (iph->frag_off & bpf_htons(0x3fff))
			return OUTER_FRAGMENT;
		ip_len = (iph->ihl & 0xf) << 2;
		oi->datagram = bpf_ntohs(iph->tot_len);
		if (oi->datagram < ip_len)
			return OUTER_MALFORMED;
		__builtin_memcpy(oi->dst, &iph->daddr, 4);
		oi->v6 = 0;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > end)
			return OUTER_MALFORMED;
		if (ip6->nexthdr == 44)
			return OUTER_FRAGMENT;
		if (ip6->nexthdr != IPPROTO_UDP)
			return OUTER_NOT_TUNNEL;
		if (ip6->version != 6)
			return OUTER_MALFORMED;
		ip_len = sizeof(*ip6);
		oi->datagram = sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
		__builtin_memcpy(oi->dst, &ip6->daddr, 16);
		oi->v6 = 1;
	} else {
		return OUTER_NOT_TUNNEL;
	}
	udp = data + ETH_HLEN + (ip_len & 0x3c);
	if ((void *)(udp + 1) > end)
		return OUTER_MALFORMED;
	if (udp->dest == bpf_htons(GENEVE_PORT))
		oi->proto = PROTO_GENEVE;
	else if (udp->dest == bpf_htons(VXLAN_PORT))
		oi->proto = PROTO_VXLAN;
	else
		return OUTER_NOT_TUNNEL;
	/* The datagram must be whole, and the UDP length the IP payload's, so
	 * that the inner frame ends where both do: behind a shorter UDP length,
	 * options or the inner frame would be read from bytes outside the UDP
	 * datagram. Such a packet goes to the stack, which trims to UDP's. */
	ulen = bpf_ntohs(udp->len);
	if (ETH_HLEN + oi->datagram > len || ulen + ip_len != oi->datagram ||
	    ulen < UDP_TUN_LEN + ETH_HLEN)
		return OUTER_MALFORMED;

	void *th = udp + 1;

	if (oi->proto == PROTO_GENEVE) {
		struct geneve_hdr *gh = th;

		if ((void *)(gh + 1) > end)
			return OUTER_MALFORMED;
		if (gh->ver_optlen >> 6)
			return OUTER_MALFORMED;
		if (gh->flags & GENEVE_F_OAM)
			return OUTER_OAM;
		if (gh->proto != bpf_htons(ETH_P_TEB))
			return OUTER_NOT_TUNNEL;
		oi->critical = gh->flags & GENEVE_F_CRITICAL;
		oi->vni = ((__u32)gh->vni[0] << 16) | ((__u32)gh->vni[1] << 8) | gh->vni[2];
		oi->inner = (void *)(gh + 1) - data + ((gh->ver_optlen & 0x3f) << 2);
	} else {
		struct vxlan_hdr *vh = th;

		if ((void *)(vh + 1) > end)
			return OUTER_MALFORMED;
		if (!(vh->flags & bpf_htonl(VXLAN_F_VNI)))
			return OUTER_MALFORMED;
		oi->vni = bpf_ntohl(vh->vni) >> 8;
		oi->inner = (void *)(vh + 1) - data;
	}
	if (oi->inner + ETH_HLEN > ETH_HLEN + oi->datagram)
		return OUTER_MALFORMED;
	return OUTER_OK;
}

/* inner_fits reports whether the inner Ethernet header at off and the fixed
 * L3 header behind it (IPv4, IPv6 or ARP, as its ethertype says) lie inside
 * the datagram, which ends at frame_end: the inner parse must not read them
 * from bytes behind it (Ethernet padding), which decap would cut off. */
static __always_inline int inner_fits(__be16 proto, __u32 off, __u32 frame_end)
{
	__u32 need = ETH_HLEN;

	if (proto == bpf_htons(ETH_P_IP))
		need += sizeof(struct iphdr);
	else if (proto == bpf_htons(ETH_P_IPV6))
		need += sizeof(struct ipv6hdr);
	else if (proto == bpf_htons(ETH_P_ARP))
		need += sizeof(struct arp_ipv4);
	return off + need <= frame_end;
}

/* matches reports whether tunnel t carries what parse_outer found. */
static __always_inline int matches(const struct tunnel *t, const struct outer_info *oi)
{
	if (t->proto != oi->proto || t->vni != oi->vni || !(t->flags & TUNNEL_F_OUTER_V6) != !oi->v6)
		return 0;
	const __u32 *a = (const __u32 *)t->outer_src, *b = (const __u32 *)oi->dst;

	if (!oi->v6)
		return a[0] == b[0];
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3];
}

XDP_PROGRAM(decap, ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u64 len = end - data;
	struct ethhdr *eth = data;
	struct outer_info oi = {};
	struct tunnel_key key;
	struct tunnel *t;
	int why;

	if ((void *)(eth + 1) > end)
		return verdict(S_DECAP__PASS_MALFORMED, len, XDP_PASS);
	if (eth->h_proto == bpf_htons(ETH_P_8021Q))
		return decap_vlan(ctx, (void *)(eth + 1), end, len);
	switch (parse_outer(data, end, len, &oi)) {
	case OUTER_OK:
		break;
	case OUTER_NOT_TUNNEL:
		return verdict(S_DECAP__PASS_NOT_TUNNEL, len, XDP_PASS);
	case OUTER_FRAGMENT:
		return verdict(S_DECAP__PASS_FRAGMENT, len, XDP_PASS);
	case OUTER_OAM:
		return verdict(S_DECAP__PASS_OAM, len, XDP_PASS);
	default:
		return verdict(S_DECAP__PASS_MALFORMED, len, XDP_PASS);
	}

	struct ethhdr *ieth = data + (oi.inner & 0x1ff);

	if ((void *)(ieth + 1) > end || !inner_fits(ieth->h_proto, oi.inner, ETH_HLEN + oi.datagram))
		return verdict(S_DECAP__PASS_MALFORMED, len, XDP_PASS);
	t = lookup_for_decap(ieth->h_proto, ieth + 1, end, &key, &why);
	if (why == PARSE_NOT_IP)
		return verdict(S_DECAP__PASS_INNER_NOT_IP, len, XDP_PASS);
	if (why != PARSE_OK)
		return verdict(S_DECAP__PASS_MALFORMED, len, XDP_PASS);
	if (!t)
		return verdict(S_DECAP__PASS_NO_TUNNEL, len, XDP_PASS);
	if (!matches(t, &oi))
		return verdict(S_DECAP__PASS_MISMATCH, len, XDP_PASS);
	if (oi.critical)
		return verdict(S_DECAP__DROP_CRITICAL_OPT, len, XDP_DROP);
	if (multi_buffer(ctx, len))
		return verdict(S_DECAP__PASS_MALFORMED, len, XDP_PASS);
	if (bpf_redirect_map(&devmap, t->overlay_ifindex, XDP_PASS) != XDP_REDIRECT)
		return verdict(S_DECAP__PASS_NO_SLOT, len, XDP_PASS);

	__u32 frame_end = ETH_HLEN + oi.datagram, inner_len = frame_end - oi.inner;

	/* Drop Ethernet padding behind the datagram, then the outer headers. */
	if (len > frame_end && bpf_xdp_adjust_tail(ctx, -(int)(len - frame_end)))
		return verdict(S_DECAP__DROP_ERROR, len, XDP_DROP);
	if (bpf_xdp_adjust_head(ctx, (int)oi.inner))
		return verdict(S_DECAP__DROP_ERROR, len, XDP_DROP);
	count_tunnel(t, inner_len, COUNT_RX);
	return verdict(oi.proto == PROTO_GENEVE ? S_DECAP__GENEVE : S_DECAP__VXLAN, inner_len, XDP_REDIRECT);
}

/* ------------------------------------------------------------------- TC */

/* The most header bytes the TC programs read directly: Ethernet, IPv6 (or
 * IPv4 with options), UDP, GENEVE with 252 bytes of options, the inner
 * Ethernet, IPv4 with options (or IPv6) and an ICMPv6 target: 454. */
#define TC_PULL 512

/* TC_RETRY: a header the program must read lies beyond the linear part of
 * the skb; the caller pulls it in and runs the program's body again. Pulling
 * up front would cost every GSO skb a copy of payload bytes into its head
 * (a fifth of TCP's throughput here), and the stack leaves the headers
 * linear almost always. */
#define TC_RETRY (-100)

/* malformed: a header ran past the data: retry once pulled, or count stat. */
#define MALFORMED_OR_RETRY(stat)                                                \
	do {                                                                    \
		if (!pulled && (long)skb->data_end - (long)skb->data < (long)len) \
			return TC_RETRY;                                        \
		return verdict(stat, len, TCX_NEXT);                            \
	} while (0)

/* tc_run runs body on skb, and again after pulling up to TC_PULL bytes
 * into the linear part if it asked to. */
#define TC_RUN(body, skb)                                                       \
	({                                                                      \
		int __r = body(skb, 0);                                         \
		if (__r == TC_RETRY) {                                          \
			__u32 __l = (skb)->len;                                 \
			bpf_skb_pull_data(skb, __l < TC_PULL ? __l : TC_PULL);  \
			__r = body(skb, 1);                                     \
		}                                                               \
		__r;                                                            \
	})

static __always_inline int encap_tc_body(struct __sk_buff *skb, int pulled)
{
	__u32 len = skb->len;
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct tunnel_key key = {};
	__u32 hash = 0, mtu = 0, is_gso = skb->gso_size != 0;
	int ret;

	if ((void *)(eth + 1) > end)
		MALFORMED_OR_RETRY(S_ENCAP_TC__PASS_MALFORMED);
	if (skb->vlan_present)
		return verdict(S_ENCAP_TC__PASS_NOT_IP, len, TCX_NEXT);
	ret = parse_inner(eth->h_proto, eth + 1, end, &key, &hash, 0);
	if (ret == PARSE_NOT_IP)
		return verdict(S_ENCAP_TC__PASS_NOT_IP, len, TCX_NEXT);
	if (ret != PARSE_OK)
		MALFORMED_OR_RETRY(S_ENCAP_TC__PASS_MALFORMED);

	struct tunnel *t = lookup_tunnel(&key);

	if (!t)
		return verdict(S_ENCAP_TC__PASS_NO_TUNNEL, len, TCX_NEXT);

	struct ethhdr inner_eth;

	__builtin_memcpy(&inner_eth, eth, ETH_HLEN);
	if ((t->flags & TUNNEL_F_INNER_DMAC) && !(inner_eth.h_dest[0] & 1))
		__builtin_memcpy(inner_eth.h_dest, t->inner_dst_mac, ETH_ALEN);
	__u32 ifindex = t->underlay_ifindex;
	struct inner_csum ic = {};

	if ((t->flags & TUNNEL_F_OUTER_V6) && !is_gso)
		plan_csum(skb, eth->h_proto, 0, len, &ic);

	if (t->proto == PROTO_VLAN) {
		/* The frame (each GSO segment) must fit the underlay's MTU; the
		 * tag rides on top. */
		if (is_gso) {
			__u32 hdrs;

			bpf_check_mtu(skb, ifindex, &mtu, 0, 0);
			if (gso_header_len(skb, inner_eth.h_proto, ETH_HLEN, &hdrs) || hdrs + skb->gso_size > mtu)
				goto too_big;
		} else if (bpf_check_mtu(skb, ifindex, &mtu, 0, 0)) {
			goto too_big;
		}
		if (bpf_skb_store_bytes(skb, 0, &inner_eth, ETH_HLEN, 0) ||
		    bpf_skb_vlan_push(skb, bpf_htons(ETH_P_8021Q), t->vlan_id & 0x0fff))
			goto error;
		count_tunnel(t, len, COUNT_TX);
		count(S_ENCAP_TC__VLAN, len);
		return bpf_redirect(ifindex, 0);
	}

	__u32 olen = outer_len(t), is_ip = inner_eth.h_proto != bpf_htons(ETH_P_ARP);

	/* MTU: the outer packet, or each GSO segment of it, must fit. */
	if (is_gso) {
		__u32 hdrs;

		bpf_check_mtu(skb, ifindex, &mtu, 0, 0);
		if (gso_header_len(skb, inner_eth.h_proto, ETH_HLEN, &hdrs) ||
		    olen + ETH_HLEN + hdrs + skb->gso_size > mtu)
			goto too_big;
	} else if (bpf_check_mtu(skb, ifindex, &mtu, ETH_HLEN + olen, 0)) {
		goto too_big;
	}

	__be16 sport = t->src_port ? t->src_port : bpf_htons(flow_src_port(hash));
	struct outer o = {};
	__u32 head = ETH_HLEN + olen; /* where the inner frame starts */

	build_outer(&o, t, sport, len);
	if (is_ip) {
		/* The encap flags tell GSO how to segment, a device where the
		 * inner headers are (for an offloaded inner checksum), and set
		 * skb->protocol to the outer family. */
		__u64 flags = BPF_F_ADJ_ROOM_FIXED_GSO | BPF_F_ADJ_ROOM_ENCAP_L4_UDP |
			      BPF_F_ADJ_ROOM_ENCAP_L2_ETH | BPF_F_ADJ_ROOM_ENCAP_L2(ETH_HLEN) |
			      ((t->flags & TUNNEL_F_OUTER_V6) ? BPF_F_ADJ_ROOM_ENCAP_L3_IPV6 : BPF_F_ADJ_ROOM_ENCAP_L3_IPV4);

		/* Room after the MAC header for the outer headers and a copy of the
		 * inner Ethernet header; the front header becomes the outer one. */
		if (bpf_skb_adjust_room(skb, olen + ETH_HLEN, BPF_ADJ_ROOM_MAC, flags))
			goto error;
	} else if (bpf_skb_change_head(skb, head, 0)) {
		/* ARP: adjust_room refuses non-IP; room in front of the frame. */
		goto error;
	}
	if (bpf_skb_store_bytes(skb, head, &inner_eth, ETH_HLEN, 0))
		goto error;

	struct ethhdr outer_eth;

	__builtin_memcpy(outer_eth.h_dest, t->dst_mac, ETH_ALEN);
	__builtin_memcpy(outer_eth.h_source, t->src_mac, ETH_ALEN);
	outer_eth.h_proto = bpf_htons((t->flags & TUNNEL_F_OUTER_V6) ? ETH_P_IPV6 : ETH_P_IP);
	__u32 base = (t->flags & TUNNEL_F_OUTER_V6) ? BASE_LEN(1) : BASE_LEN(0);

	if (bpf_skb_store_bytes(skb, 0, &outer_eth, ETH_HLEN, 0))
		goto error;
	if ((t->flags & TUNNEL_F_OUTER_V6) ? bpf_skb_store_bytes(skb, ETH_HLEN, &o, BASE_LEN(1), 0)
					   : bpf_skb_store_bytes(skb, ETH_HLEN, &o, BASE_LEN(0), 0))
		goto error;
	for (int i = 0; i < MAX_OPT_LEN / 4; i++) {
		if (i * 4 >= opt_len(t))
			break;
		if (bpf_skb_store_bytes(skb, ETH_HLEN + base + i * 4, t->opts + i * 4, 4, 0))
			goto error;
	}
	if ((t->flags & TUNNEL_F_OUTER_V6) && !is_gso && ic.plan != CSUM_ZERO) {
		/* GSO segments would all carry one template checksum: there it
		 * stays 0 (RFC 6935/6936); a single datagram gets a real one. */
		__u32 udp_off = ETH_HLEN + sizeof(struct ipv6hdr);
		__u16 csum = outer_udp6_csum(skb, &o.ip6, udp_off, head, &ic);

		if (bpf_skb_store_bytes(skb, udp_off + 6, &csum, 2, 0))
			goto error;
	}
	count_tunnel(t, len, COUNT_TX);
	count(t->proto == PROTO_GENEVE ? S_ENCAP_TC__GENEVE : S_ENCAP_TC__VXLAN, len);
	return bpf_redirect(ifindex, 0);

too_big:
	count_tunnel(t, len, COUNT_TOO_BIG);
	return verdict(S_ENCAP_TC__DROP_TOO_BIG, len, TC_ACT_SHOT);
error:
	return verdict(S_ENCAP_TC__DROP_ERROR, len, TC_ACT_SHOT);
}

TC_PROGRAM(encap_tc, skb)
{
	return TC_RUN(encap_tc_body, skb);
}

/* deliver sends a decapsulated frame to the tunnel's overlay: into the
 * workload namespace directly where the overlay veth's peer lives there (IP
 * frames, whose protocol the decap flags set; others go through the veth,
 * which reads their Ethernet header again). */
static __always_inline int deliver(const struct tunnel *t, int is_ip)
{
	if ((t->flags & TUNNEL_F_PEER_NETNS) && is_ip)
		return bpf_redirect_peer(t->overlay_ifindex, 0);
	return bpf_redirect(t->overlay_ifindex, 0);
}

static __always_inline int decap_tc_body(struct __sk_buff *skb, int pulled)
{
	__u32 len = skb->len;
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct outer_info oi = {};
	struct tunnel_key key;
	struct tunnel *t;
	int why;

	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > end)
		MALFORMED_OR_RETRY(S_DECAP_TC__PASS_MALFORMED);
	if (skb->vlan_present || eth->h_proto == bpf_htons(ETH_P_8021Q) ||
	    eth->h_proto == bpf_htons(ETH_P_8021AD)) {
		/* An 802.1Q tunnel. The stack takes the tag out of the frame
		 * before TC sees it; a test run leaves it in. */
		__be16 tpid = skb->vlan_proto, iproto = eth->h_proto;
		__u32 tci = skb->vlan_tci, tag = 0;
		void *l3 = eth + 1;

		if (!skb->vlan_present) {
			struct vlan_hdr *vh = l3;

			if ((void *)(vh + 1) > end)
				MALFORMED_OR_RETRY(S_DECAP_TC__PASS_MALFORMED);
			tpid = eth->h_proto;
			tci = bpf_ntohs(vh->tci);
			iproto = vh->proto;
			l3 = vh + 1;
			tag = sizeof(*vh);
		}
		if (tpid != bpf_htons(ETH_P_8021Q))
			return verdict(S_DECAP_TC__PASS_NOT_TUNNEL, len, TCX_NEXT);
		t = lookup_for_decap(iproto, l3, end, &key, &why);
		if (why == PARSE_NOT_IP)
			return verdict(S_DECAP_TC__PASS_INNER_NOT_IP, len, TCX_NEXT);
		if (why != PARSE_OK)
			MALFORMED_OR_RETRY(S_DECAP_TC__PASS_MALFORMED);
		if (!t)
			return verdict(S_DECAP_TC__PASS_NO_TUNNEL, len, TCX_NEXT);
		if (t->proto != PROTO_VLAN || t->vlan_id != (tci & 0x0fff))
			return verdict(S_DECAP_TC__PASS_MISMATCH, len, TCX_NEXT);
		int is_ip = iproto != bpf_htons(ETH_P_ARP);

		if (bpf_skb_vlan_pop(skb))
			return verdict(S_DECAP_TC__DROP_ERROR, len, TC_ACT_SHOT);
		count_tunnel(t, len - tag, COUNT_RX);
		count(S_DECAP_TC__VLAN, len);
		return deliver(t, is_ip);
	}
	switch (parse_outer(data, end, len, &oi)) {
	case OUTER_OK:
		break;
	case OUTER_NOT_TUNNEL:
		return verdict(S_DECAP_TC__PASS_NOT_TUNNEL, len, TCX_NEXT);
	case OUTER_FRAGMENT:
		return verdict(S_DECAP_TC__PASS_FRAGMENT, len, TCX_NEXT);
	case OUTER_OAM:
		return verdict(S_DECAP_TC__PASS_OAM, len, TCX_NEXT);
	default:
		MALFORMED_OR_RETRY(S_DECAP_TC__PASS_MALFORMED);
	}

	struct ethhdr *ieth = data + (oi.inner & 0x1ff);

	if ((void *)(ieth + 1) > end)
		MALFORMED_OR_RETRY(S_DECAP_TC__PASS_MALFORMED);
	if (!inner_fits(ieth->h_proto, oi.inner, ETH_HLEN + oi.datagram))
		return verdict(S_DECAP_TC__PASS_MALFORMED, len, TCX_NEXT);
	t = lookup_for_decap(ieth->h_proto, ieth + 1, end, &key, &why);
	if (why == PARSE_NOT_IP)
		return verdict(S_DECAP_TC__PASS_INNER_NOT_IP, len, TCX_NEXT);
	if (why != PARSE_OK)
		MALFORMED_OR_RETRY(S_DECAP_TC__PASS_MALFORMED);
	if (!t)
		return verdict(S_DECAP_TC__PASS_NO_TUNNEL, len, TCX_NEXT);
	if (!matches(t, &oi))
		return verdict(S_DECAP_TC__PASS_MISMATCH, len, TCX_NEXT);
	if (oi.critical)
		return verdict(S_DECAP_TC__DROP_CRITICAL_OPT, len, TC_ACT_SHOT);

	struct ethhdr inner_eth;
	__u64 flags = BPF_F_ADJ_ROOM_FIXED_GSO;
	__u32 strip = oi.inner, frame_end = ETH_HLEN + oi.datagram, inner_len = frame_end - strip;

	__builtin_memcpy(&inner_eth, ieth, ETH_HLEN);
	if (inner_eth.h_proto == bpf_htons(ETH_P_IP))
		flags |= ADJ_ROOM_DECAP_L3_IPV4;
	else if (inner_eth.h_proto == bpf_htons(ETH_P_IPV6))
		flags |= ADJ_ROOM_DECAP_L3_IPV6;
	/* Drop Ethernet padding behind the datagram. The kernel refuses to
	 * change the tail of an skb still marked encapsulated by a sender on
	 * this host; such frames carry no padding, and an IP stack trims by its
	 * own length anyway, so a refusal here is no error. */
	if (frame_end < len)
		bpf_skb_change_tail(skb, frame_end, 0);
	/* The kernel will not shrink an skb below its network header's
	 * minimum, 40 bytes for IPv6. A shorter IPv4 packet under IPv6: make
	 * the skb IPv4 first (minimum 20), which takes 20 bytes off the outer
	 * header. Anything else (ARP) is padded. */
	if (oi.v6 && inner_len < ETH_HLEN + sizeof(struct ipv6hdr)) {
		if (inner_eth.h_proto == bpf_htons(ETH_P_IP)) {
			if (bpf_skb_change_proto(skb, bpf_htons(ETH_P_IP), 0))
				goto error;
			strip -= sizeof(struct ipv6hdr) - sizeof(struct iphdr);
		} else if (bpf_skb_change_tail(skb, strip + ETH_HLEN + sizeof(struct ipv6hdr), 0)) {
			goto error;
		}
	}
	/* The inner Ethernet header in front, then what lies between goes. */
	if (bpf_skb_store_bytes(skb, 0, &inner_eth, ETH_HLEN, 0))
		goto error;
	if (bpf_skb_adjust_room(skb, -(__s32)strip, BPF_ADJ_ROOM_MAC, flags))
		goto error;
	count_tunnel(t, inner_len, COUNT_RX);
	count(oi.proto == PROTO_GENEVE ? S_DECAP_TC__GENEVE : S_DECAP_TC__VXLAN, len);
	return deliver(t, inner_eth.h_proto != bpf_htons(ETH_P_ARP));

error:
	return verdict(S_DECAP_TC__DROP_ERROR, len, TC_ACT_SHOT);
}

TC_PROGRAM(decap_tc, skb)
{
	return TC_RUN(decap_tc_body, skb);
}

/* ------------------------------------------------------- plain redirect */

/* redirect: MPTM's plain redirect, through the slot keyed by the ingress interface. */
XDP_PROGRAM(redirect, ctx)
{
	__u64 len = ctx->data_end - ctx->data;

	if (bpf_redirect_map(&devmap, ctx->ingress_ifindex, XDP_PASS) != XDP_REDIRECT)
		return verdict(S_REDIRECT__PASS_NO_SLOT, len, XDP_PASS);
	return verdict(S_REDIRECT__OUT, len, XDP_REDIRECT);
}

/* pass: attached to the veth peer of a redirect target, so that redirected
 * frames are received (a veth drops XDP frames whose peer runs no XDP). */
XDP_PROGRAM(pass, ctx)
{
	return verdict(S_PASS__PASS, ctx->data_end - ctx->data, XDP_PASS);
}
