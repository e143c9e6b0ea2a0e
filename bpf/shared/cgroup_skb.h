/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* cgroup_skb family: the key and value both the BPF programs and the agent read. Fixed-width types,
 * no implicit padding. */
#ifndef PODSIGHT_SHARED_CGROUP_SKB_H
#define PODSIGHT_SHARED_CGROUP_SKB_H

enum cgroup_skb_direction {
	CGROUP_SKB_INGRESS = 0,
	CGROUP_SKB_EGRESS = 1,
};

/* One entry per cgroup, both directions in it: one hash lookup of an 8-byte key per packet, and the
 * ingress and egress programs of a cgroup touch the same cache lines. */
struct cgroup_skb_key {
	__u64 cgroup_id; /* cgroup v2 id of the socket the packet belongs to */
};

struct cgroup_skb_counts {
	__u64 packets; /* IP packets, a GSO/GRO packet counted as the segments it carries */
	__u64 bytes;   /* IP bytes (IP header and everything after it) of those packets */
};

/* Per-CPU; summed by the agent at scrape time. Indexed by enum cgroup_skb_direction. */
struct cgroup_skb_value {
	struct cgroup_skb_counts dir[2];
};

/* A cgroup's own per-CPU slot in the cgroup_skb_slots array, at index cgroup id & slot_mask, so that
 * a packet of a known cgroup is counted without a hash lookup (the hash costs about two thirds of the
 * per-packet time, measured by bench cgroup_skb_profile). Only the agent writes cgroup_id, to the same
 * value on every CPU: it gives a free slot to a cgroup that the hash already holds, with zeroed counts,
 * and frees it (0) when that cgroup has left the hash. Packets of a cgroup without a slot (not yet
 * given one, or its index taken by another cgroup) are counted in the hash. A cgroup's totals are its
 * hash entry plus its slot.
 *
 * The owner comes after the counts: the kernel copies a value the agent writes in address order, so
 * a program that sees a newly given owner also sees its zeroed counts, and what it adds is kept. */
struct cgroup_skb_slot {
	struct cgroup_skb_value counts;
	__u64 cgroup_id; /* owner; 0: free */
};

/* Index into the family's map_errors array. */
enum cgroup_skb_map_index {
	CGROUP_SKB_MAP_COUNTS = 0,
	CGROUP_SKB_MAP_NR,
};

#endif
