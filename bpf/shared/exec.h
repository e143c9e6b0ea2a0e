/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* exec family: the key both the BPF program and the agent read. Fixed-width types, no implicit padding. */
#ifndef PODSIGHT_SHARED_EXEC_H
#define PODSIGHT_SHARED_EXEC_H

#define PODSIGHT_COMM_LEN 16

struct exec_key {
	__u64 cgroup_id; /* cgroup v2 id of the task that called execve */
	char comm[PODSIGHT_COMM_LEN]; /* task comm after the exec: the new program's name */
};

/* Index into the family's map_errors array. */
enum exec_map_index {
	EXEC_MAP_COUNTS = 0,
	EXEC_MAP_NR,
};

#endif
