// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
//go:build ignore
/*
 * route: overlay routes (an LPM trie of IPv4 and IPv6 prefixes) to up to
 * eight weighted tunnel nexthops, one chosen per flow by weighted rendezvous
 * hashing among the healthy ones; the tunnel key is set and the packet is
 * redirected to a flow-based (external) vxlan or geneve device (the model of
 * Azure unbounded's TunnelMap).
 *
 *   route_egress     TC egress of an Ethernet device: the underlay interface
 *                    the kernel routes overlay traffic out of (a miss goes on
 *                    as the kernel routed it);
 *   route_egress_l3  TC egress of a device without an Ethernet header: a
 *                    persistent TUN device that overlay routes point at (a
 *                    miss goes on into the TUN device, which has no reader
 *                    and drops it).
 *
 * Either way a packet whose destination has no route, or whose route has no
 * healthy nexthop, continues down the TCX chain and is counted. UDP traffic
 * to a peer's probe port goes to that peer even while it is marked down, so
 * health probes can see it come back.
 */
#include <linux/types.h>

enum stat {
	S_ROUTE__TUNNELLED,           /* tunnel key set, redirected to the tunnel device */
	S_ROUTE__FORWARDED,           /* proto none: redirected out of the device to the remote */
	S_ROUTE__PROBE_TO_DOWN_PEER,  /* UDP to its probe port, sent to a peer marked down */
	S_ROUTE__PASS_NO_ROUTE,       /* no route for the destination */
	S_ROUTE__PASS_NO_HEALTHY,     /* the route has no healthy nexthop */
	S_ROUTE__PASS_NOT_IP,         /* neither IPv4 nor IPv6 */
	S_ROUTE__PASS_MALFORMED,      /* truncated or bad IP header */
	S_ROUTE__DROP_ERROR,          /* the kernel refused the tunnel key or a header change */
	STAT_MAX,
};

#include "tunmux.h"
#include "log2_table.h"

#define MAX_NEXTHOPS 8
#define FAMILY_V4 4
#define FAMILY_V6 6

#define PROTO_NONE 0
#define PROTO_VXLAN 1
#define PROTO_GENEVE 2

#define NH_F_IPV6 0x01 /* the remote is an IPv6 address */

#define IP_MF 0x2000
#define IP_OFFSET 0x1fff
#define IPPROTO_SCTP_ 132
#define IPPROTO_UDPLITE_ 136

/* A prefix: prefixlen counts the family byte (8 bits) plus the prefix. */
struct route_key {
	__u32 prefixlen;
	__u8 family;       /* 4 or 6 */
	__u8 addr[16];     /* IPv4 in the first 4 bytes */
	__u8 pad[3];
};

/* One nexthop of a route. */
struct nexthop {
	__u8 remote[16];   /* underlay address; IPv4 in the first 4 bytes */
	__u32 vni;         /* VNI (vxlan, geneve) */
	__u32 ifindex;     /* the device to redirect to */
	__u32 id;          /* hash of the nexthop's identity, set by userspace */
	__u16 weight;      /* 1..65535 */
	__u8 proto;        /* PROTO_* */
	__u8 flags;        /* NH_F_* */
	__u8 dst_mac[6];   /* inner destination: the remote tunnel device's MAC */
	__u8 src_mac[6];   /* inner source: this node's tunnel device's MAC */
};

/* A route: its own prefix (for display and exact gets) and its nexthops. */
struct route {
	__u8 count;        /* nexthops in use, 1..8 */
	__u8 family;
	__u8 prefixlen;    /* of the address, without the family byte */
	__u8 pad;
	__u8 addr[16];
	struct nexthop nh[MAX_NEXTHOPS];
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct route_key);
	__type(value, struct route);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} routes SEC(".maps");

/* Peers by underlay address. */
struct peer_key {
	__u8 family;
	__u8 pad[3];
	__u8 addr[16];
};

/* A peer's health: no entry is a healthy peer. */
struct peer {
	__u8 down;         /* 1: skip every nexthop to this peer */
	__u8 pad;
	__u16 probe_port;  /* UDP port of health probes (host order), 0: none */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct peer_key);
	__type(value, struct peer);
	__uint(max_entries, 4096);
} peers SEC(".maps");

/* Settings and state the programs read (one entry). */
struct route_config {
	__u32 peers_down; /* peer entries marked down; 0: no peer lookups */
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct route_config);
	__uint(max_entries, 1);
} config SEC(".maps");

/* The tunnel devices `route dev create` made (never read by the programs). */
struct tunnel_dev {
	__u64 netns;       /* inode of its network namespace */
	__u32 ifindex;
	__u8 proto;        /* PROTO_* */
	__u8 mac_rule;     /* 1: its MAC was derived from local by the rule */
	__u8 mac[6];
	__u8 local[16];    /* the underlay address its MAC was derived from */
	__u8 local_family; /* 0: none given */
	__u8 pad[3];
	char name[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32); /* PROTO_* */
	__type(value, struct tunnel_dev);
	__uint(max_entries, 3);
} tunnel_devs SEC(".maps");

/* verdict_pass counts id and lets the packet continue down the TCX chain. */
static __always_inline int verdict_pass(enum stat id, __u64 bytes)
{
	return verdict(id, bytes, TCX_NEXT);
}

/* A flow: the words hashed to pick its nexthop. */
struct flow {
	__u32 w[10];       /* src (4), dst (4), family << 8 | protocol, ports */
};

static __always_inline __u32 rotl32(__u32 x, int r)
{
	return (x << r) | (x >> (32 - r));
}

/* One murmur3 round: the flow hash folds ten words through it. */
static __always_inline __u32 murmur_round(__u32 h, __u32 k)
{
	k *= 0xcc9e2d51;
	k = rotl32(k, 15);
	k *= 0x1b873593;
	h ^= k;
	h = rotl32(h, 13);
	return h * 5 + 0xe6546b64;
}

static __always_inline __u32 flow_hash(const struct flow *f)
{
	__u32 h = 0x9747b28c;

#pragma unroll
	for (int i = 0; i < 10; i++)
		h = murmur_round(h, f->w[i]);
	return mix32(h ^ 40);
}

/*
 * log2_q16 returns log2(x) in Q16 fixed point for x >= 1: the position of
 * the top bit plus log2 of the mantissa, read from a 257-entry table with
 * linear interpolation between entries (measured error below 2.4e-5;
 * package hrw tests it).
 */
static __always_inline __u32 log2_q16(__u32 x)
{
	__u32 e = 0, y = x | 1;

	if (y >> 16) { e += 16; y >>= 16; }
	if (y >> 8) { e += 8; y >>= 8; }
	if (y >> 4) { e += 4; y >>= 4; }
	if (y >> 2) { e += 2; y >>= 2; }
	if (y >> 1) { e += 1; }
	/* The mantissa's fraction, in Q31: x shifted so its top bit is bit 31. */
	__u32 frac = ((x | 1) << (31 - e)) << 1;
	__u32 idx = frac >> 24, rem = (frac >> 8) & 0xffff;
	__u32 lo = log2_table[idx & 0xff], hi = log2_table[(idx & 0xff) + 1];

	return (e << 16) + lo + (((hi - lo) * rem) >> 16);
}

/*
 * parse fills the flow of the IP packet at off and its destination key. It
 * returns 0, or -1 for a malformed packet: a header cut short, of a bad
 * version or IHL, longer than the packet, or an IPv6 extension header
 * announced but not there. Ports are hashed when the transport header is
 * there and the packet is no fragment (so every fragment of a datagram
 * takes the same nexthop).
 */
static __always_inline int parse(struct __sk_buff *skb, __u32 off, int ipv6, struct flow *f,
				 struct route_key *k, __u16 *udp_dport)
{
	__u32 l4 = 0;
	__u8 proto = 0;
	int ports = 0;

	if (!ipv6) {
		struct iphdr ip;

		if (bpf_skb_load_bytes(skb, off, &ip, sizeof(ip)))
			return -1;
		/* The header's own length (options included) must be there. */
		if (ip.version != 4 || ip.ihl < 5 || off + ip.ihl * 4 > skb->len)
			return -1;
		f->w[0] = ip.saddr;
		f->w[4] = ip.daddr;
		__builtin_memcpy(k->addr, &ip.daddr, 4);
		k->family = FAMILY_V4;
		k->prefixlen = 8 + 32;
		proto = ip.protocol;
		l4 = off + ip.ihl * 4;
		ports = !(ip.frag_off & bpf_htons(IP_MF | IP_OFFSET));
		f->w[8] = FAMILY_V4 << 8 | proto;
	} else {
		struct ipv6hdr ip6;

		if (bpf_skb_load_bytes(skb, off, &ip6, sizeof(ip6)))
			return -1;
		if (ip6.version != 6)
			return -1;
		__builtin_memcpy(&f->w[0], &ip6.saddr, 16);
		__builtin_memcpy(&f->w[4], &ip6.daddr, 16);
		__builtin_memcpy(k->addr, &ip6.daddr, 16);
		k->family = FAMILY_V6;
		k->prefixlen = 8 + 128;
		proto = ip6.nexthdr;
		l4 = off + sizeof(ip6);
		ports = 1;
		/* Walk hop-by-hop, routing and destination options headers. */
#pragma unroll
		for (int i = 0; i < 4; i++) {
			__u8 ext[2];

			if (proto != IPPROTO_HOPOPTS && proto != IPPROTO_ROUTING && proto != IPPROTO_DSTOPTS)
				break;
			/* An extension header announced, but cut off. */
			if (bpf_skb_load_bytes(skb, l4, ext, 2))
				return -1;
			proto = ext[0];
			l4 += (ext[1] + 1) * 8;
		}
		if (proto == IPPROTO_FRAGMENT)
			ports = 0;
		f->w[8] = FAMILY_V6 << 8 | proto;
	}
	if (ports && (proto == IPPROTO_TCP || proto == IPPROTO_UDP ||
		      proto == IPPROTO_SCTP_ || proto == IPPROTO_UDPLITE_)) {
		__u32 p;

		if (bpf_skb_load_bytes(skb, l4 & 0xffff, &p, 4) == 0) {
			f->w[9] = p;
			if (proto == IPPROTO_UDP)
				*udp_dport = bpf_ntohs((__u16)(p >> 16));
		}
	}
	return 0;
}

/* usable reports whether nexthop nh may carry the flow; *probe is set when
 * its peer is down and the flow is health-probe traffic to it. */
static __always_inline int usable(const struct nexthop *nh, __u16 udp_dport, int check_peers, int *probe)
{
	struct peer_key pk = {};

	*probe = 0;
	if (!check_peers)
		return 1;
	pk.family = nh->flags & NH_F_IPV6 ? FAMILY_V6 : FAMILY_V4;
	__builtin_memcpy(pk.addr, nh->remote, 16);
	struct peer *p = bpf_map_lookup_elem(&peers, &pk);

	if (!p || !p->down)
		return 1;
	if (!p->probe_port || p->probe_port != udp_dport)
		return 0;
	*probe = 1;
	return 1;
}

/*
 * choose returns the index of the nexthop the flow takes, or -1 if none is
 * usable; *probe is set when it is a peer marked down that the flow reaches
 * only as health-probe traffic. Peers are looked up only while some peer
 * is marked down.
 */
static __always_inline int choose(const struct route *r, const struct flow *f, __u16 udp_dport, int *probe)
{
	__u32 zero = 0;
	struct route_config *cfg = bpf_map_lookup_elem(&config, &zero);
	int check_peers = !cfg || cfg->peers_down;
	int best = -1, best_probe = 0;
	__u64 best_w = 0, best_r = 1;

	if (r->count == 1)
		return usable(&r->nh[0], udp_dport, check_peers, probe) ? 0 : -1;
	__u32 hash = flow_hash(f);

#pragma unroll
	for (int i = 0; i < MAX_NEXTHOPS; i++) {
		const struct nexthop *nh = &r->nh[i];
		int via_probe;

		if (i >= r->count)
			break;
		if (!usable(nh, udp_dport, check_peers, &via_probe))
			continue;
		/* Weighted rendezvous: the largest weight / -ln(u) wins, u the
		 * nexthop's hash of the flow in (0, 1); compared crosswise. */
		__u64 w = nh->weight, rr = (32 << 16) - log2_q16(mix32(hash ^ nh->id));

		if (rr == 0)
			rr = 1;
		if (best < 0 || w * best_r > best_w * rr) {
			best = i;
			best_w = w;
			best_r = rr;
			best_probe = via_probe;
		}
	}
	*probe = best_probe;
	return best;
}

static __always_inline int route(struct __sk_buff *skb, int l2)
{
	__u32 len = skb->len, off = l2 ? ETH_HLEN : 0;
	int ipv6 = skb->protocol == bpf_htons(ETH_P_IPV6);
	struct flow f = {};
	struct route_key k = {};
	__u16 udp_dport = 0;

	if (!ipv6 && skb->protocol != bpf_htons(ETH_P_IP))
		return verdict_pass(S_ROUTE__PASS_NOT_IP, len);
	if (parse(skb, off, ipv6, &f, &k, &udp_dport))
		return verdict_pass(S_ROUTE__PASS_MALFORMED, len);

	struct route *r = bpf_map_lookup_elem(&routes, &k);

	if (!r)
		return verdict_pass(S_ROUTE__PASS_NO_ROUTE, len);
	int probe = 0, i = choose(r, &f, udp_dport, &probe);

	if (i < 0 || i >= MAX_NEXTHOPS)
		return verdict_pass(S_ROUTE__PASS_NO_HEALTHY, len);
	observe_aux(i + 1); /* the nexthop chosen, for tunmux monitor */
	const struct nexthop *nh = &r->nh[i];
	struct ethhdr eth;

	__builtin_memcpy(eth.h_dest, nh->dst_mac, ETH_ALEN);
	__builtin_memcpy(eth.h_source, nh->src_mac, ETH_ALEN);
	eth.h_proto = skb->protocol;
	/* A packet without an Ethernet header gets one: a tunnel device carries
	 * Ethernet frames, and a redirect to a neighbour needs one to strip. */
	if (!l2 && bpf_skb_change_head(skb, ETH_HLEN, 0))
		return verdict(S_ROUTE__DROP_ERROR, len, TC_ACT_SHOT);
	if (bpf_skb_store_bytes(skb, 0, &eth, ETH_HLEN, 0))
		return verdict(S_ROUTE__DROP_ERROR, len, TC_ACT_SHOT);

	if (nh->proto == PROTO_NONE) {
		struct bpf_redir_neigh n = {};

		if (nh->flags & NH_F_IPV6) {
			n.nh_family = 10; /* AF_INET6 */
			__builtin_memcpy(n.ipv6_nh, nh->remote, 16);
		} else {
			n.nh_family = 2; /* AF_INET */
			__builtin_memcpy(&n.ipv4_nh, nh->remote, 4);
		}
		count(probe ? S_ROUTE__PROBE_TO_DOWN_PEER : S_ROUTE__FORWARDED, len);
		return bpf_redirect_neigh(nh->ifindex, &n, sizeof(n), 0);
	}

	struct bpf_tunnel_key key = {};
	__u64 flags = 0;

	key.tunnel_id = nh->vni;
	key.tunnel_ttl = 64;
	if (nh->flags & NH_F_IPV6) {
		__builtin_memcpy(key.remote_ipv6, nh->remote, 16);
		flags = BPF_F_TUNINFO_IPV6;
	} else {
		__u32 a;

		__builtin_memcpy(&a, nh->remote, 4);
		key.remote_ipv4 = bpf_ntohl(a);
	}
	if (bpf_skb_set_tunnel_key(skb, &key, sizeof(key), flags))
		return verdict(S_ROUTE__DROP_ERROR, len, TC_ACT_SHOT);
	count(probe ? S_ROUTE__PROBE_TO_DOWN_PEER : S_ROUTE__TUNNELLED, len);
	return bpf_redirect(nh->ifindex, 0);
}

TC_PROGRAM(route_egress, skb)
{
	return route(skb, 1);
}

TC_PROGRAM(route_egress_l3, skb)
{
	return route(skb, 0);
}
