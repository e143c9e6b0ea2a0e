// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Benchmark floor: programs that do nothing, one per hook podsight attaches to. Attached next to the
 * agent under the same workload, their run time per run is what the kernel's run-time statistics
 * and the program call itself cost, so the agent's programs can be read net of it. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

SEC("tp_btf/sched_process_exec")
int BPF_PROG(floor_exec_btf)
{
	return 0;
}

SEC("tracepoint/sched/sched_process_exec")
int floor_exec_tp(void *ctx)
{
	return 0;
}

SEC("tracepoint/sock/inet_sock_set_state")
int floor_tcp_tp(void *ctx)
{
	return 0;
}

SEC("cgroup_skb/ingress")
int floor_skb_in(struct __sk_buff *skb)
{
	return 1;
}

SEC("cgroup_skb/egress")
int floor_skb_out(struct __sk_buff *skb)
{
	return 1;
}

SEC("xdp")
int floor_xdp(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
