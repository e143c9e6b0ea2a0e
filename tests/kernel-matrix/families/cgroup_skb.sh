# Kernel-matrix expectations of the cgroup_skb family (contract: families/exec.sh).
family=cgroup_skb

best_variant() {
	case "$1" in
	*) echo link ;; # the only variant
	esac
}

# 41 UDP datagrams of 100 bytes over loopback, sender and receiver sockets in the same cgroup: each is
# one IPv4 packet of 20 + 8 + 100 bytes, egress from the sender and ingress to the receiver.
workload() {
	in_cgroup matrix-skb pxnet udp 41 100 7401
}

expect='
podsight_network_packets_total cgroup="/matrix-skb" direction="egress" = 41
podsight_network_packets_total cgroup="/matrix-skb" direction="ingress" = 41
podsight_network_bytes_total cgroup="/matrix-skb" direction="egress" = 5248
podsight_network_bytes_total cgroup="/matrix-skb" direction="ingress" = 5248
'
