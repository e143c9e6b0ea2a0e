/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* cgroup_skb family: the key and value both the BPF programs and the agent read. Fixed-width types,
 * no implicit padding. */
#ifndef PODSIGHT_SHARED_CGROUP_SKB_H
#define PODSIGHT_SHARED_CGROUP_SKB_H

enum cgroup_skb_direction {
	CGROUP_SKB_INGRESS = 0,
	CGROUP_SKB_EGRESS = 1,
};

struct cgroup_skb_key {
	__u64 cgroup_id; /* cgroup v2 id of the socket the packet belongs to */
	__u32 direction; /* enum cgroup_skb_direction */
	__u32 pad;	 /* always 0: part of the hashed key */
};

/* Per-CPU; summed by the agent at scrape time. */
struct cgroup_skb_value {
	__u64 packets; /* IP packets, a GSO/GRO packet counted as the segments it carries */
	__u64 bytes;   /* IP bytes (IP header and everything after it) of those packets */
};

/* Index into the family's map_errors array. */
enum cgroup_skb_map_index {
	CGROUP_SKB_MAP_COUNTS = 0,
	CGROUP_SKB_MAP_NR,
};

#endif
