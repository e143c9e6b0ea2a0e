/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* xdp family: the key and value both the BPF program and the agent read. Fixed-width, no implicit padding. */
#ifndef PODSIGHT_SHARED_XDP_H
#define PODSIGHT_SHARED_XDP_H

/* Network-layer family of a frame, after any VLAN tags. */
enum xdp_family {
	XDP_FAM_OTHER = 0, /* ARP, LLDP, frames too short to classify, ... */
	XDP_FAM_IPV4 = 1,
	XDP_FAM_IPV6 = 2,
	XDP_FAM_NR,
};

/* Transport protocol: IPv4 protocol or the IPv6 next header after extension headers. */
enum xdp_protocol {
	XDP_PROTO_OTHER = 0,
	XDP_PROTO_TCP = 1,
	XDP_PROTO_UDP = 2,
	XDP_PROTO_ICMP = 3, /* ICMP for IPv4, ICMPv6 for IPv6 */
	XDP_PROTO_NR,
};

struct xdp_key {
	__u32 ifindex; /* ingress interface */
	__u8 family; /* enum xdp_family */
	__u8 protocol; /* enum xdp_protocol */
	__u16 pad; /* always 0 */
};

struct xdp_value {
	__u64 packets;
	__u64 bytes; /* frame length as XDP sees it: Ethernet header included, no FCS */
};

/* Index into the family's map_errors array. */
enum xdp_map_index {
	XDP_MAP_COUNTS = 0,
	XDP_MAP_NR,
};

#endif
