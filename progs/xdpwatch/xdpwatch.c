// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
//go:build ignore
/*
 * xdpwatch: counts, for `tunmux doctor`, the frames the kernel drops after
 * an XDP program chose to redirect them, which no interface counter shows
 * (a veth whose peer has neither GRO nor an XDP program drops them
 * silently). Two BTF tracepoints:
 * - xdp_devmap_xmit: frames a devmap flush could not send, by the target;
 * - xdp_redirect_err: redirects that failed, by the target when they went
 *   through a devmap, else by the receiving interface.
 * Keys carry the interface's namespace (inode), as ifindexes repeat across
 * namespaces. Loaded only while doctor samples; never pinned.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "Dual MIT/GPL";

/* The few kernel fields read, relocated against the running kernel's BTF. */
struct ns_common {
	unsigned int inum;
} __attribute__((preserve_access_index));

struct net {
	struct ns_common ns;
} __attribute__((preserve_access_index));

typedef struct {
	struct net *net;
} possible_net_t;

struct net_device {
	int ifindex;
	possible_net_t nd_net;
} __attribute__((preserve_access_index));

/* A devmap entry: its device comes first. */
struct bpf_dtab_netdev {
	struct net_device *dev;
} __attribute__((preserve_access_index));

enum drop_kind {
	KIND_XMIT_DROP = 1,    /* frames for this interface were not sent */
	KIND_REDIRECT_ERR = 2, /* a redirect from this interface failed (target unknown) */
};

struct drop_key {
	__u64 netns;
	__u32 ifindex;
	__u32 kind;
};

struct drop_count {
	__u64 frames;
	__s64 err; /* the last error */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct drop_key);
	__type(value, struct drop_count);
	__uint(max_entries, 4096);
} drops SEC(".maps");

static __always_inline void add(const struct net_device *dev, __u32 kind, __u64 n, int err)
{
	struct drop_key k = {
		.netns = BPF_CORE_READ(dev, nd_net.net, ns.inum),
		.ifindex = BPF_CORE_READ(dev, ifindex),
		.kind = kind,
	};
	struct drop_count *c = bpf_map_lookup_elem(&drops, &k);

	if (!c) {
		struct drop_count zero = {};

		bpf_map_update_elem(&drops, &k, &zero, BPF_NOEXIST);
		c = bpf_map_lookup_elem(&drops, &k);
		if (!c)
			return;
	}
	__sync_fetch_and_add(&c->frames, n);
	c->err = err;
}

SEC("tp_btf/xdp_devmap_xmit")
int BPF_PROG(devmap_xmit, const struct net_device *from_dev, const struct net_device *to_dev, int sent, int dropped, int err)
{
	if (dropped > 0)
		add(to_dev, KIND_XMIT_DROP, dropped, err);
	return 0;
}

SEC("tp_btf/xdp_redirect_err")
int BPF_PROG(redirect_err, const struct net_device *dev, const void *xdp, const void *tgt, int err, int map_type)
{
	/* Through a devmap, the target is known: count it there. */
	if ((map_type == BPF_MAP_TYPE_DEVMAP || map_type == BPF_MAP_TYPE_DEVMAP_HASH) && tgt) {
		const struct net_device *to = BPF_CORE_READ((const struct bpf_dtab_netdev *)tgt, dev);

		if (to) {
			add(to, KIND_XMIT_DROP, 1, err);
			return 0;
		}
	}
	add(dev, KIND_REDIRECT_ERR, 1, err);
	return 0;
}
