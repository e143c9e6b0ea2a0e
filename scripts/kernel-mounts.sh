#!/usr/bin/env bash
# Mounts bpffs and tracefs where a minimal host or VM has not. The agent needs tracefs for classic
# tracepoints; bpffs is where a node keeps pinned BPF objects (podsight pins none; other tools may).
set -euo pipefail
mounted() { grep -q " - $1 " /proc/self/mountinfo; }
mounted bpf || mount -t bpf bpf /sys/fs/bpf
mounted tracefs || mount -t tracefs tracefs /sys/kernel/tracing
