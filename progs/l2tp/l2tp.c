// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
//go:build ignore
/*
 * l2tp: L2TPv3 Ethernet pseudowires (RFC 3931, RFC 4719) in TC, over IP
 * (protocol 115) or UDP, on an IPv4 or IPv6 underlay.
 *
 *   l2tp_encap  TC ingress of an Ethernet-side interface: every frame that
 *               arrives (IP, ARP, ND, any ethertype, VLAN-tagged) is carried
 *               in the interface's session and redirected out of the
 *               session's tunnel interface;
 *   l2tp_decap  TC ingress of a tunnel interface: a data message of one of
 *               our sessions, from its peer, with the expected cookie, is
 *               stripped and the inner frame redirected out of the session's
 *               Ethernet-side interface.
 *
 * IP frames are encapsulated with bpf_skb_adjust_room and the L2 + L3 (+ UDP)
 * encapsulation flags, so GSO super-frames stay GSO and the kernel segments
 * them (over UDP; L2TP over IP has no segmenter, so GSO frames are dropped
 * there). Other frames are never large and get their headers with
 * bpf_skb_change_head. Everything that is not ours continues down the TCX
 * chain untouched, and every outcome is counted.
 */
#include <linux/types.h>

enum stat {
	S_L2TP_ENCAP__UDP,               /* encapsulated over UDP, redirected to the tunnel interface */
	S_L2TP_ENCAP__IP,                /* encapsulated over IP, redirected to the tunnel interface */
	S_L2TP_ENCAP__VIA_NEIGH,         /* encapsulated (IP frame); the kernel's neighbour table gives the MACs */
	S_L2TP_ENCAP__PASS_NO_SESSION,   /* the interface has no session */
	S_L2TP_ENCAP__DROP_TOO_BIG,      /* would exceed the tunnel interface's MTU */
	S_L2TP_ENCAP__DROP_GSO_OVER_IP,  /* a GSO frame on a session over IP (no segmenter) */
	S_L2TP_ENCAP__DROP_GSO_VLAN,     /* a GSO frame with an offloaded VLAN tag */
	S_L2TP_ENCAP__DROP_NO_NEIGH,     /* a non-IP frame while the peer's MAC address is unknown */
	S_L2TP_ENCAP__DROP_NO_ROUTE,     /* a non-IP frame, and no route to the peer (no cached MAC) */
	S_L2TP_ENCAP__DROP_ERROR,        /* the kernel refused a header change */
	S_L2TP_DECAP__UDP,               /* decapsulated from UDP, redirected to the Ethernet side */
	S_L2TP_DECAP__IP,                /* decapsulated from IP, redirected to the Ethernet side */
	S_L2TP_DECAP__PASS_NOT_L2TP,     /* not IP protocol 115, nor UDP to a session's port */
	S_L2TP_DECAP__PASS_MALFORMED,    /* truncated at a header, bad lengths */
	S_L2TP_DECAP__PASS_FRAGMENT,     /* outer fragment */
	S_L2TP_DECAP__PASS_CONTROL,      /* an L2TP control message (T bit, or session id 0 over IP) */
	S_L2TP_DECAP__PASS_VERSION,      /* L2TP version other than 3 over UDP */
	S_L2TP_DECAP__PASS_NO_SESSION,   /* no session with that id */
	S_L2TP_DECAP__PASS_MISMATCH,     /* session found; encapsulation, addresses or port differ */
	S_L2TP_DECAP__PASS_BAD_COOKIE,   /* session found; the cookie differs */
	S_L2TP_DECAP__DROP_ERROR,        /* the kernel refused a header change */
	STAT_MAX,
};

#include "tunmux.h"
#include "proto.h"
#include "csum.h"


#define L2TP_T_BIT 0x8000
#define L2TP_VERSION_MASK 0x000f

enum encap_kind { ENCAP_IP = 1, ENCAP_UDP = 2 };
enum session_flags { SESSION_F_STATIC_MAC = 1 };

/* A session, keyed by its local session id (unique on this LCCE). */
struct session {
	__u8 encap;           /* enum encap_kind */
	__u8 family;          /* 4 or 6: the underlay */
	__u8 cookie_len;      /* 0, 4 or 8: sent */
	__u8 peer_cookie_len; /* 0, 4 or 8: expected on receive */
	__u8 l2spec;          /* 1: the default 4-byte L2-specific sublayer */
	__u8 flags;           /* enum session_flags */
	__be16 local_port;    /* UDP */
	__be16 peer_port;     /* UDP */
	__u16 pad;
	__u32 peer_session_id;
	__u32 eth_ifindex;
	__u32 tunnel_ifindex;
	__u8 cookie[8];
	__u8 peer_cookie[8];
	__be32 local[4];      /* IPv4 in local[0] */
	__be32 peer[4];
	__u8 peer_mac[6];     /* SESSION_F_STATIC_MAC: the next hop's MAC */
	__u8 local_mac[6];    /* SESSION_F_STATIC_MAC: the tunnel interface's MAC */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct session);
	__uint(max_entries, 1024); /* tunmux load l2tp --max-entries */
} sessions SEC(".maps");

/* The session of each Ethernet-side interface (one per interface). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);   /* Ethernet-side ifindex */
	__type(value, __u32); /* local session id */
	__uint(max_entries, 1024);
} by_eth SEC(".maps");

/* UDP ports that carry our sessions, with how many sessions use each. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __be16);
	__type(value, __u32);
	__uint(max_entries, 64);
} udp_ports SEC(".maps");

/* The interface names of each session, for display (never read by the
 * programs): ifindexes alone do not say which namespace they belong to. */
struct session_names {
	__u64 netns;        /* inode of the namespace of both interfaces */
	char eth[16];
	char tunnel[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct session_names);
	__uint(max_entries, 1024);
} names SEC(".maps");

/* Per-session counters, both directions. */
struct session_counters {
	__u64 tx_packets;
	__u64 tx_bytes;
	__u64 rx_packets;
	__u64 rx_bytes;
	__u64 drops;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__type(key, __u32);
	__type(value, struct session_counters);
	__uint(max_entries, 1024);
} session_stats SEC(".maps");

/* Outer MAC addresses per session: found by fib lookup (updated_ns set), or
 * written by tunmux from the neighbour table (updated_ns 0). */
struct neigh_cache {
	__u8 dmac[6];
	__u8 smac[6];
	__u64 updated_ns;
};

#define NEIGH_TTL_NS 1000000000ULL /* look again after a second */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct neigh_cache);
	__uint(max_entries, 1024);
} neigh SEC(".maps");

static __always_inline void count_session(__u32 sid, __u64 bytes, int rx, int drop)
{
	struct session_counters *c = bpf_map_lookup_elem(&session_stats, &sid);

	if (!c)
		return;
	if (drop) {
		c->drops++;
	} else if (rx) {
		c->rx_packets++;
		c->rx_bytes += bytes;
	} else {
		c->tx_packets++;
		c->tx_bytes += bytes;
	}
}

/* Header lengths of a session, from the outer IP header to the inner frame. */
static __always_inline __u32 l2tp_len(const struct session *s)
{
	__u32 n = (s->encap == ENCAP_UDP ? sizeof(struct udphdr) + 8 : 4) + (s->cookie_len & 0xf);

	if (s->l2spec)
		n += 4;
	return n;
}

static __always_inline __u32 overhead(const struct session *s)
{
	return (s->family == 6 ? sizeof(struct ipv6hdr) : sizeof(struct iphdr)) + l2tp_len(s);
}

/* ---------------------------------------------------------------- encap */

/* Everything between the outer Ethernet header and the inner frame. */
struct outer {
	union {
		struct iphdr ip4;
		struct ipv6hdr ip6;
	};
	__u8 rest[8 + 8 + 8 + 4]; /* UDP, L2TP header, cookie, sublayer */
};

/*
 * build_outer fills the outer IP header and the L2TP headers of session s
 * for a payload (inner frame) of inner_len bytes, and returns their length.
 */
static __always_inline __u32 build_outer(struct outer *o, const struct session *s, __u32 inner_len)
{
	__u32 l2 = l2tp_len(s), ip_len;
	__u8 *p = o->rest;

	if (s->family == 6) {
		ip_len = sizeof(struct ipv6hdr);
		o->ip6.version = 6;
		o->ip6.priority = 0;
		o->ip6.flow_lbl[0] = o->ip6.flow_lbl[1] = o->ip6.flow_lbl[2] = 0;
		o->ip6.payload_len = bpf_htons(l2 + inner_len);
		o->ip6.nexthdr = s->encap == ENCAP_UDP ? IPPROTO_UDP : IPPROTO_L2TP;
		o->ip6.hop_limit = 64;
		__builtin_memcpy(&o->ip6.saddr, s->local, 16);
		__builtin_memcpy(&o->ip6.daddr, s->peer, 16);
		p = (__u8 *)o + sizeof(struct ipv6hdr);
	} else {
		ip_len = sizeof(struct iphdr);
		o->ip4.version = 4;
		o->ip4.ihl = 5;
		o->ip4.tos = 0;
		o->ip4.tot_len = bpf_htons(ip_len + l2 + inner_len);
		o->ip4.id = 0;
		o->ip4.frag_off = bpf_htons(0x4000); /* DF: the MTU is checked */
		o->ip4.ttl = 64;
		o->ip4.protocol = s->encap == ENCAP_UDP ? IPPROTO_UDP : IPPROTO_L2TP;
		o->ip4.check = 0;
		o->ip4.saddr = s->local[0];
		o->ip4.daddr = s->peer[0];
		o->ip4.check = ipv4_csum(&o->ip4);
		p = (__u8 *)o + sizeof(struct iphdr);
	}
	if (s->encap == ENCAP_UDP) {
		struct udphdr *udp = (void *)p;

		udp->source = s->local_port;
		udp->dest = s->peer_port;
		udp->len = bpf_htons(l2 + inner_len);
		udp->check = 0; /* IPv6: filled in after the payload is in place */
		p += sizeof(*udp);
		*(__be32 *)p = bpf_htonl(0x00030000); /* T=0, L=0, S=0, version 3; reserved 0 */
		p += 4;
	}
	*(__be32 *)p = bpf_htonl(s->peer_session_id);
	p += 4;
	if (s->cookie_len == 4)
		__builtin_memcpy(p, s->cookie, 4);
	else if (s->cookie_len == 8)
		__builtin_memcpy(p, s->cookie, 8);
	/* The default L2-specific sublayer after the cookie, when the session
	 * has one, is all zero (no sequencing): o was zeroed by the caller. */
	return ip_len + l2;
}

/*
 * next_hop finds the outer MAC addresses of session s. It returns 0 when
 * they are known to be current: static (--peer-mac), looked up by fib in the
 * last second, or looked up now. Otherwise it returns the fib lookup's
 * BPF_FIB_LKUP_RET_* (FWD_DISABLED where the tunnel interface does not
 * forward, NO_NEIGH before resolution), and *cached says whether dmac and
 * smac hold older addresses: from an earlier lookup, or written by tunmux
 * when it wrote the session.
 */
static __always_inline int next_hop(struct __sk_buff *skb, __u32 sid, const struct session *s,
				    __u8 dmac[6], __u8 smac[6], int *cached)
{
	*cached = 0;
	if (s->flags & SESSION_F_STATIC_MAC) {
		__builtin_memcpy(dmac, s->peer_mac, 6);
		__builtin_memcpy(smac, s->local_mac, 6);
		return 0;
	}
	__u64 now = bpf_ktime_get_ns();
	struct neigh_cache *nc = bpf_map_lookup_elem(&neigh, &sid);

	if (nc) {
		__builtin_memcpy(dmac, nc->dmac, 6);
		__builtin_memcpy(smac, nc->smac, 6);
		if (nc->updated_ns && now - nc->updated_ns < NEIGH_TTL_NS)
			return 0;
		*cached = 1;
	}
	struct bpf_fib_lookup fib = {};

	fib.ifindex = s->tunnel_ifindex;
	if (s->family == 6) {
		fib.family = 10; /* AF_INET6 */
		__builtin_memcpy(fib.ipv6_src, s->local, 16);
		__builtin_memcpy(fib.ipv6_dst, s->peer, 16);
	} else {
		fib.family = 2; /* AF_INET */
		fib.ipv4_src = s->local[0];
		fib.ipv4_dst = s->peer[0];
	}
	int rc = bpf_fib_lookup(skb, &fib, sizeof(fib), BPF_FIB_LOOKUP_OUTPUT);

	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return rc;
	struct neigh_cache fresh = { .updated_ns = now };

	__builtin_memcpy(fresh.dmac, fib.dmac, 6);
	__builtin_memcpy(fresh.smac, fib.smac, 6);
	bpf_map_update_elem(&neigh, &sid, &fresh, BPF_ANY);
	__builtin_memcpy(dmac, fib.dmac, 6);
	__builtin_memcpy(smac, fib.smac, 6);
	return 0;
}

TC_PROGRAM(l2tp_encap, skb)
{
	__u32 ifindex = skb->ingress_ifindex, len = skb->len, sid;
	__u32 *sidp = bpf_map_lookup_elem(&by_eth, &ifindex);
	struct session *s;

	if (!sidp)
		return verdict(S_L2TP_ENCAP__PASS_NO_SESSION, len, TCX_NEXT);
	sid = *sidp;
	observe_aux(sid); /* the session, for tunmux monitor */
	s = bpf_map_lookup_elem(&sessions, &sid);
	if (!s)
		return verdict(S_L2TP_ENCAP__PASS_NO_SESSION, len, TCX_NEXT);

	struct ethhdr inner_eth;
	__u32 ovh = overhead(s), mtu = 0, is_gso = skb->gso_size != 0;
	int tagged = skb->vlan_present;

	if (bpf_skb_load_bytes(skb, 0, &inner_eth, sizeof(inner_eth)))
		goto drop_error;
	int is_ip = !tagged && (inner_eth.h_proto == bpf_htons(ETH_P_IP) ||
				inner_eth.h_proto == bpf_htons(ETH_P_IPV6));

	/* MTU: the outer packet (overhead + inner frame, per GSO segment) must
	 * fit the tunnel interface. */
	if (is_gso) {
		__u32 hdrs;

		if (s->encap != ENCAP_UDP)
			goto drop_gso_over_ip;
		if (tagged || !is_ip)
			goto drop_gso_vlan;
		bpf_check_mtu(skb, s->tunnel_ifindex, &mtu, 0, 0);
		if (gso_header_len(skb, inner_eth.h_proto, ETH_HLEN, &hdrs) ||
		    ovh + ETH_HLEN + hdrs + skb->gso_size > mtu)
			goto drop_too_big;
	} else if (bpf_check_mtu(skb, s->tunnel_ifindex, &mtu, ETH_HLEN + ovh + (tagged ? 4 : 0), 0)) {
		/* The frame's own Ethernet header becomes payload, and a new one
		 * goes in front: it grows by an Ethernet header and the overhead. */
		goto drop_too_big;
	}

	/* Outer MACs: current ones, else (IP frames) the kernel's neighbour
	 * table through bpf_redirect_neigh, else (other frames, which that
	 * helper refuses) the last ones known. */
	__u8 dmac[6] = {}, smac[6] = {};
	int cached, via_neigh = 0;
	int nh = next_hop(skb, sid, s, dmac, smac, &cached);

	if (nh && is_ip) {
		via_neigh = 1;
		dmac[0] = 0x02; /* any unicast address: the helper replaces it */
	} else if (nh && !cached) {
		count_session(sid, len, 0, 1);
		if (nh == BPF_FIB_LKUP_RET_NO_NEIGH || nh == BPF_FIB_LKUP_RET_FWD_DISABLED)
			return verdict(S_L2TP_ENCAP__DROP_NO_NEIGH, len, TC_ACT_SHOT);
		return verdict(S_L2TP_ENCAP__DROP_NO_ROUTE, len, TC_ACT_SHOT);
	}

	/* The outer IPv6 UDP checksum of a single packet is planned on the
	 * frame as the sender handed it over (csum.h). */
	struct inner_csum ic = {};

	if (s->family == 6 && s->encap == ENCAP_UDP && !is_gso && !tagged)
		plan_csum(skb, inner_eth.h_proto, 0, len, &ic);

	/* Pad a short IP frame to Ethernet's minimum now: the peer's decap could
	 * not shrink an encapsulated skb below an IPv6 header's length, nor pad
	 * it then (the kernel refuses to resize encapsulated skbs). */
	__u32 frame = len;

	if (is_ip && !is_gso && frame < ETH_ZLEN) {
		if (bpf_skb_change_tail(skb, ETH_ZLEN, 0))
			goto drop_error;
		frame = ETH_ZLEN;
	}

	struct outer o = {};
	__u32 inner_len = frame + (tagged ? 4 : 0);
	__u32 olen = build_outer(&o, s, inner_len);
	__u32 head = ETH_HLEN + olen; /* where the inner frame starts */

	if (is_ip) {
		__u64 flags = BPF_F_ADJ_ROOM_FIXED_GSO | BPF_F_ADJ_ROOM_ENCAP_L2_ETH |
			      BPF_F_ADJ_ROOM_ENCAP_L2(ETH_HLEN) |
			      (s->family == 6 ? BPF_F_ADJ_ROOM_ENCAP_L3_IPV6 : BPF_F_ADJ_ROOM_ENCAP_L3_IPV4);

		if (s->encap == ENCAP_UDP)
			flags |= BPF_F_ADJ_ROOM_ENCAP_L4_UDP;
		/* Room after the MAC header for the outer headers and a copy of the
		 * inner Ethernet header; the front header becomes the outer one. */
		if (bpf_skb_adjust_room(skb, olen + ETH_HLEN, BPF_ADJ_ROOM_MAC, flags))
			goto drop_error;
		if (bpf_skb_store_bytes(skb, head, &inner_eth, ETH_HLEN, 0))
			goto drop_error;
	} else {
		/* Non-IP (or VLAN-tagged) frames: room in front of the whole frame. */
		if (tagged) {
			__be16 tag[2] = { skb->vlan_proto, bpf_htons(skb->vlan_tci) };

			if (bpf_skb_vlan_pop(skb))
				goto drop_error;
			if (bpf_skb_change_head(skb, ETH_HLEN + olen + 4, 0))
				goto drop_error;
			/* MACs, then the tag, then the frame's own ethertype. */
			if (bpf_skb_store_bytes(skb, head, &inner_eth, 12, 0) ||
			    bpf_skb_store_bytes(skb, head + 12, tag, 4, 0))
				goto drop_error;
		} else if (bpf_skb_change_head(skb, ETH_HLEN + olen, 0)) {
			goto drop_error;
		}
	}

	struct ethhdr outer_eth;

	__builtin_memcpy(outer_eth.h_dest, dmac, 6);
	__builtin_memcpy(outer_eth.h_source, smac, 6);
	outer_eth.h_proto = bpf_htons(s->family == 6 ? ETH_P_IPV6 : ETH_P_IP);
	if (olen > sizeof(o))
		goto drop_error;
	if (bpf_skb_store_bytes(skb, 0, &outer_eth, ETH_HLEN, 0) ||
	    bpf_skb_store_bytes(skb, ETH_HLEN, &o, olen, 0))
		goto drop_error;
	if (s->family == 6 && s->encap == ENCAP_UDP && !is_gso) {
		/* GSO segments would carry this template's checksum: there it
		 * stays 0 (RFC 6935); a single datagram gets a real one. */
		__u16 csum = outer_udp6_csum(skb, &o.ip6, ETH_HLEN + sizeof(struct ipv6hdr), head, &ic);

		if (csum && bpf_skb_store_bytes(skb, ETH_HLEN + sizeof(struct ipv6hdr) + 6, &csum, 2, 0))
			goto drop_error;
	}
	count_session(sid, len, 0, 0);
	if (via_neigh) {
		count(S_L2TP_ENCAP__VIA_NEIGH, len);
		return bpf_redirect_neigh(s->tunnel_ifindex, NULL, 0, 0);
	}
	count(s->encap == ENCAP_UDP ? S_L2TP_ENCAP__UDP : S_L2TP_ENCAP__IP, len);
	return bpf_redirect(s->tunnel_ifindex, 0);

drop_too_big:
	count_session(sid, len, 0, 1);
	return verdict(S_L2TP_ENCAP__DROP_TOO_BIG, len, TC_ACT_SHOT);
drop_gso_over_ip:
	count_session(sid, len, 0, 1);
	return verdict(S_L2TP_ENCAP__DROP_GSO_OVER_IP, len, TC_ACT_SHOT);
drop_gso_vlan:
	count_session(sid, len, 0, 1);
	return verdict(S_L2TP_ENCAP__DROP_GSO_VLAN, len, TC_ACT_SHOT);
drop_error:
	count_session(sid, len, 0, 1);
	return verdict(S_L2TP_ENCAP__DROP_ERROR, len, TC_ACT_SHOT);
}

/* ---------------------------------------------------------------- decap */

/* The most header bytes decap reads: Ethernet, IPv4 with options (or IPv6),
 * UDP, L2TP, cookie, sublayer, inner Ethernet. */
#define DECAP_PULL 128

TC_PROGRAM(l2tp_decap, skb)
{
	__u32 len = skb->len, pull = len < DECAP_PULL ? len : DECAP_PULL;

	bpf_skb_pull_data(skb, pull);

	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	__u8 proto, family;
	__u32 l3_len, datagram;
	void *l4;
	__be32 src[4] = {}, dst[4] = {};

	if ((void *)(eth + 1) > end)
		return verdict(S_L2TP_DECAP__PASS_MALFORMED, len, TCX_NEXT);
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > end)
			return verdict(S_L2TP_DECAP__PASS_MALFORMED, len, TCX_NEXT);
		if (ip->protocol != IPPROTO_L2TP && ip->protocol != IPPROTO_UDP)
			return verdict(S_L2TP_DECAP__PASS_NOT_L2TP, len, TCX_NEXT);
		if (ip->version != 4 || ip->ihl < 5)
			return verdict(S_L2TP_DECAP__PASS_MALFORMED, len, TCX_NEXT);
		if (ip->frag_off & bpf_htons(0x3fff))
			return verdict(S_L2TP_DECAP__PASS_FRAGMENT, len, TCX_NEXT);
		family = 4;
		proto = ip->protocol;
		l3_len = (ip->ihl & 0xf) << 2;
		datagram = bpf_ntohs(ip->tot_len);
		if (datagram < l3_len)
			return verdict(S_L2TP_DECAP__PASS_MALFORMED, len, TCX_NEXT);
		src[0] = ip->saddr;
		dst[0] = ip->daddr;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > end)
			return verdict(S_L2TP_DECAP__PASS_MALFORMED, len, TCX_NEXT);
		if (ip6->nexthdr == 44) /* fragment header */
			return verdict(S_L2TP_DECAP__PASS_FRAGMENT, len, TCX_NEXT);
		if (ip6->nexthdr != IPPROTO_L2TP && ip6->nexthdr != IPPROTO_UDP)
			return verdict(S_L2TP_DECAP__PASS_NOT_L2TP, len, TCX_NEXT);
		family = 6;
		proto = ip6->nexthdr;
		l3_len = sizeof(*ip6);
		datagram = sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
		__builtin_memcpy(src, &ip6->saddr, 16);
		__builtin_memcpy(dst, &ip6->daddr, 16);
	} else {
		return verdict(S_L2TP_DECAP__PASS_NOT_L2TP, len, TCX_NEXT);
	}
	if (ETH_HLEN + datagram > len)
		return verdict(S_L2TP_DECAP__PASS_MALFORMED, len, TCX_NEXT);

	l4 = data + ETH_HLEN + (l3_len & 0x3c);
	__u8 *l2tp;
	__be16 dport = 0;

	if (proto == IPPROTO_UDP) {
		struct udphdr *udp = l4;

		if ((void *)(udp + 1) > end)
			return verdict(S_L2TP_DECAP__PASS_MALFORMED, len, TCX_NEXT);
		if (!bpf_map_lookup_elem(&udp_ports, &udp->dest))
			return verdict(S_L2TP_DECAP__PASS_NOT_L2TP, len, TCX_NEXT);
		/* The UDP length must be the IP payload's, so that the inner
		 * frame ends where both do: behind a shorter UDP length, the
		 * cookie or the inner frame would be read from bytes outside the
		 * UDP datagram. Such a packet goes to the stack, which trims to
		 * UDP's. */
		if (bpf_ntohs(udp->len) < sizeof(*udp) + 8 || bpf_ntohs(udp->len) != datagram - l3_len)
			return verdict(S_L2TP_DECAP__PASS_MALFORMED, len, TCX_NEXT);
		dport = udp->dest;
		l2tp = (void *)(udp + 1);
		if ((void *)(l2tp + 8) > end)
			return verdict(S_L2TP_DECAP__PASS_MALFORMED, len, TCX_NEXT);
		__u16 fv = bpf_ntohs(*(__be16 *)l2tp);

		if (fv & L2TP_T_BIT)
			return verdict(S_L2TP_DECAP__PASS_CONTROL, len, TCX_NEXT);
		if ((fv & L2TP_VERSION_MASK) != 3)
			return verdict(S_L2TP_DECAP__PASS_VERSION, len, TCX_NEXT);
		l2tp += 4; /* flags, version, reserved */
	} else {
		l2tp = l4;
		if ((void *)(l2tp + 4) > end)
			return verdict(S_L2TP_DECAP__PASS_MALFORMED, len, TCX_NEXT);
		if (*(__u32 *)l2tp == 0)
			return verdict(S_L2TP_DECAP__PASS_CONTROL, len, TCX_NEXT);
	}

	__u32 sid = bpf_ntohl(*(__be32 *)l2tp);
	struct session *s = bpf_map_lookup_elem(&sessions, &sid);

	observe_aux(sid);

	if (!s)
		return verdict(S_L2TP_DECAP__PASS_NO_SESSION, len, TCX_NEXT);
	if (s->family != family || (s->encap == ENCAP_UDP) != (proto == IPPROTO_UDP) ||
	    (proto == IPPROTO_UDP && dport != s->local_port) ||
	    src[0] != s->peer[0] || dst[0] != s->local[0] ||
	    (family == 6 && (src[1] != s->peer[1] || src[2] != s->peer[2] || src[3] != s->peer[3] ||
			     dst[1] != s->local[1] || dst[2] != s->local[2] || dst[3] != s->local[3])))
		return verdict(S_L2TP_DECAP__PASS_MISMATCH, len, TCX_NEXT);

	__u8 *cookie = l2tp + 4;
	__u32 clen = s->peer_cookie_len & 0xf;

	if (clen > 8 || (void *)(cookie + 8) > end)
		return verdict(S_L2TP_DECAP__PASS_MALFORMED, len, TCX_NEXT);
	for (int i = 0; i < 8; i++) {
		if (i < clen && cookie[i] != s->peer_cookie[i])
			return verdict(S_L2TP_DECAP__PASS_BAD_COOKIE, len, TCX_NEXT);
	}
	__u8 *inner = cookie + clen + (s->l2spec ? 4 : 0);
	struct ethhdr inner_eth;

	if ((void *)(inner + ETH_HLEN) > end)
		return verdict(S_L2TP_DECAP__PASS_MALFORMED, len, TCX_NEXT);

	__u32 strip = inner - (__u8 *)data; /* outer headers up to the inner frame */

	/* The inner Ethernet header must lie inside the datagram, not in
	 * bytes behind it (Ethernet padding), which are cut off below. */
	if (strip + ETH_HLEN > ETH_HLEN + datagram)
		return verdict(S_L2TP_DECAP__PASS_MALFORMED, len, TCX_NEXT);
	__builtin_memcpy(&inner_eth, inner, ETH_HLEN);
	__u32 eth_ifindex = s->eth_ifindex;
	__u64 flags = BPF_F_ADJ_ROOM_FIXED_GSO;

	if (inner_eth.h_proto == bpf_htons(ETH_P_IP))
		flags |= ADJ_ROOM_DECAP_L3_IPV4;
	else if (inner_eth.h_proto == bpf_htons(ETH_P_IPV6))
		flags |= ADJ_ROOM_DECAP_L3_IPV6;
	/* Drop Ethernet padding behind the datagram, or pad a short inner frame
	 * to Ethernet's 60-byte minimum (the kernel will not shrink an skb below
	 * an outer IPv6 header's length, which a bare ARP frame is), put the
	 * inner Ethernet header in front, then remove what lies between. */
	__u32 frame_end = ETH_HLEN + datagram;

	if (frame_end - strip < ETH_ZLEN)
		frame_end = strip + ETH_ZLEN;
	if (frame_end != len && bpf_skb_change_tail(skb, frame_end, 0))
		goto drop_error;
	if (bpf_skb_store_bytes(skb, 0, &inner_eth, ETH_HLEN, 0))
		goto drop_error;
	if (bpf_skb_adjust_room(skb, -(__s32)strip, BPF_ADJ_ROOM_MAC, flags))
		goto drop_error;
	count_session(sid, skb->len, 1, 0);
	count(proto == IPPROTO_UDP ? S_L2TP_DECAP__UDP : S_L2TP_DECAP__IP, len);
	return bpf_redirect(eth_ifindex, 0);

drop_error:
	count_session(sid, len, 1, 1);
	return verdict(S_L2TP_DECAP__DROP_ERROR, len, TC_ACT_SHOT);
}
