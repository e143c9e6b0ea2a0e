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

/* Index into the family's map_errors array. */
enum cgroup_skb_map_index {
	CGROUP_SKB_MAP_COUNTS = 0,
	CGROUP_SKB_MAP_NR,
};

#endif
