# Kernel-matrix expectations of the xdp family (contract: families/exec.sh). Opt-in: the config
# enables it on the loopback interface, where the workload's frames are received.
family=xdp
config='"xdp": {"enabled": true, "interfaces": ["lo"]}'

best_variant() {
	case "$1" in
	*) echo link ;; # bpf_link for XDP: Linux >= 5.9
	esac
}

# 29 UDP datagrams of 100 bytes over loopback: 29 more frames of 14 + 20 + 8 + 100 bytes received on
# lo (the other families' workloads use lo too, hence "+").
workload() {
	pxnet udp 29 100 7501
}

expect='
podsight_xdp_packets_total interface="lo" family="ipv4" protocol="udp" = +29
podsight_xdp_bytes_total interface="lo" family="ipv4" protocol="udp" = +4118
'
