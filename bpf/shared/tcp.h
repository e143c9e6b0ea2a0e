/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* tcp family: the keys and values both the BPF programs and the agent read. Fixed-width types, no
 * implicit padding. */
#ifndef PODSIGHT_SHARED_TCP_H
#define PODSIGHT_SHARED_TCP_H

/* Who opened the connection, as seen from the socket's own workload. */
enum tcp_direction {
	TCP_DIR_UNKNOWN = 0, /* open before the agent started (or before its entry could be made) */
	TCP_DIR_OUTBOUND = 1, /* this socket called connect() */
	TCP_DIR_INBOUND = 2, /* this socket was accepted by a listener */
};

/* One established socket. The network namespace is part of the key: two pods can hold the same
 * 4-tuple (127.0.0.1 sidecars, overlapping pod networks). Addresses are IPv4 in the first 4 bytes for
 * AF_INET, the full IPv6 address for AF_INET6 (v4-mapped included); ports in host byte order. */
struct tcp_conn_key {
	__u32 netns; /* inode number of the socket's network namespace */
	__u16 family; /* AF_INET or AF_INET6 */
	__u16 lport;
	__u16 rport;
	__u16 pad;
	__u8 laddr[16];
	__u8 raddr[16];
};

struct tcp_conn {
	__u64 cgroup_id; /* cgroup v2 id of the socket (sk_cgrp_data), not of whoever ran the hook */
	/* Payload bytes already added to tcp_stats for this socket: the close hook and the scrape-time
	 * iterator each add only what lies beyond these, under the socket lock, so nothing is counted
	 * twice. */
	__u64 sent_folded;
	__u64 received_folded;
	/* Baselines read from the socket when the entry was made: bytes_acked counts the SYN on the
	 * active side, and a socket adopted at start-up carries bytes from before the agent. */
	__u64 acked_base;
	__u64 received_base;
	/* Retransmitted segments the same way: the kernel's own per-socket count (tcp_sock.total_retrans,
	 * what TcpRetransSegs adds up) at establishment, and how much beyond it was already added. */
	__u64 retrans_base;
	__u64 retrans_folded;
	__u8 direction; /* enum tcp_direction */
	__u8 state; /* TCP state when the record was made (ESTABLISHED, or an adopted socket's): for bpftool */
	__u8 pad[2];
	__u32 remote; /* outbound, with remote labels on: the remote endpoint id at connect time */
};

/* What the scrape-time iterator over socket storage (iter/bpf_sk_storage_map) writes for each
 * tracked socket that is still open, for the active-connections gauge. */
struct tcp_open_record {
	__u64 cgroup_id;
	__u32 remote; /* tcp_conn.remote */
	__u8 direction; /* enum tcp_direction */
	__u8 pad[3];
};

/* Remote labels (opt-in): endpoint ids the programs give by themselves; the agent's start here. */
#define TCP_REMOTE_EXTERNAL 0 /* an address the agent did not name */
#define TCP_REMOTE_LOCAL 1 /* loopback */
#define TCP_REMOTE_FIRST 16

/* Key of tcp_remote_addrs (address -> endpoint id, written by the agent): IPv6, IPv4 as
 * ::ffff:a.b.c.d. */
struct tcp_remote_addr {
	__u8 addr[16];
};

/* Counters of outbound connections per (cgroup, remote endpoint). */
struct tcp_remote_key {
	__u64 cgroup_id;
	__u32 remote;
	__u32 pad;
};

struct tcp_remote_stats {
	__u64 opened;
	__u64 connect_failures;
	__u64 sent_bytes;
	__u64 received_bytes;
	__u64 retransmits;
};

/* Counters per (cgroup, direction). */
struct tcp_stats_key {
	__u64 cgroup_id;
	__u8 direction;
	__u8 pad[7];
};

struct tcp_stats {
	__u64 opened;
	__u64 closed;
	__u64 connect_failures; /* outbound connections that never reached ESTABLISHED */
	__u64 sent_bytes; /* payload bytes the peer acknowledged */
	__u64 received_bytes; /* payload bytes received in order */
	__u64 retransmits; /* retransmitted segments */
};

/* Index into the family's map_errors array. */
enum tcp_map_index {
	TCP_MAP_CONNS = 0,
	TCP_MAP_STATS = 1,
	TCP_MAP_REMOTE = 2, /* tcp_remote_stats */
	TCP_MAP_NR,
};

#endif
