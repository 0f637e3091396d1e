/* SPDX-License-Identifier: (MIT OR GPL-2.0) */
/*
 * csum.h: what the tunnel programs share to put a UDP checksum on an outer
 * IPv6 header, and to size a GSO packet's segments. Include after tunmux.h,
 * proto.h and <linux/ipv6.h>; it defines the per-CPU map "scratch".
 */
#ifndef TUNMUX_CSUM_H
#define TUNMUX_CSUM_H

#define CSUM_CHUNK 512

/* Scratch space for summing packet bytes a chunk at a time. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u8[CSUM_CHUNK]);
	__uint(max_entries, 1);
} scratch SEC(".maps");

struct csum_ctx {
	void *ctx; /* struct xdp_md or struct __sk_buff */
	int xdp;
	__u32 off;
	__u32 end;
	__s64 sum;
};

static long csum_chunk(__u32 i, struct csum_ctx *c)
{
	__u32 zero = 0, off = c->off + i * CSUM_CHUNK, n, padded;
	__u8 *buf;
	long err;

	if (off >= c->end)
		return 1;
	n = c->end - off;
	if (n > CSUM_CHUNK)
		n = CSUM_CHUNK;
	buf = bpf_map_lookup_elem(&scratch, &zero);
	if (!buf)
		return 1;
	padded = (n + 3) & ~3U;
	if (padded > CSUM_CHUNK || n == 0)
		return 1;
	/* Zero the last word first: an odd tail is padded with zero bytes. */
	*(__u32 *)(buf + ((padded - 4) & (CSUM_CHUNK - 4))) = 0;
	if (c->xdp)
		err = bpf_xdp_load_bytes(c->ctx, off, buf, n);
	else
		err = bpf_skb_load_bytes(c->ctx, off, buf, n);
	if (err)
		return 1;
	c->sum = bpf_csum_diff(NULL, 0, (void *)buf, padded, c->sum);
	return 0;
}

/* The UDP checksum of an IPv6 datagram of udp_len bytes whose UDP header
 * (checksum 0) is at udp_off: the pseudo-header, the bytes from udp_off to
 * sum_end, and extra, the one's complement sum of what lies beyond sum_end
 * (0 when sum_end is the datagram's end). */
static __always_inline __u16 udp6_csum(void *ctx, int xdp, const struct ipv6hdr *ip6, __u32 udp_off,
				       __u32 sum_end, __u32 udp_len, __u16 extra)
{
	struct {
		struct in6_addr src, dst;
		__be32 len;
		__be32 next;
	} pseudo = {};
	struct csum_ctx c = { .ctx = ctx, .xdp = xdp, .off = udp_off, .end = sum_end };

	__builtin_memcpy(&pseudo.src, &ip6->saddr, 16);
	__builtin_memcpy(&pseudo.dst, &ip6->daddr, 16);
	pseudo.len = bpf_htonl(udp_len);
	pseudo.next = bpf_htonl(IPPROTO_UDP);
	c.sum = bpf_csum_diff(NULL, 0, (void *)&pseudo, sizeof(pseudo), 0);
	bpf_loop((sum_end - udp_off + CSUM_CHUNK - 1) / CSUM_CHUNK, csum_chunk, &c, 0);
	__u64 s = (__u64)(__u32)c.sum + extra;
	__u16 sum = csum_fold((__u32)((s & 0xffffffff) + (s >> 32)));

	return sum ? sum : 0xffff;
}

/*
 * How a single packet's outer IPv6 UDP checksum is made. At TC the inner TCP
 * or UDP checksum may not be filled in yet: a sender that offloads it leaves
 * the device (or the kernel, before a device that cannot) to fill it in after
 * the program ran.
 */
enum csum_plan {
	CSUM_FULL, /* sum everything: the inner bytes are final (non-IP, ICMP,
		    * fragments, UDP without checksum, trailing padding) */
	CSUM_LCO,  /* sum the headers up to the inner L4 header and add the
		    * complement of the inner pseudo-header's sum: what the finished
		    * inner segment sums to, filled in or not (the kernel's local
		    * checksum offload, lco_csum) */
	CSUM_ZERO, /* leave it 0 (RFC 6935/6936): an inner protocol whose bytes
		    * may still change and that we do not parse (SCTP, IPv6
		    * extension headers) */
};

struct inner_csum {
	__u32 plan;
	__u32 l4;    /* offset of the inner L4 header from the inner frame's start */
	__u16 extra; /* CSUM_LCO: the complement of the inner pseudo-header's sum */
};

/* plan_csum plans the outer checksum for the inner frame of frame_len bytes
 * at off in skb, whose ethertype is proto. */
static __always_inline void plan_csum(struct __sk_buff *skb, __be16 proto, __u32 off, __u32 frame_len,
				      struct inner_csum *ic)
{
	ic->plan = CSUM_FULL;
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr iph;
		struct {
			__be32 src, dst;
			__u8 zero, proto;
			__be16 len;
		} ph = {};
		__u32 ihl;
		__u16 check;

		if (bpf_skb_load_bytes(skb, off + ETH_HLEN, &iph, sizeof(iph)) ||
		    (iph.frag_off & bpf_htons(0x3fff)) || iph.protocol == IPPROTO_ICMP ||
		    ETH_HLEN + bpf_ntohs(iph.tot_len) != frame_len)
			return;
		if (iph.protocol != IPPROTO_TCP && iph.protocol != IPPROTO_UDP) {
			ic->plan = CSUM_ZERO;
			return;
		}
		ihl = (iph.ihl & 0xf) << 2;
		if (iph.protocol == IPPROTO_UDP &&
		    (bpf_skb_load_bytes(skb, off + ETH_HLEN + ihl + 6, &check, 2) || check == 0))
			return; /* no checksum: not offloaded either */
		ph.src = iph.saddr;
		ph.dst = iph.daddr;
		ph.proto = iph.protocol;
		ph.len = bpf_htons(bpf_ntohs(iph.tot_len) - ihl);
		ic->extra = csum_fold((__u32)bpf_csum_diff(NULL, 0, (void *)&ph, sizeof(ph), 0));
		ic->l4 = ETH_HLEN + ihl;
		ic->plan = CSUM_LCO;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;
		struct {
			struct in6_addr src, dst;
			__be32 len;
			__be32 next;
		} ph = {};

		if (bpf_skb_load_bytes(skb, off + ETH_HLEN, &ip6, sizeof(ip6)) ||
		    ip6.nexthdr == 44 /* a fragment */ ||
		    ETH_HLEN + sizeof(ip6) + bpf_ntohs(ip6.payload_len) != frame_len)
			return;
		if (ip6.nexthdr != IPPROTO_TCP && ip6.nexthdr != IPPROTO_UDP && ip6.nexthdr != IPPROTO_ICMPV6) {
			ic->plan = CSUM_ZERO;
			return;
		}
		__builtin_memcpy(&ph.src, &ip6.saddr, 16);
		__builtin_memcpy(&ph.dst, &ip6.daddr, 16);
		ph.len = bpf_htonl(bpf_ntohs(ip6.payload_len));
		ph.next = bpf_htonl(ip6.nexthdr);
		ic->extra = csum_fold((__u32)bpf_csum_diff(NULL, 0, (void *)&ph, sizeof(ph), 0));
		ic->l4 = ETH_HLEN + sizeof(ip6);
		ic->plan = CSUM_LCO;
	}
}

/* outer_udp6_csum returns the checksum ic planned for the single IPv6 UDP
 * datagram at udp_off of skb, whose inner frame starts at head; 0 for
 * CSUM_ZERO. */
static __always_inline __u16 outer_udp6_csum(struct __sk_buff *skb, const struct ipv6hdr *ip6, __u32 udp_off,
					     __u32 head, const struct inner_csum *ic)
{
	__u32 udp_len = skb->len - udp_off;

	if (ic->plan == CSUM_ZERO)
		return 0;
	if (ic->plan == CSUM_LCO)
		return udp6_csum(skb, 0, ip6, udp_off, head + (ic->l4 & 0xff), udp_len, ic->extra);
	return udp6_csum(skb, 0, ip6, udp_off, skb->len, udp_len, 0);
}

/* Length of the inner IP and transport headers of a GSO frame at off. */
static __always_inline int gso_header_len(struct __sk_buff *skb, __be16 proto, __u32 off, __u32 *len)
{
	__u8 l4proto;
	__u32 l3;

	if (proto == bpf_htons(ETH_P_IP)) {
		__u8 vihl;

		if (bpf_skb_load_bytes(skb, off, &vihl, 1) ||
		    bpf_skb_load_bytes(skb, off + 9, &l4proto, 1))
			return -1;
		l3 = (vihl & 0xf) << 2;
	} else {
		if (bpf_skb_load_bytes(skb, off + 6, &l4proto, 1))
			return -1;
		l3 = sizeof(struct ipv6hdr);
	}
	if (l4proto == IPPROTO_TCP) {
		__u8 doff;

		if (bpf_skb_load_bytes(skb, off + l3 + 12, &doff, 1))
			return -1;
		*len = l3 + ((doff >> 4) << 2);
		return 0;
	}
	if (l4proto == IPPROTO_UDP) {
		*len = l3 + sizeof(struct udphdr);
		return 0;
	}
	return -1;
}

#endif /* TUNMUX_CSUM_H */
