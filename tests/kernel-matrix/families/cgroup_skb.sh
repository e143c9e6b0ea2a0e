# Kernel-matrix expectations of the cgroup_skb family (contract: families/exec.sh).
family=cgroup_skb

best_variant() {
	case "$1" in
	*) echo link ;; # the only variant
	esac
}

# Twice 41 UDP datagrams of 100 bytes over loopback, sender and receiver sockets in the same cgroup:
# each is one IPv4 packet of 20 + 8 + 100 bytes, egress from the sender and ingress to the receiver.
# The first 41 are counted in the hash; the scrape between gives the cgroup its per-CPU slot
# (bpf/shared/cgroup_skb.h), where the next 41 are counted.
workload() {
	in_cgroup matrix-skb pxnet udp 41 100 7401 &&
		wget -q -O /dev/null "http://127.0.0.1:$PORT/metrics" &&
		in_cgroup matrix-skb pxnet udp 41 100 7401
}

expect='
podsight_network_packets_total cgroup="/matrix-skb" direction="egress" = 82
podsight_network_packets_total cgroup="/matrix-skb" direction="ingress" = 82
podsight_network_bytes_total cgroup="/matrix-skb" direction="egress" = 10496
podsight_network_bytes_total cgroup="/matrix-skb" direction="ingress" = 10496
'
