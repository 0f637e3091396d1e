/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/* proto.h: wire headers that the kernel's UAPI does not define for BPF. */
#ifndef TUNMUX_PROTO_H
#define TUNMUX_PROTO_H

#include <linux/types.h>

#define GENEVE_PORT 6081
#define VXLAN_PORT 4789
#define ETH_P_TEB 0x6558 /* transparent Ethernet bridging, GENEVE's payload type */

/* 802.1Q tag, after the MAC addresses. */
struct vlan_hdr {
	__be16 tci;
	__be16 proto; /* encapsulated ethertype */
};

/* ARP for IPv4 over Ethernet (RFC 826): 28 bytes, addresses unaligned. */
struct arp_ipv4 {
	__be16 hrd;
	__be16 pro;
	__u8 hln;
	__u8 pln;
	__be16 op;
	__u8 sha[6];
	__u8 spa[4];
	__u8 tha[6];
	__u8 tpa[4];
};

/* GENEVE base header (RFC 8926), followed by opt_len * 4 bytes of options. */
struct geneve_hdr {
	__u8 ver_optlen; /* version (2 bits), option length in 4-byte words (6 bits) */
	__u8 flags;      /* O (0x80): control packet; C (0x40): critical options present */
	__be16 proto;
	__u8 vni[3];
	__u8 reserved;
};

#define GENEVE_F_OAM 0x80
#define GENEVE_F_CRITICAL 0x40

/* VXLAN header (RFC 7348). */
struct vxlan_hdr {
	__be32 flags; /* 0x08000000: the VNI is valid */
	__be32 vni;   /* VNI in the upper 24 bits */
};

#define VXLAN_F_VNI 0x08000000

#endif /* TUNMUX_PROTO_H */
