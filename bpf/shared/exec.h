/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* exec family: the key both the BPF program and the agent read. Fixed-width types, no implicit padding. */
#ifndef PODSIGHT_SHARED_EXEC_H
#define PODSIGHT_SHARED_EXEC_H

#define PODSIGHT_COMM_LEN 16

struct exec_key {
	__u64 cgroup_id; /* cgroup v2 id of the task that called execve */
	char comm[PODSIGHT_COMM_LEN]; /* task comm after the exec: the new program's name */
};

/* A known (cgroup, comm)'s own per-CPU slot in the exec_slots array, so that its execs are counted
 * without a hash lookup: the per-CPU hash count is most of the handler's time on this cold event, and
 * the slot about half as dear (bench exec_profile). The same protocol as cgroup_skb's slots
 * (bpf/shared/cgroup_skb.h): only the agent writes owners, at scrapes, the same on every CPU; it
 * gives a free slot, with zero counts, to a key the hash already holds, and frees it when that key has
 * left the hash (garbage collection of a removed cgroup). Execs of a key without a slot are counted
 * in the hash. A key's total is its hash entry plus its slot, summed over CPUs. The count comes before
 * the owner, as in cgroup_skb_slot. */
struct exec_slot {
	__u64 count;
	struct exec_key owner; /* owner.cgroup_id 0: free */
};

/* Whether two keys are the same (cgroup id and all 16 comm bytes), as 8-byte words. */
static inline int exec_key_equal(const struct exec_key *a, const struct exec_key *b)
{
	__u64 x[2], y[2];

	__builtin_memcpy(x, a->comm, sizeof(x));
	__builtin_memcpy(y, b->comm, sizeof(y));
	return a->cgroup_id == b->cgroup_id && x[0] == y[0] && x[1] == y[1];
}

/* The slot index of a key: a mix of all of its bytes, the same in the program and the agent. */
static inline __u32 exec_slot_index(const struct exec_key *key, __u32 mask)
{
	__u64 c[2];
	__u64 h;

	__builtin_memcpy(c, key->comm, sizeof(c));
	h = key->cgroup_id ^ c[0] * 0x9e3779b97f4a7c15ULL ^ c[1] * 0xc2b2ae3d27d4eb4fULL;
	return (__u32)(h ^ h >> 32) & mask;
}

/* Index into the family's map_errors array. */
enum exec_map_index {
	EXEC_MAP_COUNTS = 0,
	EXEC_MAP_NR,
};

#endif
