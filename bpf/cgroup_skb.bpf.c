// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* cgroup_skb family: IP packets and bytes per cgroup and direction, from cgroup_skb ingress and egress
 * programs the agent attaches at the cgroup2 root with bpf_links (multi-attach: programs others
 * attached there keep running). The kernel runs them for packets of full sockets only, in the
 * context of the socket's cgroup; every packet is allowed.
 *
 * One variant only: everything used here (bpf_skb_cgroup_id in cgroup_skb programs,
 * __sk_buff->gso_segs and ->gso_size, cgroup bpf_links) is in every kernel >= 5.8, podsight's floor.
 * The legacy BPF_PROG_ATTACH would outlive a SIGKILLed agent, so it is not offered as a fallback. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "podsight.bpf.h"
#include "cgroup_skb.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16384); /* set from programs.cgroup_skb.max_entries before load */
	/* an element per cgroup as its first packet comes, not max_entries x possible CPUs up front */
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct cgroup_skb_key);
	__type(value, struct cgroup_skb_value);
} cgroup_skb_counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1024); /* a power of two, set with slot_mask before load */
	__type(key, __u32);
	__type(value, struct cgroup_skb_slot);
} cgroup_skb_slots SEC(".maps");

/* cgroup_skb_slots' max_entries - 1 */
const volatile __u32 slot_mask = 1023;

PODSIGHT_MAP_ERRORS(CGROUP_SKB_MAP_NR);

/* Length of the IP + TCP/UDP headers every segment of a GSO/GRO packet carries, or 0 when they are
 * not TCP or UDP behind a plain IP header (then headers are counted once: a rare case, e.g. IPv6
 * extension headers). The hook sees the skb from its network header on, so offset 0 is the IP header. */
static __always_inline __u32 segment_header_len(struct __sk_buff *skb)
{
	__u8 ip[10];
	__u8 doff;
	__u32 l3, proto;

	if (bpf_skb_load_bytes(skb, 0, ip, sizeof(ip)))
		return 0;
	switch (ip[0] >> 4) {
	case 4:
		l3 = (ip[0] & 0x0f) * 4;
		proto = ip[9];
		break;
	case 6:
		l3 = 40;
		proto = ip[6];
		break;
	default:
		return 0;
	}
	if (proto == IPPROTO_UDP)
		return l3 + 8;
	if (proto != IPPROTO_TCP || bpf_skb_load_bytes(skb, l3 + 12, &doff, 1))
		return 0;
	return l3 + (doff >> 4) * 4;
}

/* Inserted for a cgroup's first packet; read-only data, so nothing is built on the stack per packet. */
static const struct cgroup_skb_value zero;

static __always_inline int count_skb(struct __sk_buff *skb, const __u32 direction)
{
	struct cgroup_skb_key key;
	struct cgroup_skb_value *v;
	struct cgroup_skb_slot *slot;
	__u32 idx;
	__u64 packets = 1;
	__u64 bytes = skb->len;

	/* The socket's cgroup, not the current task's: ingress runs in softirq context, and egress
	 * also runs from timers (retransmits) and from whichever task's softirq sends a TCP ACK. The
	 * kernel set skb->sk to the socket whose cgroup's programs are running. */
	key.cgroup_id = bpf_skb_cgroup_id(skb);
	/* A GSO packet (egress, before segmentation) or GRO packet (ingress, after merging) is
	 * gso_segs IP packets on the wire, each with its own headers: count them as such, so that
	 * totals do not depend on offloads. */
	if (skb->gso_size && skb->gso_segs > 1) {
		packets = skb->gso_segs;
		bytes += (packets - 1) * segment_header_len(skb);
	}
	/* The agent never gives a slot to cgroup id 0 (no full socket), so a free slot never matches. */
	idx = key.cgroup_id & slot_mask;
	slot = bpf_map_lookup_elem(&cgroup_skb_slots, &idx);
	if (slot && slot->cgroup_id == key.cgroup_id && key.cgroup_id)
		v = &slot->counts;
	else
		v = podsight_lookup_or_insert(&cgroup_skb_counts, &key, &zero, &map_errors,
					      CGROUP_SKB_MAP_COUNTS);
	if (v) {
		__sync_fetch_and_add(&v->dir[direction].packets, packets);
		__sync_fetch_and_add(&v->dir[direction].bytes, bytes);
	}
	return 1; /* allow: podsight only counts */
}

SEC("cgroup_skb/ingress")
int cgroup_skb_ingress(struct __sk_buff *skb)
{
	return count_skb(skb, CGROUP_SKB_INGRESS);
}

SEC("cgroup_skb/egress")
int cgroup_skb_egress(struct __sk_buff *skb)
{
	return count_skb(skb, CGROUP_SKB_EGRESS);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
