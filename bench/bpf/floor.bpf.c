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

char LICENSE[] SEC("license") = "Dual BSD/GPL";
