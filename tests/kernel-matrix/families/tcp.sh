# Kernel-matrix expectations of the tcp family (contract: families/exec.sh).
family=tcp

best_variant() {
	case "$1" in
	*) echo tp_btf ;; # first in the auto order; sock/inet_sock_set_state is BTF-typed on every matrix kernel
	esac
}

# 23 connections accepted and closed by a listener of the same cgroup, then 23 refused ones.
workload() {
	in_cgroup matrix-tcp pxnet tcp 23 7301
}

expect='
podsight_tcp_connections_opened_total cgroup="/matrix-tcp" direction="outbound" = 23
podsight_tcp_connections_opened_total cgroup="/matrix-tcp" direction="inbound" = 23
podsight_tcp_connect_failures_total cgroup="/matrix-tcp" = 23
'
