// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* xdp family: counts every frame an interface receives, per (interface, family, protocol), and passes
 * it on unchanged. The parser only reads: up to two VLAN tags (802.1Q, 802.1ad), then the IPv4 header,
 * or the IPv6 header and its extension headers. Every read is checked against data_end; a frame that
 * ends early is counted as far as it could be classified. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "podsight.bpf.h"
#include "xdp.h"

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8

#define NEXTHDR_HOP 0
#define NEXTHDR_ROUTING 43
#define NEXTHDR_FRAGMENT 44
#define NEXTHDR_AUTH 51
#define NEXTHDR_DEST 60
#define NEXTHDR_ICMPV6 58

#define MAX_VLAN_TAGS 2
/* Real traffic carries at most a hop-by-hop, a routing, a fragment and a destination options header. */
#define MAX_IPV6_EXT_HEADERS 6

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	/* set from programs.xdp.max_interfaces * XDP_FAM_NR * XDP_PROTO_NR before load */
	__uint(max_entries, 768);
	__type(key, struct xdp_key);
	__type(value, struct xdp_value);
} xdp_counts SEC(".maps");

PODSIGHT_MAP_ERRORS(XDP_MAP_NR);

static __always_inline __u8 l4_protocol(__u8 proto)
{
	switch (proto) {
	case IPPROTO_TCP:
		return XDP_PROTO_TCP;
	case IPPROTO_UDP:
		return XDP_PROTO_UDP;
	case IPPROTO_ICMP:
	case NEXTHDR_ICMPV6:
		return XDP_PROTO_ICMP;
	}
	return XDP_PROTO_OTHER;
}

/* Follows the IPv6 extension-header chain from `nexthdr` at `off` and returns the upper-layer protocol,
 * or XDP_PROTO_OTHER when the chain is longer than we follow or leaves the frame. A non-first fragment
 * still names its upper-layer protocol in the fragment header, so its bytes count there too. */
static __always_inline __u8 ipv6_protocol(void *data, void *data_end, __u64 off, __u8 nexthdr)
{
	struct ipv6_opt_hdr *h;
	int i;

#pragma unroll
	for (i = 0; i < MAX_IPV6_EXT_HEADERS; i++) {
		switch (nexthdr) {
		case NEXTHDR_HOP:
		case NEXTHDR_ROUTING:
		case NEXTHDR_DEST:
		case NEXTHDR_FRAGMENT:
		case NEXTHDR_AUTH:
			break;
		default:
			return l4_protocol(nexthdr);
		}
		/* keeps the offset a small known range for the verifier: real chains are far shorter */
		if (off > 2048)
			return XDP_PROTO_OTHER;
		h = data + off;
		if ((void *)(h + 1) > data_end)
			return XDP_PROTO_OTHER;
		if (nexthdr == NEXTHDR_FRAGMENT)
			off += 8;
		else if (nexthdr == NEXTHDR_AUTH)
			off += ((__u64)h->hdrlen + 2) * 4;
		else
			off += ((__u64)h->hdrlen + 1) * 8;
		nexthdr = h->nexthdr;
	}
	return XDP_PROTO_OTHER;
}

static __always_inline void classify(void *data, void *data_end, struct xdp_key *key)
{
	struct ethhdr *eth = data;
	__u64 off = sizeof(*eth);
	__be16 proto;
	int i;

	if ((void *)(eth + 1) > data_end)
		return;
	proto = eth->h_proto;
#pragma unroll
	for (i = 0; i < MAX_VLAN_TAGS; i++) {
		struct vlan_hdr *vlan = data + off;

		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		if ((void *)(vlan + 1) > data_end)
			return;
		proto = vlan->h_vlan_encapsulated_proto;
		off += sizeof(*vlan);
	}

	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = data + off;

		key->family = XDP_FAM_IPV4;
		if ((void *)(ip + 1) > data_end)
			return;
		key->protocol = l4_protocol(ip->protocol);
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data + off;

		key->family = XDP_FAM_IPV6;
		if ((void *)(ip6 + 1) > data_end)
			return;
		key->protocol = ipv6_protocol(data, data_end, off + sizeof(*ip6), ip6->nexthdr);
	}
}

/* Adds one frame of `bytes` to the key's per-CPU slot; a failed insert (map full) is counted in
 * map_errors. Atomic adds, as in podsight_count: generic XDP can run from process context with only
 * bottom halves held off, and a preemptible kernel may interleave two runs on one CPU. */
static __always_inline void count_frame(const struct xdp_key *key, __u64 bytes)
{
	struct xdp_value zero = {};
	struct xdp_value *v;

	v = podsight_lookup_or_insert(&xdp_counts, key, &zero, &map_errors, XDP_MAP_COUNTS);
	if (!v)
		return;
	__sync_fetch_and_add(&v->packets, 1);
	__sync_fetch_and_add(&v->bytes, bytes);
}

SEC("xdp")
int xdp_count(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct xdp_key key = {};

	key.ifindex = ctx->ingress_ifindex;
	classify(data, data_end, &key);
	count_frame(&key, (__u64)(data_end - data));
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
