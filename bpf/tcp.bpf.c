// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* tcp family: connection lifecycle, payload bytes and retransmits per (cgroup, direction).
 *
 * Lifecycle comes from one handler behind four entry points (tp_btf and raw tracepoint
 * sock/inet_sock_set_state, fentry and kprobe on tcp_set_state); the agent keeps one and disables
 * the others' autoload. Bytes: each established socket has a record of what it already added to
 * tcp_stats; when it closes, the payload it carried beyond that is added, and at scrape time an
 * iterator folds the still-open sockets the same way, so a byte is added once. Retransmitted segments
 * of established sockets are folded the same way from the kernel's own per-socket count; those
 * before establishment (SYN, SYN-ACK) come from the tcp_retransmit_skb / tcp_retransmit_synack
 * tracepoints (tp_btf, else raw tracepoints).
 *
 * The record lives in one of two places, chosen by the agent at start-up:
 * - socket storage (tcp_sk, BPF_MAP_TYPE_SK_STORAGE), for the BTF-typed handlers (tp_btf, fentry):
 *   the record is found from the socket itself, and one iter/bpf_sk_storage_map walk visits exactly
 *   the tracked sockets of every network namespace. That iterator does not hold the socket lock, so
 *   folds claim bytes with compare-and-swap and read the counters with the care fold_unlocked()
 *   describes.
 * - the tcp_conns hash keyed by (netns, 4-tuple), for every variant: the iter/tcp program folds under
 *   the socket lock, one walk of the kernel's TCP hash per network namespace.
 *
 * Attribution always uses the socket's own cgroup (sk_cgrp_data): a passive open completes in
 * softirq context, where the current task is whoever the CPU happened to be running. */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "podsight.bpf.h"
#include "tcp.h"

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536); /* set from programs.tcp.max_connections before load */
	/* memory follows the connections a node really has, not the bound (the agent preallocates it
	 * where the kernel warns about allocating maps in kprobe and raw tracepoint programs) */
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct tcp_conn_key);
	__type(value, struct tcp_conn);
} tcp_conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16384); /* set from programs.tcp.max_entries before load */
	/* BPF_F_NO_PREALLOC added before load where the kernel allows it (programs::allocate_on_use),
	 * as for tcp_remote_stats; cleared for tcp_conns and tcp_remote_addrs where it does not */
	__type(key, struct tcp_stats_key);
	__type(value, struct tcp_stats);
} tcp_stats SEC(".maps");

/* Remote labels (opt-in): address -> endpoint id, kept by the agent from the Kubernetes API, and
 * counters of outbound connections per (cgroup, endpoint). One slot each unless enabled. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536); /* programs.tcp.remote.max_addresses */
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct tcp_remote_addr);
	__type(value, __u32);
} tcp_remote_addrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384); /* programs.tcp.remote.max_entries */
	__type(key, struct tcp_remote_key);
	__type(value, struct tcp_remote_stats);
} tcp_remote_stats SEC(".maps");

const volatile bool remote_enabled = false;

/* The same records, attached to the socket (fast path). Freed by the kernel with the socket. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct tcp_conn);
} tcp_sk SEC(".maps");

PODSIGHT_MAP_ERRORS(TCP_MAP_NR);

/* Socket storage has no max_entries: the bound (programs.tcp.max_connections) is counted here. */
const volatile __u64 max_sk_conns = 65536;
__u64 sk_conns = 0;
/* Target of the atomic operations fold_unlocked() uses as full memory barriers. */
__u64 iter_fence = 0;

/* Kernels before 5.15 keep the cgroup pointer in a tagged u64 (commit 8520e224f547 "bpf, cgroups:
 * Fix cgroup v2 fallback on v1/v2 mixed mode" replaced the union with a plain pointer). */
struct sock_cgroup_data___old {
	union {
		struct {
			__u8 is_data : 1;
			__u8 no_refcnt : 1;
			__u8 unused : 6;
			__u8 padding;
			__u16 prioidx;
			__u32 classid;
		};
		__u64 val;
	};
} __attribute__((preserve_access_index));

/* Kernels from before sk_flags moved into sock_common (as skc_flags) keep it in struct sock. */
struct sock___flags_old {
	unsigned long sk_flags;
} __attribute__((preserve_access_index));

/* Newer kernels (commit "tcp: add the err to tcp_retransmit_skb tracepoint", present on 6.18) also
 * fire the tracepoint for retransmissions that failed, with err as a third argument; older ones fire it
 * only on success and have no err. The agent reads from the kernel's BTF whether it is there: a CO-RE
 * relocation against the record type, which older kernels name differently, would make libbpf look
 * through module BTF, and listing BTF objects needs CAP_SYS_ADMIN. */
const volatile bool retransmit_err = false;

static __always_inline __u64 sock_cgroup_id(const struct sock *sk)
{
	struct cgroup *cgrp;

	if (bpf_core_field_exists(sk->sk_cgrp_data.cgroup)) {
		cgrp = BPF_CORE_READ(sk, sk_cgrp_data.cgroup);
	} else {
		struct sock_cgroup_data___old *d = (void *)&sk->sk_cgrp_data;
		__u64 v = BPF_CORE_READ(d, val);

		/* bit 0 set: the word holds a net_cls/net_prio id, not a cgroup */
		cgrp = (v & 1) ? NULL : (struct cgroup *)v;
	}
	if (!cgrp)
		return 0;
	return BPF_CORE_READ(cgrp, kn, id);
}

/* The connection's key; false for anything that is not an IPv4/IPv6 TCP socket (MPTCP's parent
 * socket, SCTP, ...). */
static __always_inline bool make_key(const struct sock *sk, struct tcp_conn_key *key)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);

	if (BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol) != IPPROTO_TCP)
		return false;
	key->netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	key->family = family;
	/* Not skc_num: the tracepoint fires at the end of tcp_set_state(TCP_CLOSE), after
	 * inet_put_port() zeroed it; inet_sport keeps the port until the socket is freed. */
	key->lport = bpf_ntohs(BPF_CORE_READ((const struct inet_sock *)sk, inet_sport));
	key->rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	/* Sizes spelled out: BPF_CORE_READ_INTO(key->laddr, ...) would copy sizeof(*key->laddr), one
	 * byte, and two connections differing only in later address bytes would share a key. */
	if (family == AF_INET) {
		bpf_core_read(key->laddr, 4, &sk->__sk_common.skc_rcv_saddr);
		bpf_core_read(key->raddr, 4, &sk->__sk_common.skc_daddr);
		return true;
	}
	if (family == AF_INET6) {
		bpf_core_read(key->laddr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_core_read(key->raddr, 16, &sk->__sk_common.skc_v6_daddr);
		return true;
	}
	return false;
}

/* The stats slot for (cgroup, direction), created on first use; NULL (and counted) if the map is
 * full. */
static __always_inline struct tcp_stats *stats_slot(__u64 cgroup_id, __u8 direction)
{
	struct tcp_stats_key key = { .cgroup_id = cgroup_id, .direction = direction };
	struct tcp_stats zero = {};

	return podsight_lookup_or_insert(&tcp_stats, &key, &zero, &map_errors, TCP_MAP_STATS);
}

/* ---- remote labels (opt-in) ---- */

/* The endpoint id of the socket's remote address, as the socket holds it (the address connect() was
 * given, or what a connect-time load balancer rewrote it to: a service's cluster IP with kube-proxy,
 * the backend pod's IP with socket-level load balancing). */
static __always_inline __u32 remote_of(const struct tcp_conn_key *key)
{
	struct tcp_remote_addr a = {};
	__u32 *id;

	if (key->family == AF_INET) {
		a.addr[10] = 0xff;
		a.addr[11] = 0xff;
		__builtin_memcpy(&a.addr[12], key->raddr, 4);
	} else {
		__builtin_memcpy(a.addr, key->raddr, 16);
	}
	/* 127.0.0.0/8 (IPv4 or IPv4-mapped) and ::1 never leave the network namespace */
	if (((a.addr[10] == 0xff && a.addr[11] == 0xff && a.addr[12] == 127) ||
	     (a.addr[10] == 0 && a.addr[11] == 0 && a.addr[12] == 0 && a.addr[13] == 0 && a.addr[14] == 0 &&
	      a.addr[15] == 1)) &&
	    !(a.addr[0] | a.addr[1] | a.addr[2] | a.addr[3] | a.addr[4] | a.addr[5] | a.addr[6] | a.addr[7] |
	      a.addr[8] | a.addr[9]))
		return TCP_REMOTE_LOCAL;
	id = bpf_map_lookup_elem(&tcp_remote_addrs, &a);
	return id ? *id : TCP_REMOTE_EXTERNAL;
}

static __always_inline struct tcp_remote_stats *remote_slot(__u64 cgroup_id, __u32 remote)
{
	struct tcp_remote_key key = { .cgroup_id = cgroup_id, .remote = remote };
	struct tcp_remote_stats zero = {};

	return podsight_lookup_or_insert(&tcp_remote_stats, &key, &zero, &map_errors, TCP_MAP_REMOTE);
}

/* Payload and retransmissions a fold added, also under the connection's remote endpoint if it is
 * outbound. */
static __always_inline void remote_bytes(const struct tcp_conn *c, __u64 sent, __u64 received, __u64 retrans)
{
	struct tcp_remote_stats *r;

	if (!remote_enabled || c->direction != TCP_DIR_OUTBOUND || (!sent && !received && !retrans))
		return;
	r = remote_slot(c->cgroup_id, c->remote);
	if (!r)
		return; /* counted as a map error; the workload's own counters have the bytes */
	if (sent)
		__sync_fetch_and_add(&r->sent_bytes, sent);
	if (received)
		__sync_fetch_and_add(&r->received_bytes, received);
	if (retrans)
		__sync_fetch_and_add(&r->retransmits, retrans);
}

/* Segments the socket retransmitted since its record was made. The kernel counts them in
 * tcp_sock.total_retrans next to TcpRetransSegs, for every retransmission, whether or not the
 * tcp_retransmit_skb tracepoint reaches our program (it does not always: under load a few in a
 * hundred went missing, with no recursion miss counted). A u32 that only grows: the difference is
 * right across a wrap, and a lockless read sees some value it had. */
static __always_inline __u64 retrans_since(__u32 total_retrans, const struct tcp_conn *c)
{
	return (__u32)(total_retrans - (__u32)c->retrans_base);
}

/* retrans_since() with the count read by bpf_probe_read_kernel (any socket pointer). */
static __always_inline __u64 retrans_of(const struct sock *sk, const struct tcp_conn *c)
{
	return retrans_since(BPF_CORE_READ((const struct tcp_sock *)sk, total_retrans), c);
}

/* Payload bytes of a socket so far, from the u64 RFC 4898 counters (they do not wrap at 4 GiB like
 * sequence numbers) read as `acked` and `rcvd`. bytes_acked is the sum of snd_una advances and
 * bytes_received of rcv_nxt advances, so each also counts the FIN once it is acked / received (and
 * bytes_acked the SYN on the active side, which the baseline taken at ESTABLISHED removes). Our FIN has
 * been queued in exactly the FIN_WAIT1/FIN_WAIT2/CLOSING/LAST_ACK states and, being the last sequence
 * number, is acked when snd_una reaches write_seq; the peer's FIN has been received when tcp_fin() set
 * SOCK_DONE. */
static __always_inline void payload_from(const struct tcp_conn *c, __u8 state, unsigned long flags,
					 bool fin_acked, __u64 acked, __u64 rcvd, __u64 *sent, __u64 *received)
{
	int done_bit = bpf_core_enum_value(enum sock_flags, SOCK_DONE);

	if ((state == TCP_FIN_WAIT1 || state == TCP_FIN_WAIT2 || state == TCP_CLOSING ||
	     state == TCP_LAST_ACK) &&
	    fin_acked && acked > 0)
		acked--;
	if ((flags >> (done_bit & 63)) & 1 && rcvd > 0)
		rcvd--;
	*sent = acked > c->acked_base ? acked - c->acked_base : 0;
	*received = rcvd > c->received_base ? rcvd - c->received_base : 0;
}

static __always_inline unsigned long sock_flags_of(const struct sock *sk)
{
	if (bpf_core_field_exists(sk->__sk_common.skc_flags))
		return BPF_CORE_READ(sk, __sk_common.skc_flags);
	return BPF_CORE_READ((struct sock___flags_old *)sk, sk_flags);
}

/* payload_from() with the socket's fields read by bpf_probe_read_kernel (any socket pointer). */
static __always_inline void payload_of(const struct sock *sk, const struct tcp_conn *c, __u64 acked,
				       __u64 rcvd, __u64 *sent, __u64 *received)
{
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;

	payload_from(c, BPF_CORE_READ(sk, __sk_common.skc_state), sock_flags_of(sk),
		     BPF_CORE_READ(tp, snd_una) == BPF_CORE_READ(tp, write_seq), acked, rcvd, sent, received);
}

/* The same, for a caller that holds the socket lock (state changes, iter/tcp). */
static __always_inline void payload(const struct sock *sk, const struct tcp_conn *c, __u64 *sent,
				    __u64 *received)
{
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;

	payload_of(sk, c, BPF_CORE_READ(tp, bytes_acked), BPF_CORE_READ(tp, bytes_received), sent,
		   received);
}

/* Adds what the socket carried up to (sent, received, retrans) beyond what was already folded to
 * its (cgroup, direction) counters in slot s. The caller holds the socket lock. */
static __always_inline void fold_into(struct tcp_stats *s, struct tcp_conn *c, __u64 sent, __u64 received,
				      __u64 retrans)
{
	__u64 ds, dr, dx;

	ds = sent > c->sent_folded ? sent - c->sent_folded : 0;
	dr = received > c->received_folded ? received - c->received_folded : 0;
	dx = retrans > c->retrans_folded ? retrans - c->retrans_folded : 0;
	if (ds) {
		__sync_fetch_and_add(&s->sent_bytes, ds);
		c->sent_folded = sent;
	}
	if (dr) {
		__sync_fetch_and_add(&s->received_bytes, dr);
		c->received_folded = received;
	}
	if (dx) {
		__sync_fetch_and_add(&s->retransmits, dx);
		c->retrans_folded = retrans;
	}
	remote_bytes(c, ds, dr, dx);
}

/* Folds what the socket carried since the last fold, finding its stats slot only if there is
 * something to add (the scrape-time walk). The caller holds the socket lock. */
static __always_inline void fold(const struct sock *sk, struct tcp_conn *c)
{
	struct tcp_stats *s;
	__u64 sent, received, retrans;

	payload(sk, c, &sent, &received);
	retrans = retrans_of(sk, c);
	if (sent <= c->sent_folded && received <= c->received_folded && retrans <= c->retrans_folded)
		return;
	s = stats_slot(c->cgroup_id, c->direction);
	if (s)
		fold_into(s, c, sent, received, retrans);
	/* else counted as a stats map error; retried at the next fold */
}

static __always_inline struct tcp_conn new_conn(const struct sock *sk, __u64 cgroup_id, __u8 direction)
{
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;
	struct tcp_conn c = {
		.cgroup_id = cgroup_id,
		.acked_base = BPF_CORE_READ(tp, bytes_acked),
		.received_base = BPF_CORE_READ(tp, bytes_received),
		/* the SYN's and SYN-ACK's retransmissions were counted as they happened */
		.retrans_base = BPF_CORE_READ(tp, total_retrans),
		.direction = direction,
		.state = TCP_ESTABLISHED,
	};

	return c;
}

/* ---- direct reads, for the BTF-typed socket pointers of tp_btf and fentry ----
 * A plain load (which the JIT guards against faults) where the functions above call
 * bpf_probe_read_kernel() once per field: the state-change handler reads about ten fields of a
 * socket when it opens and again when it closes. tcp_sock fields are reached through
 * bpf_skc_to_tcp_sock(), which gives the verifier the larger type. */

/* make_key()'s test alone: false for anything that is not an IPv4/IPv6 TCP socket. */
static __always_inline bool is_tcp_btf(const struct sock *sk)
{
	__u16 family = sk->__sk_common.skc_family;

	if (family != AF_INET && family != AF_INET6)
		return false;
	return BPF_CORE_READ_BITFIELD(sk, sk_protocol) == IPPROTO_TCP;
}

static __always_inline __u64 sock_cgroup_id_btf(const struct sock *sk)
{
	struct cgroup *cgrp;

	if (!bpf_core_field_exists(sk->sk_cgrp_data.cgroup))
		return sock_cgroup_id(sk);
	cgrp = sk->sk_cgrp_data.cgroup;
	return cgrp ? cgrp->kn->id : 0;
}

/* make_key() with plain loads; inet_sport through bpf_skc_to_tcp_sock(), which gives the verifier
 * the larger type. */
static __always_inline bool make_key_btf(const struct sock *sk, struct tcp_conn_key *key)
{
	const struct tcp_sock *tp;

	if (!is_tcp_btf(sk))
		return false;
	tp = bpf_skc_to_tcp_sock((void *)sk);
	if (!tp)
		return make_key(sk, key);
	key->netns = sk->__sk_common.skc_net.net->ns.inum;
	key->family = sk->__sk_common.skc_family;
	/* not skc_num: see make_key() */
	key->lport = bpf_ntohs(tp->inet_conn.icsk_inet.inet_sport);
	key->rport = bpf_ntohs(sk->__sk_common.skc_dport);
	if (key->family == AF_INET) {
		__builtin_memcpy(key->laddr, &sk->__sk_common.skc_rcv_saddr, 4);
		__builtin_memcpy(key->raddr, &sk->__sk_common.skc_daddr, 4);
	} else {
		__builtin_memcpy(key->laddr, &sk->__sk_common.skc_v6_rcv_saddr, 16);
		__builtin_memcpy(key->raddr, &sk->__sk_common.skc_v6_daddr, 16);
	}
	return true;
}

static __always_inline struct tcp_conn new_conn_btf(const struct sock *sk, __u64 cgroup_id, __u8 direction)
{
	const struct tcp_sock *tp = bpf_skc_to_tcp_sock((void *)sk);
	struct tcp_conn c;

	if (!tp)
		return new_conn(sk, cgroup_id, direction);
	c = (struct tcp_conn){
		.cgroup_id = cgroup_id,
		.acked_base = tp->bytes_acked,
		.received_base = tp->bytes_received,
		.retrans_base = tp->total_retrans,
		.direction = direction,
		.state = TCP_ESTABLISHED,
	};
	return c;
}

/* payload() and retrans_of() at once, with plain loads. */
static __always_inline void payload_btf(const struct sock *sk, const struct tcp_conn *c, __u64 *sent,
					__u64 *received, __u64 *retrans)
{
	const struct tcp_sock *tp = bpf_skc_to_tcp_sock((void *)sk);
	unsigned long flags;

	if (!tp) {
		payload(sk, c, sent, received);
		*retrans = retrans_of(sk, c);
		return;
	}
	if (bpf_core_field_exists(sk->__sk_common.skc_flags))
		flags = sk->__sk_common.skc_flags;
	else
		flags = sock_flags_of(sk);
	payload_from(c, sk->__sk_common.skc_state, flags, tp->snd_una == tp->write_seq, tp->bytes_acked,
		     tp->bytes_received, sent, received);
	*retrans = retrans_since(tp->total_retrans, c);
}

static __always_inline void track(const struct tcp_conn_key *key, const struct tcp_conn *c)
{
	if (bpf_map_update_elem(&tcp_conns, key, c, BPF_NOEXIST))
		podsight_map_error(&map_errors, TCP_MAP_CONNS);
}

/* ---- socket storage (fast path) ---- */

static __always_inline struct tcp_conn *sk_conn(const struct sock *sk)
{
	return bpf_sk_storage_get(&tcp_sk, (void *)sk, 0, 0);
}

/* Gives the socket its record, within max_sk_conns. The caller holds the socket lock. */
static __always_inline void track_sk(const struct sock *sk, struct tcp_conn *init)
{
	struct tcp_conn *c = sk_conn(sk);

	if (c) {
		/* a record left from an earlier life of this socket (connect() after a disconnect) */
		*c = *init;
		return;
	}
	if (__sync_fetch_and_add(&sk_conns, 1) >= max_sk_conns) {
		__sync_fetch_and_add(&sk_conns, -1);
		podsight_map_error(&map_errors, TCP_MAP_CONNS);
		return;
	}
	if (!bpf_sk_storage_get(&tcp_sk, (void *)sk, init, BPF_SK_STORAGE_GET_F_CREATE)) {
		__sync_fetch_and_add(&sk_conns, -1);
		podsight_map_error(&map_errors, TCP_MAP_CONNS);
	}
}

static __always_inline void untrack_sk(const struct sock *sk)
{
	if (bpf_sk_storage_delete(&tcp_sk, (void *)sk) == 0)
		__sync_fetch_and_add(&sk_conns, -1);
}

/* Advances *folded to `upto` unless someone got there first; returns the bytes this caller claimed.
 * Two parties can fold one socket at once (its close, and the one scrape-time iterator run), each
 * advancing it once, so a compare-and-swap fails at most once; a third try is margin. */
#define CLAIM_TRY()                                                      \
	do {                                                             \
		if (upto <= seen)                                        \
			return 0;                                        \
		prev = __sync_val_compare_and_swap(folded, seen, upto); \
		if (prev == seen)                                        \
			return upto - seen;                              \
		seen = prev;                                             \
	} while (0)

static __always_inline __u64 claim(__u64 *folded, __u64 upto)
{
	__u64 seen = *(volatile __u64 *)folded;
	__u64 prev;

	CLAIM_TRY();
	CLAIM_TRY();
	CLAIM_TRY();
	return 0;
}

/* Adds payload up to (sent, received, retrans) beyond what was already folded to slot s, claiming it
 * first so that a byte is added once whoever else folds the socket at the same time. */
static __always_inline void fold_claim_into(struct tcp_stats *s, struct tcp_conn *c, __u64 sent, __u64 received,
					    __u64 retrans)
{
	__u64 ds, dr, dx;

	ds = claim(&c->sent_folded, sent);
	dr = claim(&c->received_folded, received);
	dx = claim(&c->retrans_folded, retrans);
	if (ds)
		__sync_fetch_and_add(&s->sent_bytes, ds);
	if (dr)
		__sync_fetch_and_add(&s->received_bytes, dr);
	if (dx)
		__sync_fetch_and_add(&s->retransmits, dx);
	remote_bytes(c, ds, dr, dx);
}

/* fold_claim_into() for the scrape-time walk, which finds the slot only if there is something to
 * add. */
static __always_inline void fold_claim(struct tcp_conn *c, __u64 sent, __u64 received, __u64 retrans)
{
	struct tcp_stats *s;

	if (sent <= *(volatile __u64 *)&c->sent_folded && received <= *(volatile __u64 *)&c->received_folded &&
	    retrans <= *(volatile __u64 *)&c->retrans_folded)
		return;
	s = stats_slot(c->cgroup_id, c->direction);
	if (s)
		fold_claim_into(s, c, sent, received, retrans);
	/* else counted as a stats map error; retried at the next fold */
}

/* A full memory barrier: BPF atomic operations that return the old value are fully ordered (lock
 * xadd on x86-64, ldaddal or a barrier-fenced exclusive loop on arm64). */
static __always_inline void full_fence(void)
{
	__u64 v = __sync_fetch_and_add(&iter_fence, 0);

	asm volatile("" : : "r"(v) : "memory");
}

/* True while a kernel path may be changing the socket: it holds the socket's spinlock (softirq
 * receive, timers) or owns the socket (process context, including backlog processing). Every change
 * to the byte counters, SOCK_DONE, snd_una and the state happens under one of the two. */
static __always_inline bool sock_busy(const struct sock *sk)
{
	__u32 word = 1;

	if (BPF_CORE_READ(sk, sk_lock.owned))
		return true;
	/* PREEMPT_RT kernels make the socket spinlock an rt_mutex, which this cannot read: always
	 * busy there (the agent prefers iter/tcp on such kernels) */
	if (!bpf_core_field_exists(sk->sk_lock.slock.rlock))
		return true;
	bpf_core_read(&word, sizeof(word), &sk->sk_lock.slock.rlock.raw_lock);
	return word != 0;
}

/* Folds an open socket without its lock (the socket-storage iterator cannot take it). The byte
 * counters are single u64 words, but which of them already includes a FIN is only known from other
 * fields written in the same critical section (the peer's FIN is counted in bytes_received before
 * tcp_fin() sets SOCK_DONE). So: read the counters, then the lock. If no one holds the lock, whoever
 * wrote the values we read has released it, and its later writes (SOCK_DONE, the state, snd_una) are
 * visible to reads made after ours: the FIN corrections are exact. If someone holds it, take what is
 * payload whatever the FINs did (counters minus one); the close, under the lock, folds the rest. A
 * fold never claims more than the socket's payload at the moment its counters were read. */
static __always_inline void fold_unlocked(const struct sock *sk, struct tcp_conn *c)
{
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;
	__u64 acked = BPF_CORE_READ(tp, bytes_acked);
	__u64 rcvd = BPF_CORE_READ(tp, bytes_received);
	__u64 retrans = retrans_of(sk, c);
	__u64 sent, received;

	full_fence();
	if (sock_busy(sk)) {
		sent = acked > c->acked_base + 1 ? acked - c->acked_base - 1 : 0;
		received = rcvd > c->received_base + 1 ? rcvd - c->received_base - 1 : 0;
	} else {
		full_fence();
		payload_of(sk, c, acked, rcvd, &sent, &received);
	}
	fold_claim(c, sent, received, retrans);
}

/* ---- handlers, for either place of the record (in_storage and btf are constants at every call;
 * btf: the socket pointer is BTF-typed (tp_btf, fentry) and may be read directly; only those
 * variants keep records in socket storage, so in_storage implies btf) ---- */

static __always_inline int on_state(const struct sock *sk, int oldstate, int newstate, bool in_storage,
				    bool btf)
{
	struct tcp_conn_key key = {};
	struct tcp_stats *s;
	struct tcp_conn *c;
	struct tcp_conn n;
	__u64 cgroup_id;
	__u8 direction;

	bool opened = newstate == TCP_ESTABLISHED && (oldstate == TCP_SYN_SENT || oldstate == TCP_SYN_RECV);

	if (!sk)
		return 0;
	/* Most state changes (SYN_SENT, FIN_WAIT1, CLOSE_WAIT, ...) change nothing we count: they
	 * return before reading the socket at all, whichever place the record has. */
	if (!opened && newstate != TCP_CLOSE)
		return 0;
	if (!opened && (oldstate == TCP_SYN_RECV || oldstate == TCP_CLOSE || oldstate == TCP_LISTEN ||
			oldstate == TCP_NEW_SYN_RECV))
		return 0;
	/* The key (eight reads of the socket) is needed to find the hash's record and for remote
	 * labels; with socket storage and without remote labels, knowing it is TCP is enough. */
	if (in_storage && !remote_enabled) {
		if (!is_tcp_btf(sk))
			return 0;
	} else if (btf ? !make_key_btf(sk, &key) : !make_key(sk, &key)) {
		return 0;
	}

	if (opened) {
		direction = oldstate == TCP_SYN_SENT ? TCP_DIR_OUTBOUND : TCP_DIR_INBOUND;
		cgroup_id = btf ? sock_cgroup_id_btf(sk) : sock_cgroup_id(sk);
		n = btf ? new_conn_btf(sk, cgroup_id, direction) : new_conn(sk, cgroup_id, direction);
		if (remote_enabled && direction == TCP_DIR_OUTBOUND) {
			struct tcp_remote_stats *r;

			n.remote = remote_of(&key);
			r = remote_slot(cgroup_id, n.remote);
			if (r)
				__sync_fetch_and_add(&r->opened, 1);
		}
		if (in_storage)
			track_sk(sk, &n);
		else
			track(&key, &n);
		s = stats_slot(cgroup_id, direction);
		if (s)
			__sync_fetch_and_add(&s->opened, 1);
		return 0;
	}

	if (oldstate == TCP_SYN_SENT) {
		cgroup_id = btf ? sock_cgroup_id_btf(sk) : sock_cgroup_id(sk);
		s = stats_slot(cgroup_id, TCP_DIR_OUTBOUND);
		if (s)
			__sync_fetch_and_add(&s->connect_failures, 1);
		if (remote_enabled) {
			struct tcp_remote_stats *r = remote_slot(cgroup_id, remote_of(&key));

			if (r)
				__sync_fetch_and_add(&r->connect_failures, 1);
		}
		return 0;
	}
	c = in_storage ? sk_conn(sk) : bpf_map_lookup_elem(&tcp_conns, &key);
	if (c) {
		/* one slot lookup for the last fold and the close; without a slot (map full, counted)
		 * neither is added */
		s = stats_slot(c->cgroup_id, c->direction);
		if (s) {
			__u64 sent, received, retrans;

			if (btf) {
				payload_btf(sk, c, &sent, &received, &retrans);
			} else {
				payload(sk, c, &sent, &received);
				retrans = retrans_of(sk, c);
			}
			/* socket storage is also walked at scrape time without the socket lock */
			if (in_storage)
				fold_claim_into(s, c, sent, received, retrans);
			else
				fold_into(s, c, sent, received, retrans);
		}
		if (in_storage)
			untrack_sk(sk);
		else
			bpf_map_delete_elem(&tcp_conns, &key);
	} else {
		/* its entry could not be made (map full): the close still counts */
		s = stats_slot(sock_cgroup_id(sk), TCP_DIR_UNKNOWN);
	}
	if (s)
		__sync_fetch_and_add(&s->closed, 1);
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(tcp_state_tp_btf, const struct sock *sk, const int oldstate, const int newstate)
{
	return on_state(sk, oldstate, newstate, false, true);
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(tcp_state_tp_btf_sk, const struct sock *sk, const int oldstate, const int newstate)
{
	return on_state(sk, oldstate, newstate, true, true);
}

/* The "tracepoint" variant attaches to the same tracepoints as raw tracepoints, not through perf: a
 * perf-attached (classic) tracepoint program is skipped, silently and without counting a miss, when
 * any BPF program or BPF map syscall is already active on the CPU (the kernel's global bpf_prog_active
 * guard). Retransmits and passive opens happen in softirq, which interrupts whatever runs there, so on
 * a node with other BPF tools events would go missing. A raw tracepoint program is only kept from
 * nesting in itself, and the kernel counts that in its recursion_misses. */
SEC("raw_tracepoint/inet_sock_set_state")
int BPF_PROG(tcp_state_tracepoint, const struct sock *sk, const int oldstate, const int newstate)
{
	return on_state(sk, oldstate, newstate, false, false);
}

/* tcp_set_state() is where every TCP transition this family counts happens (inet_sk_set_state only
 * covers LISTEN and the clone's SYN_RECV); the old state is still in the socket on entry. */
SEC("fentry/tcp_set_state")
int BPF_PROG(tcp_state_fentry, struct sock *sk, int state)
{
	return on_state(sk, BPF_CORE_READ(sk, __sk_common.skc_state), state, false, true);
}

SEC("fentry/tcp_set_state")
int BPF_PROG(tcp_state_fentry_sk, struct sock *sk, int state)
{
	return on_state(sk, BPF_CORE_READ(sk, __sk_common.skc_state), state, true, true);
}

SEC("kprobe/tcp_set_state")
int BPF_KPROBE(tcp_state_kprobe, struct sock *sk, int state)
{
	return on_state(sk, BPF_CORE_READ(sk, __sk_common.skc_state), state, false, false);
}

/* The kernel's TcpRetransSegs adds tcp_skb_pcount(skb) per retransmission: count segments too. */
static __always_inline int on_retransmit(const struct sock *sk, const struct sk_buff *skb, bool in_storage)
{
	struct tcp_conn_key key = {};
	const struct tcp_skb_cb *cb;
	struct tcp_stats *s;
	__u64 cgroup_id;
	__u32 remote;
	__u8 direction;
	__u16 segs;

	if (!sk || !skb)
		return 0;
	/* A socket with a record: its retransmits are folded from tcp_sock.total_retrans at scrape time
	 * and at close. Socket storage finds the record without the key. */
	if (in_storage && sk_conn(sk))
		return 0;
	if (!make_key(sk, &key) || (!in_storage && bpf_map_lookup_elem(&tcp_conns, &key)))
		return 0;
	/* No record: a SYN (the connection is not established yet), or a socket that found no room */
	cb = (const void *)skb + bpf_core_field_offset(struct sk_buff, cb);
	segs = BPF_CORE_READ(cb, tcp_gso_segs);
	cgroup_id = sock_cgroup_id(sk);
	direction = BPF_CORE_READ(sk, __sk_common.skc_state) == TCP_SYN_SENT ? TCP_DIR_OUTBOUND : TCP_DIR_UNKNOWN;
	remote = remote_enabled && direction == TCP_DIR_OUTBOUND ? remote_of(&key) : 0;
	s = stats_slot(cgroup_id, direction);
	if (s)
		__sync_fetch_and_add(&s->retransmits, segs ? segs : 1);
	if (remote_enabled && direction == TCP_DIR_OUTBOUND) {
		struct tcp_remote_stats *r = remote_slot(cgroup_id, remote);

		if (r)
			__sync_fetch_and_add(&r->retransmits, segs ? segs : 1);
	}
	return 0;
}

SEC("tp_btf/tcp_retransmit_skb")
int tcp_retransmit_tp_btf(__u64 *ctx)
{
	/* ctx: sk, skb[, err] */
	if (retransmit_err && (int)ctx[2] != 0)
		return 0;
	return on_retransmit((const struct sock *)ctx[0], (const struct sk_buff *)ctx[1], false);
}

SEC("tp_btf/tcp_retransmit_skb")
int tcp_retransmit_tp_btf_sk(__u64 *ctx)
{
	if (retransmit_err && (int)ctx[2] != 0)
		return 0;
	return on_retransmit((const struct sock *)ctx[0], (const struct sk_buff *)ctx[1], true);
}

SEC("raw_tracepoint/tcp_retransmit_skb")
int tcp_retransmit_tracepoint(__u64 *ctx)
{
	/* ctx: sk, skb[, err]; without err the read of ctx[2] is pruned as dead code, as it must be: the
	 * attach refuses a program that reads beyond the tracepoint's arguments */
	if (retransmit_err && (int)ctx[2] != 0)
		return 0;
	return on_retransmit((const struct sock *)ctx[0], (const struct sk_buff *)ctx[1], false);
}

/* A SYN-ACK retransmitted from a listener's request socket: one segment, the listener's workload. */
static __always_inline int on_synack(const struct sock *listener)
{
	struct tcp_stats *s;

	if (!listener)
		return 0;
	s = stats_slot(sock_cgroup_id(listener), TCP_DIR_INBOUND);
	if (s)
		__sync_fetch_and_add(&s->retransmits, 1);
	return 0;
}

SEC("tp_btf/tcp_retransmit_synack")
int BPF_PROG(tcp_synack_tp_btf, const struct sock *sk, const struct request_sock *req)
{
	return on_synack(sk);
}

SEC("raw_tracepoint/tcp_retransmit_synack")
int BPF_PROG(tcp_synack_tracepoint, const struct sock *sk, const struct request_sock *req)
{
	return on_synack(sk);
}

/* The open TCP socket behind an iter/tcp element, or NULL for request, time-wait, listening and
 * not yet (or no longer) established sockets. */
static __always_inline const struct sock *iter_open_sock(struct sock_common *skc, __u8 *state)
{
	struct tcp_sock *tp;
	const struct sock *sk;

	if (!skc)
		return 0;
	tp = bpf_skc_to_tcp_sock(skc);
	if (!tp)
		return 0; /* request and time-wait sockets: nothing to fold */
	sk = (const struct sock *)tp;
	*state = BPF_CORE_READ(sk, __sk_common.skc_state);
	if (*state == TCP_LISTEN || *state == TCP_SYN_SENT || *state == TCP_SYN_RECV || *state == TCP_CLOSE ||
	    *state == TCP_NEW_SYN_RECV)
		return 0;
	return sk;
}

/* A record for a socket open before the agent started (or that found no room): direction unknown,
 * its current payload as baseline, so only bytes moved while the agent watches are counted. The caller
 * holds the socket lock (iter/tcp). */
static __always_inline struct tcp_conn adopted_conn(const struct sock *sk, __u8 state)
{
	struct tcp_conn n = {
		.cgroup_id = sock_cgroup_id(sk),
		.direction = TCP_DIR_UNKNOWN,
		.state = state,
	};
	__u64 sent, received;

	payload(sk, &n, &sent, &received);
	n.acked_base = sent;
	n.received_base = received;
	n.retrans_base = BPF_CORE_READ((const struct tcp_sock *)sk, total_retrans);
	return n;
}

/* Scrape-time walk of one network namespace's TCP sockets (the iterator sees the namespace of the
 * thread that created it), for records in tcp_conns. Folds the payload of every open socket we track
 * and adopts established sockets we do not know yet. */
SEC("iter/tcp")
int tcp_iter(struct bpf_iter__tcp *ctx)
{
	struct tcp_conn_key key = {};
	const struct sock *sk;
	struct tcp_conn *c;
	struct tcp_conn n;
	__u8 state = 0;

	sk = iter_open_sock(ctx->sk_common, &state);
	if (!sk || !make_key(sk, &key))
		return 0;
	c = bpf_map_lookup_elem(&tcp_conns, &key);
	if (c) {
		fold(sk, c);
		return 0;
	}
	n = adopted_conn(sk, state);
	if (bpf_map_update_elem(&tcp_conns, &key, &n, BPF_NOEXIST))
		podsight_map_error(&map_errors, TCP_MAP_CONNS);
	return 0;
}

/* With records in socket storage, the per-namespace walk runs once, at start-up: it gives the
 * sockets that were already established a record. */
SEC("iter/tcp")
int tcp_iter_adopt(struct bpf_iter__tcp *ctx)
{
	struct tcp_conn_key key = {};
	const struct sock *sk;
	struct tcp_conn n;
	__u8 state = 0;

	sk = iter_open_sock(ctx->sk_common, &state);
	if (!sk || !make_key(sk, &key) || sk_conn(sk))
		return 0;
	n = adopted_conn(sk, state);
	track_sk(sk, &n);
	return 0;
}

/* Scrape-time walk of every tracked socket, in every network namespace: the elements of tcp_sk.
 * Folds what each open socket carried since the last fold and reports it for the active gauge. */
SEC("iter/bpf_sk_storage_map")
int tcp_sk_iter(struct bpf_iter__bpf_sk_storage_map *ctx)
{
	struct tcp_open_record r = {};
	struct sock *sk = ctx->sk;
	struct tcp_conn *c;

	if (!sk || !ctx->value)
		return 0;
	/* the record as a map value (the context's pointer is a plain buffer) */
	c = sk_conn(sk);
	if (!c)
		return 0;
	/* closing right now: its close folds it and counts it closed */
	if (BPF_CORE_READ(sk, __sk_common.skc_state) == TCP_CLOSE)
		return 0;
	fold_unlocked(sk, c);
	r.cgroup_id = c->cgroup_id;
	r.remote = c->remote;
	r.direction = c->direction;
	bpf_seq_write(ctx->meta->seq, &r, sizeof(r));
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
