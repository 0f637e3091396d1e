/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * observe.h: the observed build of a dataplane, for `tunmux capture` and
 * `tunmux monitor`.
 *
 * Every dataplane is compiled twice from one source: the plain build, which
 * `tunmux load` pins and attaches, and the observed build (-DTUNMUX_OBSERVE),
 * which nothing loads until a capture or monitor starts. That command loads
 * the observed programs over the pinned maps, moves the links it watches to
 * them (bpf_link_update, atomic per link) and moves them back when it ends.
 * So a program pays nothing for being observable: with no capture running
 * it is the plain build, without a single added instruction.
 *
 * An observed program reports to user space through a perf event array
 * (observe_events) what observe_config asks for:
 * - OBSERVE_ENTRY: each frame as it arrives, before the program acts;
 * - OBSERVE_EXIT: each frame as the program leaves it, with the outcome
 *   counted for it (the enum stat value), the action and where it was
 *   redirected;
 * - OBSERVE_EVENTS: one event per frame whose outcome is in the outcomes
 *   mask, with the first event_snaplen bytes, rate-limited per CPU (a token
 *   bucket) with a count of the events suppressed.
 * Each record starts with struct observe_event; the frame's bytes follow
 * (the helper copies them from the context). A full perf buffer loses the
 * record, never the frame: the datapath does not wait for user space.
 *
 * Programs are declared with XDP_PROGRAM(name, ctx) / TC_PROGRAM(name, skb)
 * followed by the body; the redirect helpers are wrapped so that the
 * observed build notes each redirect's target, and count() notes the
 * outcome.
 */
#ifndef TUNMUX_OBSERVE_H
#define TUNMUX_OBSERVE_H

#ifndef TUNMUX_OBSERVE

/* The plain build: the program is its body. */
#define PROGRAM(sec, ctxtype, name, arg)                         \
	static __always_inline int name##_program(ctxtype *arg); \
	SEC(sec) int name(ctxtype *arg)                          \
	{                                                        \
		return name##_program(arg);                      \
	}                                                        \
	static __always_inline int name##_program(ctxtype *arg)

#define observe_outcome(id) do { } while (0)
#define observe_aux(x) do { } while (0)

#else /* TUNMUX_OBSERVE */

#define OBSERVE_ENTRY  (1U << 0)
#define OBSERVE_EXIT   (1U << 1)
#define OBSERVE_EVENTS (1U << 2)

/* What the observing command asks for (one entry, written by it). */
struct observe_config {
	__u32 flags;         /* OBSERVE_* */
	__u32 ifindex;       /* only frames arriving on this interface; 0: all */
	__u32 snaplen;       /* bytes kept of a captured frame */
	__u32 event_snaplen; /* bytes kept with an event */
	__u64 outcomes[2];   /* events: the enum stat values that make one (bits) */
	__u64 rate;          /* events: per second per CPU */
	__u64 burst;         /* events: most at once per CPU */
	__u32 owner;         /* pid of the observing command */
	__u32 reserved;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct observe_config);
	__uint(max_entries, 1);
} observe_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
} observe_events SEC(".maps");

/* What a record reports; the frame's cap_len bytes follow it. */
struct observe_event {
	__u64 time_ns;     /* bpf_ktime_get_ns (CLOCK_MONOTONIC) */
	__u32 ifindex;     /* the interface the frame arrived on (TC: skb->ifindex) */
	__u32 pkt_len;     /* the frame's length */
	__u32 cap_len;     /* bytes that follow */
	__u32 action;      /* exit and events: the program's return value */
	__u32 target;      /* exit and events: where it was redirected (target_kind) */
	__u32 aux;         /* exit and events: the dataplane's own (session id, nexthop) */
	__u32 suppressed;  /* events: events this CPU left out since the last one */
	__u16 stat;        /* exit and events: the outcome counted; 0xffff none */
	__u8 where;        /* OBSERVE_ENTRY, OBSERVE_EXIT or OBSERVE_EVENTS */
	__u8 target_kind;  /* 0 none, 1 an ifindex, 2 a key of the dataplane's devmap */
	__u8 target_flags; /* BPF_F_INGRESS, and 0x80 for bpf_redirect_peer, 0x40 neigh */
	__u8 pad[7];
	char prog[16];     /* the program's name */
};

#define OBSERVE_NO_STAT 0xffff
#define TARGET_IFINDEX 1
#define TARGET_DEVMAP_KEY 2
#define TARGET_PEER 0x80
#define TARGET_NEIGH 0x40

/* Per CPU: the record being built for the frame in flight, and the event
 * rate limiter's state. */
struct observe_scratch {
	struct observe_event ev;
	__u64 tokens;   /* events allowed now, in billionths */
	__u64 last_ns;  /* when tokens was last filled */
	__u32 suppressed;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct observe_scratch);
	__uint(max_entries, 1);
} observe_scratch SEC(".maps");

static __always_inline struct observe_scratch *observe_state(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&observe_scratch, &zero);
}

/* observe_outcome notes the outcome counted for the frame in flight. */
static __always_inline void observe_outcome(__u32 id)
{
	struct observe_scratch *s = observe_state();

	if (s)
		s->ev.stat = id;
}

/* observe_aux notes the dataplane's own detail (session id, nexthop id). */
static __always_inline void observe_aux(__u32 x)
{
	struct observe_scratch *s = observe_state();

	if (s)
		s->ev.aux = x;
}

static __always_inline void observe_target(__u32 target, __u8 kind, __u8 flags)
{
	struct observe_scratch *s = observe_state();

	if (s) {
		s->ev.target = target;
		s->ev.target_kind = kind;
		s->ev.target_flags = flags;
	}
}

/* The redirect helpers, noting their targets first. */
#define bpf_redirect(i, f) \
	({ __u32 __t = (i); __u64 __f = (f); observe_target(__t, TARGET_IFINDEX, __f & BPF_F_INGRESS); (bpf_redirect)(__t, __f); })
#define bpf_redirect_peer(i, f) \
	({ __u32 __t = (i); observe_target(__t, TARGET_IFINDEX, TARGET_PEER); (bpf_redirect_peer)(__t, f); })
#define bpf_redirect_neigh(i, p, l, f) \
	({ __u32 __t = (i); observe_target(__t, TARGET_IFINDEX, TARGET_NEIGH); (bpf_redirect_neigh)(__t, p, l, f); })
#define bpf_redirect_map(m, k, f) \
	({ __u32 __t = (k); observe_target(__t, TARGET_DEVMAP_KEY, 0); (bpf_redirect_map)(m, __t, f); })

static __always_inline __u32 observe_len_xdp(struct xdp_md *ctx) { return ctx->data_end - ctx->data; }
static __always_inline __u32 observe_len_skb(struct __sk_buff *skb) { return skb->len; }
static __always_inline __u32 observe_ifindex_xdp(struct xdp_md *ctx) { return ctx->ingress_ifindex; }
static __always_inline __u32 observe_ifindex_skb(struct __sk_buff *skb) { return skb->ifindex; }

#define observe_len(ctx) _Generic((ctx), struct xdp_md *: observe_len_xdp, struct __sk_buff *: observe_len_skb)(ctx)
#define observe_ifindex(ctx) _Generic((ctx), struct xdp_md *: observe_ifindex_xdp, struct __sk_buff *: observe_ifindex_skb)(ctx)

/* observe_send copies the record and up to snaplen bytes of the frame. */
#define observe_send(ctx, s, where_, snaplen)                                          \
	({                                                                               \
		__u32 __len = observe_len(ctx);                                         \
		__u32 __cap = __len < (snaplen) ? __len : (snaplen);                    \
		(s)->ev.where = (where_);                                               \
		(s)->ev.pkt_len = __len;                                                \
		(s)->ev.cap_len = __cap;                                                \
		(s)->ev.time_ns = bpf_ktime_get_ns();                                   \
		bpf_perf_event_output(ctx, &observe_events,                             \
				      BPF_F_CURRENT_CPU | ((__u64)__cap << 32),         \
				      &(s)->ev, sizeof((s)->ev));                        \
	})

/* observe_allow takes a token from this CPU's bucket: 1 if the event may go. */
static __always_inline int observe_allow(struct observe_scratch *s, const struct observe_config *c)
{
	__u64 now = bpf_ktime_get_ns();
	__u64 cap = c->burst * 1000000000ULL;
	__u64 gap = now - s->last_ns;
	__u64 t;

	if (gap > 10000000000ULL) /* 10 s refill a bucket of up to 10 s's worth */
		gap = 10000000000ULL;
	t = s->tokens + gap * c->rate;

	s->last_ns = now;
	if (t > cap)
		t = cap;
	if (t < 1000000000ULL) {
		s->tokens = t;
		s->suppressed++;
		return 0;
	}
	s->tokens = t - 1000000000ULL;
	return 1;
}

#define observe_begin(ctx, name)                                                  \
	({                                                                         \
		__u32 __zero = 0;                                                 \
		struct observe_config *__c = bpf_map_lookup_elem(&observe_config, &__zero); \
		struct observe_scratch *__s = observe_state();                   \
		if (__c && __s) {                                                 \
			__builtin_memcpy(__s->ev.prog, name, sizeof(name) < 16 ? sizeof(name) : 16); \
			__s->ev.ifindex = observe_ifindex(ctx);                   \
			__s->ev.stat = OBSERVE_NO_STAT;                            \
			__s->ev.action = 0;                                        \
			__s->ev.target = 0;                                        \
			__s->ev.target_kind = 0;                                   \
			__s->ev.target_flags = 0;                                  \
			__s->ev.aux = 0;                                           \
			__s->ev.suppressed = 0;                                    \
			if ((__c->flags & OBSERVE_ENTRY) &&                        \
			    (!__c->ifindex || __c->ifindex == __s->ev.ifindex))    \
				observe_send(ctx, __s, OBSERVE_ENTRY, __c->snaplen & 0xffff); \
		}                                                                 \
	})

#define observe_end(ctx, ret)                                                     \
	({                                                                         \
		__u32 __zero = 0;                                                 \
		struct observe_config *__c = bpf_map_lookup_elem(&observe_config, &__zero); \
		struct observe_scratch *__s = observe_state();                   \
		if (__c && __s && (!__c->ifindex || __c->ifindex == __s->ev.ifindex)) { \
			__u32 __st = __s->ev.stat;                                 \
			__s->ev.action = (ret);                                    \
			if (__c->flags & OBSERVE_EXIT)                             \
				observe_send(ctx, __s, OBSERVE_EXIT, __c->snaplen & 0xffff); \
			if ((__c->flags & OBSERVE_EVENTS) && __st < 128 &&          \
			    (__c->outcomes[(__st >> 6) & 1] >> (__st & 63) & 1) &&  \
			    observe_allow(__s, __c)) {                             \
				__s->ev.suppressed = __s->suppressed;              \
				__s->suppressed = 0;                               \
				observe_send(ctx, __s, OBSERVE_EVENTS, __c->event_snaplen & 0xffff); \
			}                                                          \
		}                                                                 \
	})

/* The observed build: the program between the two observation points. */
#define PROGRAM(sec, ctxtype, name, arg)                         \
	static __always_inline int name##_program(ctxtype *arg); \
	SEC(sec) int name(ctxtype *arg)                          \
	{                                                        \
		observe_begin(arg, #name);                       \
		int __ret = name##_program(arg);                 \
		observe_end(arg, __ret);                         \
		return __ret;                                    \
	}                                                        \
	static __always_inline int name##_program(ctxtype *arg)

#endif /* TUNMUX_OBSERVE */

/* XDP_PROGRAM(name, arg) { body }: the XDP program name, whose context is arg. */
#define XDP_PROGRAM(name, arg) PROGRAM("xdp", struct xdp_md, name, arg)
/* TC_PROGRAM(name, arg) { body }: the TC program name, whose skb is arg. */
#define TC_PROGRAM(name, arg) PROGRAM("tc", struct __sk_buff, name, arg)

#endif /* TUNMUX_OBSERVE_H */
