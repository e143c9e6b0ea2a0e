// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* exec family: counts successful execve() calls per (cgroup, comm). Two variants of one handler on
 * sched/sched_process_exec: tp_btf (BTF-typed raw tracepoint) and a plain raw tracepoint, which needs
 * neither BTF nor tracefs. The agent picks one and disables the other's autoload before load.
 *
 * Not a perf-attached (classic) tracepoint: the kernel skips those, silently and without counting a
 * miss, whenever another BPF program or BPF map syscall is active on the CPU (bpf_prog_active), so
 * execs would go uncounted on a node with other BPF tools. A raw tracepoint program is only kept from
 * nesting in itself, which the kernel counts in its recursion_misses. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "podsight.bpf.h"
#include "exec.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16384); /* set from programs.exec.max_entries before load */
	/* the agent adds BPF_F_NO_PREALLOC before load where the kernel allows it for this variant
	 * (programs::allocate_on_use) */
	__type(key, struct exec_key);
	__type(value, __u64);
} exec_counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1024); /* a power of two, set with slot_mask before load */
	__type(key, __u32);
	__type(value, struct exec_slot);
} exec_slots SEC(".maps");

/* exec_slots' max_entries - 1 */
const volatile __u32 slot_mask = 1023;

PODSIGHT_MAP_ERRORS(EXEC_MAP_NR);

static __always_inline int count_exec(void)
{
	struct exec_key key = {};
	struct exec_slot *slot;
	__u32 idx;

	key.cgroup_id = bpf_get_current_cgroup_id();
	/* sched_process_exec fires after the new comm is set (begin_new_exec) */
	bpf_get_current_comm(&key.comm, sizeof(key.comm));
	/* The agent never gives a slot to cgroup id 0, so a free slot never matches. */
	idx = exec_slot_index(&key, slot_mask);
	slot = bpf_map_lookup_elem(&exec_slots, &idx);
	if (slot && key.cgroup_id && exec_key_equal(&slot->owner, &key)) {
		__sync_fetch_and_add(&slot->count, 1);
		return 0;
	}
	podsight_count(&exec_counts, &key, 1, &map_errors, EXEC_MAP_COUNTS);
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(exec_tp_btf, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	return count_exec();
}

SEC("raw_tracepoint/sched_process_exec")
int exec_tracepoint(void *ctx)
{
	return count_exec();
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
