/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Helpers every podsight program family uses: bounded counting into hashes (per-CPU or shared), with
 * failed inserts (map full) counted per map so userspace can report podsight_map_update_errors_total. */
#ifndef PODSIGHT_BPF_H
#define PODSIGHT_BPF_H

#include <bpf/bpf_helpers.h>

#ifndef EEXIST
#define EEXIST 17
#endif

/* One per-CPU slot per map of the family, indexed by the family's *_MAP_* enum (bpf/shared/<family>.h). */
#define PODSIGHT_MAP_ERRORS(nmaps)                         \
	struct {                                           \
		__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);   \
		__uint(max_entries, nmaps);                \
		__type(key, __u32);                        \
		__type(value, __u64);                      \
	} map_errors SEC(".maps")

static __always_inline void podsight_map_error(void *errors, __u32 map_index)
{
	__u64 *n = bpf_map_lookup_elem(errors, &map_index);

	if (n)
		__sync_fetch_and_add(n, 1);
}

/* Adds `delta` to the u64 at `key` in a hash, inserting it if absent. The add is atomic: in a shared
 * hash other CPUs add to the same counter, and even a per-CPU slot is not safe from a softirq program
 * (ingress) interrupting a process-context one (egress) on the same CPU, where a plain += would lose
 * one of the two updates. */
static __always_inline void podsight_count(void *map, const void *key, __u64 delta, void *errors,
					   __u32 map_index)
{
	__u64 *v = bpf_map_lookup_elem(map, key);
	long err;

	if (v) {
		__sync_fetch_and_add(v, delta);
		return;
	}
	err = bpf_map_update_elem(map, key, &delta, BPF_NOEXIST);
	if (!err)
		return;
	if (err == -EEXIST) {
		/* another CPU inserted the key between our lookup and update */
		v = bpf_map_lookup_elem(map, key);
		if (v) {
			__sync_fetch_and_add(v, delta);
			return;
		}
	}
	podsight_map_error(errors, map_index);
}

/* The value at `key` in a hash map, inserting `zero` first if the key is absent; NULL when the map is
 * full (counted in the family's map_errors slot). For values with several counters, which the caller
 * then adds to with __sync_fetch_and_add (see podsight_count for why atomically). */
static __always_inline void *podsight_lookup_or_insert(void *map, const void *key, const void *zero,
						       void *errors, __u32 map_index)
{
	void *v = bpf_map_lookup_elem(map, key);
	long err;

	if (v)
		return v;
	err = bpf_map_update_elem(map, key, zero, BPF_NOEXIST);
	/* -EEXIST: another CPU inserted the key between our lookup and update */
	if (!err || err == -EEXIST)
		v = bpf_map_lookup_elem(map, key);
	if (!v)
		podsight_map_error(errors, map_index);
	return v;
}

#endif /* PODSIGHT_BPF_H */
