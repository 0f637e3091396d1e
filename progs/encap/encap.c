// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
//go:build ignore
/*
 * encap: per-flow GENEVE, VXLAN and 802.1Q push and pop at XDP (the MPTM model).
 *
 * One tunnel entry, keyed by the inner (source, destination) IPv4 pair, serves
 * both directions of a flow pair:
 *   - encap (on the interface where workload frames arrive) looks up the
 *     frame's (src, dst), pushes the tunnel's headers and redirects through the
 *     devmap slot of the tunnel's underlay interface;
 *   - decap (on the interface where tunnelled frames arrive) looks up the
 *     swapped inner pair (dst, src) of a received frame, checks protocol, port,
 *     VNI or VLAN id and that the outer destination is the entry's outer
 *     source, strips the outer headers and redirects through the devmap slot
 *     of the tunnel's overlay interface.
 * ARP frames are matched by their sender and target protocol addresses, so
 * the real peer answers across the tunnel.
 *
 * Nothing is changed before the lookup succeeds; everything that is not ours
 * passes untouched, and every outcome is counted in "stats".
 */
#include <linux/types.h>

enum stat {
	S_ENCAP__GENEVE,              /* pushed GENEVE, redirected to the underlay */
	S_ENCAP__VXLAN,               /* pushed VXLAN, redirected to the underlay */
	S_ENCAP__VLAN,                /* pushed an 802.1Q tag, redirected to the underlay */
	S_ENCAP__PASS_NOT_IPV4,       /* neither IPv4 nor ARP (tagged frames included) */
	S_ENCAP__PASS_MALFORMED,      /* truncated header, bad IHL, not ARP for IPv4 */
	S_ENCAP__PASS_NO_TUNNEL,      /* no tunnel for (src, dst) */
	S_ENCAP__PASS_NO_SLOT,        /* the underlay has no redirect slot */
	S_ENCAP__DROP_TOO_BIG,        /* would exceed the underlay MTU once encapsulated */
	S_ENCAP__DROP_ERROR,          /* the kernel refused to grow the frame */
	S_DECAP__GENEVE,              /* popped GENEVE, redirected to the overlay */
	S_DECAP__VXLAN,               /* popped VXLAN, redirected to the overlay */
	S_DECAP__VLAN,                /* popped an 802.1Q tag, redirected to the overlay */
	S_DECAP__PASS_NOT_TUNNEL,     /* not 802.1Q, not IPv4/UDP to port 6081 or 4789 */
	S_DECAP__PASS_MALFORMED,      /* truncated at a header, bad IHL or lengths, bad version */
	S_DECAP__PASS_FRAGMENT,       /* outer IPv4 fragment */
	S_DECAP__PASS_INNER_NOT_IPV4, /* inner frame neither IPv4 nor ARP */
	S_DECAP__PASS_STACKED_VLAN,   /* 802.1Q inside 802.1Q (or 802.1ad) */
	S_DECAP__PASS_OAM,            /* GENEVE control (O bit) packet */
	S_DECAP__PASS_NO_TUNNEL,      /* no tunnel for the swapped inner pair */
	S_DECAP__PASS_MISMATCH,       /* tunnel found; protocol, VNI/VLAN id or outer dst differ */
	S_DECAP__PASS_NO_SLOT,        /* the overlay has no redirect slot */
	S_DECAP__DROP_CRITICAL_OPT,   /* GENEVE critical options, which we cannot honour */
	S_DECAP__DROP_ERROR,          /* the kernel refused to shrink the frame */
	S_REDIRECT__OUT,              /* redirected through the ingress interface's slot */
	S_REDIRECT__PASS_NO_SLOT,     /* the ingress interface has no slot */
	S_PASS__PASS,                 /* frames received by a readied veth peer */
	STAT_MAX,
};

#include "tunmux.h"
#include "proto.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

enum tunnel_proto {
	PROTO_VLAN = 1,
	PROTO_VXLAN = 2,
	PROTO_GENEVE = 3,
};

enum tunnel_flags {
	TUNNEL_F_INNER_DMAC = 1, /* rewrite the inner destination MAC on encap */
};

/* Key of a tunnel: the inner IPv4 pair, as sent by the local workload. */
struct tunnel_key {
	__be32 inner_src;
	__be32 inner_dst;
};

/* A tunnel: how to encapsulate (src, dst) and how to recognise (dst, src). */
struct tunnel {
	__u8 proto;          /* enum tunnel_proto */
	__u8 flags;          /* enum tunnel_flags */
	__u16 vlan_id;       /* 1..4094 for PROTO_VLAN */
	__u32 vni;           /* 0..2^24-1 for PROTO_VXLAN and PROTO_GENEVE */
	__be32 outer_src;    /* local underlay address */
	__be32 outer_dst;    /* remote underlay address */
	__u8 src_mac[6];     /* outer Ethernet source */
	__u8 dst_mac[6];     /* outer Ethernet destination */
	__u8 inner_dst_mac[6];
	__be16 src_port;     /* 0: derived from the inner flow */
	__u32 underlay_ifindex;
	__u32 overlay_ifindex;
	__u32 reserved;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct tunnel_key);
	__type(value, struct tunnel);
	__uint(max_entries, 1024); /* tunmux load encap --max-entries */
} tunnels SEC(".maps");

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

#define ENCAP_UDP_LEN (sizeof(struct ethhdr) + sizeof(struct iphdr) + sizeof(struct udphdr) + 8)
#define ETH_MACS_LEN 12

enum { PARSE_OK = 0, PARSE_NOT_IPV4 = 1, PARSE_MALFORMED = 2 };

/*
 * parse_inner reads the IPv4 pair of an IPv4 or ARP payload of ethertype
 * proto at l3, and a hash of its flow (addresses, protocol, ports).
 */
static __always_inline int parse_inner(__be16 proto, void *l3, void *end,
				       struct tunnel_key *key, __u32 *hash)
{
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *iph = l3;
		__u32 h;

		if ((void *)(iph + 1) > end)
			return PARSE_MALFORMED;
		if (iph->version != 4 || iph->ihl < 5)
			return PARSE_MALFORMED;
		key->inner_src = iph->saddr;
		key->inner_dst = iph->daddr;
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
	if (proto == bpf_htons(ETH_P_ARP)) {
		struct arp_ipv4 *arp = l3;

		if ((void *)(arp + 1) > end)
			return PARSE_MALFORMED;
		if (arp->hrd != bpf_htons(1) || arp->pro != bpf_htons(ETH_P_IP) ||
		    arp->hln != 6 || arp->pln != 4)
			return PARSE_MALFORMED;
		__builtin_memcpy(&key->inner_src, arp->spa, 4);
		__builtin_memcpy(&key->inner_dst, arp->tpa, 4);
		*hash = mix32(key->inner_src ^ mix32(key->inner_dst));
		return PARSE_OK;
	}
	return PARSE_NOT_IPV4;
}

static __always_inline int verdict(enum stat id, __u64 bytes, int action)
{
	count(id, bytes);
	return action;
}

static __always_inline int push_vlan(struct xdp_md *ctx, __u16 vlan_id)
{
	__u8 macs[ETH_MACS_LEN];
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;

	if (data + ETH_MACS_LEN > end)
		return -1;
	__builtin_memcpy(macs, data, ETH_MACS_LEN);
	if (bpf_xdp_adjust_head(ctx, -(int)sizeof(struct vlan_hdr)))
		return -1;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (data + ETH_MACS_LEN + sizeof(struct vlan_hdr) > end)
		return -1;
	__builtin_memcpy(data, macs, ETH_MACS_LEN);
	/* TPID 0x8100, then TCI (PCP 0, DEI 0, VID); the original ethertype
	 * now follows the tag. */
	__be16 *tag = data + ETH_MACS_LEN;

	tag[0] = bpf_htons(ETH_P_8021Q);
	tag[1] = bpf_htons(vlan_id & 0x0fff);
	return 0;
}

static __always_inline int push_udp(struct xdp_md *ctx, const struct tunnel *t,
				    __be16 sport, __u32 inner_len)
{
	void *data, *end;

	if (bpf_xdp_adjust_head(ctx, -(int)ENCAP_UDP_LEN))
		return -1;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (data + ENCAP_UDP_LEN > end)
		return -1;

	struct ethhdr *eth = data;
	struct iphdr *iph = (void *)(eth + 1);
	struct udphdr *udp = (void *)(iph + 1);
	void *th = udp + 1;

	__builtin_memcpy(eth->h_dest, t->dst_mac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, t->src_mac, ETH_ALEN);
	eth->h_proto = bpf_htons(ETH_P_IP);

	iph->version = 4;
	iph->ihl = 5;
	iph->tos = 0;
	iph->tot_len = bpf_htons(inner_len + ENCAP_UDP_LEN - sizeof(struct ethhdr));
	iph->id = 0;                     /* atomic datagram (RFC 6864): DF set */
	iph->frag_off = bpf_htons(0x4000);
	iph->ttl = 64;
	iph->protocol = IPPROTO_UDP;
	iph->check = 0;
	iph->saddr = t->outer_src;
	iph->daddr = t->outer_dst;
	iph->check = ipv4_csum(iph);

	udp->source = sport;
	udp->len = bpf_htons(inner_len + sizeof(struct udphdr) + 8);
	udp->check = 0; /* allowed for IPv4 (RFC 768); the kernel's vxlan does the same */

	if (t->proto == PROTO_GENEVE) {
		struct geneve_hdr *gh = th;

		udp->dest = bpf_htons(GENEVE_PORT);
		gh->ver_optlen = 0;
		gh->flags = 0;
		gh->proto = bpf_htons(ETH_P_TEB);
		gh->vni[0] = t->vni >> 16;
		gh->vni[1] = t->vni >> 8;
		gh->vni[2] = t->vni;
		gh->reserved = 0;
	} else {
		struct vxlan_hdr *vh = th;

		udp->dest = bpf_htons(VXLAN_PORT);
		vh->flags = bpf_htonl(VXLAN_F_VNI);
		vh->vni = bpf_htonl(t->vni << 8);
	}
	return 0;
}

SEC("xdp")
int encap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u64 len = end - data;
	struct ethhdr *eth = data;
	struct tunnel_key key;
	struct tunnel *t;
	__u32 hash = 0, mtu = 0;
	int ret;

	if ((void *)(eth + 1) > end)
		return verdict(S_ENCAP__PASS_MALFORMED, len, XDP_PASS);
	ret = parse_inner(eth->h_proto, eth + 1, end, &key, &hash);
	if (ret == PARSE_NOT_IPV4)
		return verdict(S_ENCAP__PASS_NOT_IPV4, len, XDP_PASS);
	if (ret != PARSE_OK)
		return verdict(S_ENCAP__PASS_MALFORMED, len, XDP_PASS);

	t = bpf_map_lookup_elem(&tunnels, &key);
	if (!t)
		return verdict(S_ENCAP__PASS_NO_TUNNEL, len, XDP_PASS);

	/* The growth must fit the underlay's MTU (a VLAN tag is not counted
	 * against it, as Ethernet allows the tag on top of the MTU). */
	if (bpf_check_mtu(ctx, t->underlay_ifindex, &mtu,
			  t->proto == PROTO_VLAN ? 0 : (int)ENCAP_UDP_LEN, 0))
		return verdict(S_ENCAP__DROP_TOO_BIG, len, XDP_DROP);

	/* Choose the slot first: on a miss nothing has been changed yet. */
	if (bpf_redirect_map(&devmap, t->underlay_ifindex, XDP_PASS) != XDP_REDIRECT)
		return verdict(S_ENCAP__PASS_NO_SLOT, len, XDP_PASS);

	if ((t->flags & TUNNEL_F_INNER_DMAC) && !(eth->h_dest[0] & 1))
		__builtin_memcpy(eth->h_dest, t->inner_dst_mac, ETH_ALEN);

	if (t->proto == PROTO_VLAN) {
		if (push_vlan(ctx, t->vlan_id))
			return verdict(S_ENCAP__DROP_ERROR, len, XDP_DROP);
		return verdict(S_ENCAP__VLAN, len + sizeof(struct vlan_hdr), XDP_REDIRECT);
	}

	__be16 sport = t->src_port ? t->src_port : bpf_htons(flow_src_port(hash));

	if (push_udp(ctx, t, sport, len))
		return verdict(S_ENCAP__DROP_ERROR, len, XDP_DROP);
	return verdict(t->proto == PROTO_GENEVE ? S_ENCAP__GENEVE : S_ENCAP__VXLAN,
		       len + ENCAP_UDP_LEN, XDP_REDIRECT);
}

/* lookup_for_decap finds the tunnel of a received inner frame and checks it. */
static __always_inline struct tunnel *lookup_for_decap(__be16 proto, void *l3, void *end,
						       enum stat *why)
{
	struct tunnel_key key, swapped;
	__u32 hash;
	int ret = parse_inner(proto, l3, end, &key, &hash);

	if (ret != PARSE_OK) {
		*why = ret == PARSE_NOT_IPV4 ? S_DECAP__PASS_INNER_NOT_IPV4 : S_DECAP__PASS_MALFORMED;
		return NULL;
	}
	swapped.inner_src = key.inner_dst;
	swapped.inner_dst = key.inner_src;
	struct tunnel *t = bpf_map_lookup_elem(&tunnels, &swapped);

	if (!t)
		*why = S_DECAP__PASS_NO_TUNNEL;
	return t;
}

static __always_inline int decap_vlan(struct xdp_md *ctx, struct vlan_hdr *vh, void *end,
				      __u64 len)
{
	enum stat why = S_DECAP__PASS_MALFORMED;
	struct tunnel *t;
	__u8 macs[ETH_MACS_LEN];
	void *data;

	if ((void *)(vh + 1) > end)
		return verdict(S_DECAP__PASS_MALFORMED, len, XDP_PASS);
	if (vh->proto == bpf_htons(ETH_P_8021Q) || vh->proto == bpf_htons(ETH_P_8021AD))
		return verdict(S_DECAP__PASS_STACKED_VLAN, len, XDP_PASS);

	t = lookup_for_decap(vh->proto, vh + 1, end, &why);
	if (!t)
		return verdict(why, len, XDP_PASS);
	if (t->proto != PROTO_VLAN || t->vlan_id != (bpf_ntohs(vh->tci) & 0x0fff))
		return verdict(S_DECAP__PASS_MISMATCH, len, XDP_PASS);
	if (bpf_redirect_map(&devmap, t->overlay_ifindex, XDP_PASS) != XDP_REDIRECT)
		return verdict(S_DECAP__PASS_NO_SLOT, len, XDP_PASS);

	data = (void *)(long)ctx->data;
	if (data + ETH_MACS_LEN > end)
		return verdict(S_DECAP__DROP_ERROR, len, XDP_DROP);
	__builtin_memcpy(macs, data, ETH_MACS_LEN);
	if (bpf_xdp_adjust_head(ctx, (int)sizeof(struct vlan_hdr)))
		return verdict(S_DECAP__DROP_ERROR, len, XDP_DROP);
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (data + ETH_MACS_LEN > end)
		return verdict(S_DECAP__DROP_ERROR, len, XDP_DROP);
	__builtin_memcpy(data, macs, ETH_MACS_LEN);
	return verdict(S_DECAP__VLAN, len - sizeof(struct vlan_hdr), XDP_REDIRECT);
}

SEC("xdp")
int decap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u64 len = end - data;
	struct ethhdr *eth = data;
	enum stat why = S_DECAP__PASS_MALFORMED;
	struct tunnel *t;
	__u8 proto, critical = 0;
	__u32 vni, hlen, tot, ulen, outer_len;

	if ((void *)(eth + 1) > end)
		return verdict(S_DECAP__PASS_MALFORMED, len, XDP_PASS);
	if (eth->h_proto == bpf_htons(ETH_P_8021Q))
		return decap_vlan(ctx, (void *)(eth + 1), end, len);
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return verdict(S_DECAP__PASS_NOT_TUNNEL, len, XDP_PASS);

	struct iphdr *iph = (void *)(eth + 1);

	if ((void *)(iph + 1) > end)
		return verdict(S_DECAP__PASS_MALFORMED, len, XDP_PASS);
	if (iph->version != 4 || iph->ihl < 5)
		return verdict(S_DECAP__PASS_MALFORMED, len, XDP_PASS);
	if (iph->protocol != IPPROTO_UDP)
		return verdict(S_DECAP__PASS_NOT_TUNNEL, len, XDP_PASS);
	if (iph->frag_off & bpf_htons(0x3fff))
		return verdict(S_DECAP__PASS_FRAGMENT, len, XDP_PASS);

	hlen = (iph->ihl & 0xf) << 2;
	struct udphdr *udp = (void *)iph + hlen;

	if ((void *)(udp + 1) > end)
		return verdict(S_DECAP__PASS_MALFORMED, len, XDP_PASS);
	if (udp->dest == bpf_htons(GENEVE_PORT))
		proto = PROTO_GENEVE;
	else if (udp->dest == bpf_htons(VXLAN_PORT))
		proto = PROTO_VXLAN;
	else
		return verdict(S_DECAP__PASS_NOT_TUNNEL, len, XDP_PASS);

	/* The datagram must be whole, and the UDP length inside it. */
	tot = bpf_ntohs(iph->tot_len);
	ulen = bpf_ntohs(udp->len);
	if (tot + sizeof(struct ethhdr) > len || ulen + hlen > tot ||
	    ulen < sizeof(struct udphdr) + 8 + sizeof(struct ethhdr))
		return verdict(S_DECAP__PASS_MALFORMED, len, XDP_PASS);

	void *th = udp + 1;
	void *inner;

	if (proto == PROTO_GENEVE) {
		struct geneve_hdr *gh = th;

		if ((void *)(gh + 1) > end)
			return verdict(S_DECAP__PASS_MALFORMED, len, XDP_PASS);
		if (gh->ver_optlen >> 6)
			return verdict(S_DECAP__PASS_MALFORMED, len, XDP_PASS);
		if (gh->flags & GENEVE_F_OAM)
			return verdict(S_DECAP__PASS_OAM, len, XDP_PASS);
		if (gh->proto != bpf_htons(ETH_P_TEB))
			return verdict(S_DECAP__PASS_NOT_TUNNEL, len, XDP_PASS);
		critical = gh->flags & GENEVE_F_CRITICAL;
		vni = ((__u32)gh->vni[0] << 16) | ((__u32)gh->vni[1] << 8) | gh->vni[2];
		inner = (void *)(gh + 1) + ((gh->ver_optlen & 0x3f) << 2);
	} else {
		struct vxlan_hdr *vh = th;

		if ((void *)(vh + 1) > end)
			return verdict(S_DECAP__PASS_MALFORMED, len, XDP_PASS);
		if (!(vh->flags & bpf_htonl(VXLAN_F_VNI)))
			return verdict(S_DECAP__PASS_MALFORMED, len, XDP_PASS);
		vni = bpf_ntohl(vh->vni) >> 8;
		inner = vh + 1;
	}

	struct ethhdr *ieth = inner;

	if ((void *)(ieth + 1) > end)
		return verdict(S_DECAP__PASS_MALFORMED, len, XDP_PASS);
	t = lookup_for_decap(ieth->h_proto, ieth + 1, end, &why);
	if (!t)
		return verdict(why, len, XDP_PASS);
	if (t->proto != proto || t->vni != vni || t->outer_src != iph->daddr)
		return verdict(S_DECAP__PASS_MISMATCH, len, XDP_PASS);
	if (critical)
		return verdict(S_DECAP__DROP_CRITICAL_OPT, len, XDP_DROP);
	if (bpf_redirect_map(&devmap, t->overlay_ifindex, XDP_PASS) != XDP_REDIRECT)
		return verdict(S_DECAP__PASS_NO_SLOT, len, XDP_PASS);

	outer_len = inner - data;
	/* Drop Ethernet padding behind the datagram, then the outer headers. */
	if (len > tot + sizeof(struct ethhdr) &&
	    bpf_xdp_adjust_tail(ctx, -(int)(len - tot - sizeof(struct ethhdr))))
		return verdict(S_DECAP__DROP_ERROR, len, XDP_DROP);
	if (bpf_xdp_adjust_head(ctx, (int)outer_len))
		return verdict(S_DECAP__DROP_ERROR, len, XDP_DROP);
	return verdict(proto == PROTO_GENEVE ? S_DECAP__GENEVE : S_DECAP__VXLAN,
		       tot + sizeof(struct ethhdr) - outer_len, XDP_REDIRECT);
}

/* redirect: MPTM's plain redirect, through the slot keyed by the ingress interface. */
SEC("xdp")
int redirect(struct xdp_md *ctx)
{
	__u64 len = ctx->data_end - ctx->data;

	if (bpf_redirect_map(&devmap, ctx->ingress_ifindex, XDP_PASS) != XDP_REDIRECT)
		return verdict(S_REDIRECT__PASS_NO_SLOT, len, XDP_PASS);
	return verdict(S_REDIRECT__OUT, len, XDP_REDIRECT);
}

/* pass: attached to the veth peer of a redirect target, so that redirected
 * frames are received (a veth drops XDP frames whose peer runs no XDP). */
SEC("xdp")
int pass(struct xdp_md *ctx)
{
	return verdict(S_PASS__PASS, ctx->data_end - ctx->data, XDP_PASS);
}
