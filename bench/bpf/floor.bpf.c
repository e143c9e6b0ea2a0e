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

char LICENSE[] SEC("license") = "Dual BSD/GPL";
