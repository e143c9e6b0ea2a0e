// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Benchmark floor: programs that do nothing, one per hook podsight attaches to. Attached next to the
 * agent under the same workload, their run time per run is what the kernel's run-time statistics
 * and the program call itself cost, so the agent's programs can be read net of it. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#include "podsight.bpf.h"
#include "exec.h"
#include "cgroup_skb.h"
#include "tcp.h"

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6

SEC("tp_btf/sched_process_exec")
int BPF_PROG(floor_exec_btf)
{
	return 0;
}

SEC("tracepoint/sched/sched_process_exec")
int floor_exec_tp(void *ctx)
{
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(floor_tcp_btf)
{
	return 0;
}

SEC("tracepoint/sock/inet_sock_set_state")
int floor_tcp_tp(void *ctx)
{
	return 0;
}

/* Raw tracepoints: the hook of podsight's "tracepoint" variants (bpftrace's tracepoint: probes are
 * classic, perf-attached tracepoints: the two kinds cost differently before the program runs). */
SEC("raw_tracepoint/sched_process_exec")
int floor_exec_raw(void *ctx)
{
	return 0;
}

SEC("raw_tracepoint/inet_sock_set_state")
int floor_tcp_raw(void *ctx)
{
	return 0;
}

SEC("cgroup_skb/ingress")
int floor_skb_in(struct __sk_buff *skb)
{
	return 1;
}

SEC("cgroup_skb/egress")
int floor_skb_out(struct __sk_buff *skb)
{
	return 1;
}

SEC("xdp")
int floor_xdp(struct xdp_md *ctx)
{
	return XDP_PASS;
}

/* Parts of the exec family's handler, each alone on the same hook (--hooks part_<name>), to see
 * where its time per event goes: the two helpers that build the key, the key built from the task
 * the hook passes (no helper), and the count into a per-CPU hash (as podsight), a shared hash and a
 * per-CPU array. The results land in maps or a global so the compiler keeps the work. */
__u64 sink;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct exec_key);
	__type(value, __u64);
} part_pcpu SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct exec_key);
	__type(value, __u64);
} part_shared SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} part_array SEC(".maps");

PODSIGHT_MAP_ERRORS(1);

SEC("tp_btf/sched_process_exec")
int BPF_PROG(part_cgroup_id)
{
	sink = bpf_get_current_cgroup_id();
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(part_comm)
{
	char comm[PODSIGHT_COMM_LEN];

	bpf_get_current_comm(comm, sizeof(comm));
	sink = comm[0];
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(part_key_btf, struct task_struct *p)
{
	/* the same key without helpers: the task's dfl cgroup id and comm read through BTF */
	struct exec_key key = {};

	key.cgroup_id = BPF_CORE_READ(p, cgroups, dfl_cgrp, kn, id);
	bpf_probe_read_kernel(&key.comm, sizeof(key.comm), p->comm);
	sink = key.cgroup_id + key.comm[0];
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(part_array_add)
{
	__u32 zero = 0;
	__u64 *v = bpf_map_lookup_elem(&part_array, &zero);

	if (v)
		__sync_fetch_and_add(v, 1);
	return 0;
}

static __always_inline void key_of_current(struct exec_key *key)
{
	key->cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(&key->comm, sizeof(key->comm));
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(part_pcpu_hash)
{
	struct exec_key key = {};

	key_of_current(&key);
	podsight_count(&part_pcpu, &key, 1, &map_errors, 0);
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(part_pcpu_plain)
{
	/* as part_pcpu_hash with a plain add instead of the atomic one */
	struct exec_key key = {};
	__u64 *v, one = 1;

	key_of_current(&key);
	v = bpf_map_lookup_elem(&part_pcpu, &key);
	if (v)
		*v += 1;
	else
		bpf_map_update_elem(&part_pcpu, &key, &one, BPF_NOEXIST);
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(part_shared_hash)
{
	struct exec_key key = {};

	key_of_current(&key);
	podsight_count(&part_shared, &key, 1, &map_errors, 0);
	return 0;
}

/* podsight's slot (bpf/shared/exec.h) in a per-CPU and in a shared array: the count without a hash
 * lookup. These parts claim a free slot themselves (podsight's agent gives it at a scrape); an exec
 * whose slot another key holds adds to sink. And the cheapest count of all: one shared u64. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct exec_slot);
} part_slots_pcpu SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct exec_slot);
} part_slots_shared SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} part_shared_array SEC(".maps");

static __always_inline void count_in_slot(void *slots, const struct exec_key *key)
{
	__u32 idx = exec_slot_index(key, 1023);
	struct exec_slot *s = bpf_map_lookup_elem(slots, &idx);

	if (!s)
		return;
	if (exec_key_equal(&s->owner, key)) {
		__sync_fetch_and_add(&s->count, 1);
		return;
	}
	if (!s->owner.cgroup_id) {
		s->owner = *key;
		return;
	}
	sink++;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(part_shared_add)
{
	__u32 zero = 0;
	__u64 *v = bpf_map_lookup_elem(&part_shared_array, &zero);

	if (v)
		__sync_fetch_and_add(v, 1);
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(part_slot_pcpu)
{
	struct exec_key key = {};

	key_of_current(&key);
	count_in_slot(&part_slots_pcpu, &key);
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(part_slot_shared)
{
	struct exec_key key = {};

	key_of_current(&key);
	count_in_slot(&part_slots_shared, &key);
	return 0;
}

/* Parts of the cgroup_skb family's count (bpf/cgroup_skb.bpf.c), each an ingress and egress pair of
 * programs of its own on the cgroup2 root (--hooks part_skb_<name>; the _in and _out only parts load
 * one direction), with maps of their own so that no part finds another's lines warm: the cgroup id
 * alone, the count as podsight does it (per-CPU hash, two atomic adds), the same with one atomic add,
 * with plain adds, into a shared hash, into one per-CPU array slot (no key), the count on one
 * direction only, and per-socket counts in socket storage (created at a socket's first packet). */
#define SKB_PART_ENTRIES 16384

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, SKB_PART_ENTRIES);
	__type(key, struct cgroup_skb_key);
	__type(value, struct cgroup_skb_value);
} skb_pcpu SEC(".maps"), skb_pcpu1 SEC(".maps"), skb_plain SEC(".maps"), skb_in_only SEC(".maps"),
	skb_out_only SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SKB_PART_ENTRIES);
	__type(key, struct cgroup_skb_key);
	__type(value, struct cgroup_skb_value);
} skb_shared SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cgroup_skb_value);
} skb_array SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct cgroup_skb_value);
} skb_sk SEC(".maps");

static const struct cgroup_skb_value skb_zero;

static __always_inline int skb_count(struct __sk_buff *skb, void *map, __u32 dir)
{
	struct cgroup_skb_key key = { .cgroup_id = bpf_skb_cgroup_id(skb) };
	struct cgroup_skb_value *v;

	v = podsight_lookup_or_insert(map, &key, &skb_zero, &map_errors, 0);
	if (v) {
		__sync_fetch_and_add(&v->dir[dir].packets, 1);
		__sync_fetch_and_add(&v->dir[dir].bytes, skb->len);
	}
	return 1;
}

static __always_inline int skb_count_one_add(struct __sk_buff *skb, __u32 dir)
{
	struct cgroup_skb_key key = { .cgroup_id = bpf_skb_cgroup_id(skb) };
	struct cgroup_skb_value *v;

	v = podsight_lookup_or_insert(&skb_pcpu1, &key, &skb_zero, &map_errors, 0);
	if (v)
		__sync_fetch_and_add(&v->dir[dir].bytes, skb->len);
	return 1;
}

static __always_inline int skb_count_plain(struct __sk_buff *skb, __u32 dir)
{
	struct cgroup_skb_key key = { .cgroup_id = bpf_skb_cgroup_id(skb) };
	struct cgroup_skb_value *v;

	v = podsight_lookup_or_insert(&skb_plain, &key, &skb_zero, &map_errors, 0);
	if (v) {
		v->dir[dir].packets += 1;
		v->dir[dir].bytes += skb->len;
	}
	return 1;
}

static __always_inline int skb_count_array(struct __sk_buff *skb, __u32 dir)
{
	__u32 zero = 0;
	struct cgroup_skb_value *v = bpf_map_lookup_elem(&skb_array, &zero);

	if (v) {
		__sync_fetch_and_add(&v->dir[dir].packets, 1);
		__sync_fetch_and_add(&v->dir[dir].bytes, skb->len);
	}
	return 1;
}

static __always_inline int skb_count_sk(struct __sk_buff *skb, __u32 dir)
{
	struct bpf_sock *sk = skb->sk;
	struct cgroup_skb_value *v;

	if (!sk)
		return 1;
	sk = bpf_sk_fullsock(sk);
	if (!sk)
		return 1;
	v = bpf_sk_storage_get(&skb_sk, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (v) {
		__sync_fetch_and_add(&v->dir[dir].packets, 1);
		__sync_fetch_and_add(&v->dir[dir].bytes, skb->len);
	}
	return 1;
}

static __always_inline int skb_cgroup_id_only(struct __sk_buff *skb, __u32 dir)
{
	sink = bpf_skb_cgroup_id(skb);
	return 1;
}

static __always_inline int skb_count_pcpu(struct __sk_buff *skb, __u32 dir)
{
	return skb_count(skb, &skb_pcpu, dir);
}

static __always_inline int skb_count_shared(struct __sk_buff *skb, __u32 dir)
{
	return skb_count(skb, &skb_shared, dir);
}

/* part_skb_<name>_in and _out: the same count on both hooks */
#define SKB_PART(name, count)                                   \
	SEC("cgroup_skb/ingress")                               \
	int part_skb_##name##_in(struct __sk_buff *skb)         \
	{                                                       \
		return count(skb, CGROUP_SKB_INGRESS);          \
	}                                                       \
	SEC("cgroup_skb/egress")                                \
	int part_skb_##name##_out(struct __sk_buff *skb)        \
	{                                                       \
		return count(skb, CGROUP_SKB_EGRESS);           \
	}

SKB_PART(cgid, skb_cgroup_id_only)
SKB_PART(pcpu, skb_count_pcpu)
SKB_PART(1add, skb_count_one_add)
SKB_PART(plain, skb_count_plain)
SKB_PART(shared, skb_count_shared)
SKB_PART(array, skb_count_array)
SKB_PART(sk, skb_count_sk)

SEC("cgroup_skb/ingress")
int part_skb_in_only(struct __sk_buff *skb)
{
	return skb_count(skb, &skb_in_only, CGROUP_SKB_INGRESS);
}

SEC("cgroup_skb/egress")
int part_skb_out_only(struct __sk_buff *skb)
{
	return skb_count(skb, &skb_out_only, CGROUP_SKB_EGRESS);
}

/* Parts of the tcp family's state-change handler (bpf/tcp.bpf.c on_state, socket-storage variant),
 * each alone on tp_btf/inet_sock_set_state (--hooks part_tcp_<name>). Every part starts with the
 * handler's own early filter, so part_tcp_filter is the base the others add to; the work happens
 * only at the open (ESTABLISHED from SYN_SENT/SYN_RECV) and the close of a socket, as in podsight. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct tcp_conn);
} part_tcp_sk SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct tcp_conn);
} part_tcp_sk2 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, struct tcp_conn);
} part_tcp_conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct tcp_stats_key);
	__type(value, struct tcp_stats);
} part_tcp_stats SEC(".maps");

__u64 part_tcp_shared;

/* 1 at an open, 2 at a close, 0 for everything the handler returns on at once. */
static __always_inline int tcp_event(const struct sock *sk, int oldstate, int newstate)
{
	__u16 family;

	if (!sk)
		return 0;
	if (newstate == TCP_ESTABLISHED && (oldstate == TCP_SYN_SENT || oldstate == TCP_SYN_RECV))
		goto tcp;
	if (newstate != TCP_CLOSE || oldstate == TCP_SYN_RECV || oldstate == TCP_CLOSE ||
	    oldstate == TCP_LISTEN || oldstate == TCP_NEW_SYN_RECV || oldstate == TCP_SYN_SENT)
		return 0;
tcp:
	family = sk->__sk_common.skc_family;
	if (family != AF_INET && family != AF_INET6)
		return 0;
	if (BPF_CORE_READ_BITFIELD(sk, sk_protocol) != IPPROTO_TCP)
		return 0;
	return newstate == TCP_ESTABLISHED ? 1 : 2;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(part_tcp_filter, const struct sock *sk, int oldstate, int newstate)
{
	sink = tcp_event(sk, oldstate, newstate);
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(part_tcp_cgroup, const struct sock *sk, int oldstate, int newstate)
{
	struct cgroup *cgrp;

	if (!tcp_event(sk, oldstate, newstate))
		return 0;
	cgrp = sk->sk_cgrp_data.cgroup;
	sink = cgrp ? cgrp->kn->id : 0;
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(part_tcp_ktime, const struct sock *sk, int oldstate, int newstate)
{
	if (tcp_event(sk, oldstate, newstate) == 1)
		sink = bpf_ktime_get_ns();
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(part_tcp_read, const struct sock *sk, int oldstate, int newstate)
{
	/* the tcp_sock fields the open (baselines) and the close (payload) read */
	int ev = tcp_event(sk, oldstate, newstate);
	const struct tcp_sock *tp;

	if (!ev)
		return 0;
	tp = bpf_skc_to_tcp_sock((void *)sk);
	if (!tp)
		return 0;
	if (ev == 1)
		sink = tp->bytes_acked + tp->bytes_received + tp->total_retrans;
	else
		sink = tp->bytes_acked + tp->bytes_received + tp->total_retrans + (tp->snd_una == tp->write_seq) +
		       sk->__sk_common.skc_flags + sk->__sk_common.skc_state;
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(part_tcp_storage, const struct sock *sk, int oldstate, int newstate)
{
	/* the record's life in socket storage: created at the open, looked up and deleted at the close */
	struct tcp_conn init = { .direction = 1 };
	struct tcp_conn *c;
	int ev = tcp_event(sk, oldstate, newstate);

	if (ev == 1) {
		c = bpf_sk_storage_get(&part_tcp_sk, (void *)sk, &init, BPF_SK_STORAGE_GET_F_CREATE);
		sink = c ? c->direction : 0;
	} else if (ev == 2) {
		c = bpf_sk_storage_get(&part_tcp_sk, (void *)sk, 0, 0);
		if (c) {
			sink = c->direction;
			bpf_sk_storage_delete(&part_tcp_sk, (void *)sk);
		}
	}
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(part_tcp_sk_create, const struct sock *sk, int oldstate, int newstate)
{
	/* part_tcp_storage without the delete: the record is created at the open and freed with the
	 * socket (in the workload's time, not this program's) */
	struct tcp_conn init = { .direction = 1 };
	struct tcp_conn *c;

	if (tcp_event(sk, oldstate, newstate) == 1) {
		c = bpf_sk_storage_get(&part_tcp_sk2, (void *)sk, &init, BPF_SK_STORAGE_GET_F_CREATE);
		sink = c ? c->direction : 0;
	}
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(part_tcp_hash, const struct sock *sk, int oldstate, int newstate)
{
	/* the same life in a NO_PREALLOC hash keyed by the socket's address */
	struct tcp_conn init = { .direction = 1 };
	__u64 key = (__u64)sk;
	struct tcp_conn *c;
	int ev = tcp_event(sk, oldstate, newstate);

	if (ev == 1) {
		bpf_map_update_elem(&part_tcp_conns, &key, &init, BPF_NOEXIST);
	} else if (ev == 2) {
		c = bpf_map_lookup_elem(&part_tcp_conns, &key);
		if (c) {
			sink = c->direction;
			bpf_map_delete_elem(&part_tcp_conns, &key);
		}
	}
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(part_tcp_stats_add, const struct sock *sk, int oldstate, int newstate)
{
	/* the (cgroup, direction) counter slot, found and added to once per open or close */
	struct tcp_stats_key key = { .direction = 1 };
	struct tcp_stats zero = {};
	struct tcp_stats *s;
	int ev = tcp_event(sk, oldstate, newstate);

	if (!ev)
		return 0;
	key.cgroup_id = sk->sk_cgrp_data.cgroup ? sk->sk_cgrp_data.cgroup->kn->id : 0;
	s = podsight_lookup_or_insert(&part_tcp_stats, &key, &zero, &map_errors, 0);
	if (s) {
		if (ev == 1)
			__sync_fetch_and_add(&s->opened, 1);
		else
			__sync_fetch_and_add(&s->closed, 1);
	}
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(part_tcp_shared_atomic, const struct sock *sk, int oldstate, int newstate)
{
	/* one global counter written by every CPU at every open and close (the tracked-socket bound) */
	int ev = tcp_event(sk, oldstate, newstate);

	if (ev == 1)
		__sync_fetch_and_add(&part_tcp_shared, 1);
	else if (ev == 2)
		__sync_fetch_and_add(&part_tcp_shared, -1);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
