#!/usr/bin/env bash
# Measures what the agent costs on this host, to size the chart's resource requests and limits
# (helm/podsight/values.yaml, docs/install.md "Resources"): CPU and memory while idle and under an
# exec + TCP connection + scrape storm, with the build's default configuration (what the chart
# renders, bar the listen address and the cgroup root).
#
# The agent runs in a memory cgroup of its own, so that the memory the kernel charges for its BPF maps
# and programs is counted with its RSS, as a pod's memory limit counts them.
#
#   scripts/measure-resources.sh [SECONDS]     (default 60 per phase; as root, after scripts/build.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
agent=${BUILD_DIR:-build}/agent/podsight
[[ $(id -u) -eq 0 && -x $agent ]] || { echo "run as root after scripts/build.sh" >&2; exit 1; }
work=$(mktemp -d /tmp/podsight-measure.XXXXXX)
pids=()
cg=""
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	[[ -n $cg ]] && rmdir "$cg" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

# A memory cgroup: v2 if the unified hierarchy has the memory controller, else v1 (hybrid hosts).
cg2=$(awk '$9 == "cgroup2" && $4 == "/" { print $5; exit }' /proc/self/mountinfo)
if grep -qw memory "$cg2/cgroup.controllers" 2>/dev/null && grep -qw memory "$cg2/cgroup.subtree_control"; then
	cg=$cg2/podsight-measure-$$
	mem_file=memory.current
	peak_file=memory.peak
else
	cg=/sys/fs/cgroup/memory/podsight-measure-$$
	mem_file=memory.usage_in_bytes
	peak_file=memory.max_usage_in_bytes
fi
mkdir "$cg"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf '{"http": {"listen": "127.0.0.1:%s"}, "cgroup_root": "%s"}\n' "$port" "$cg2" >"$work/config.json"
sh -c 'echo $$ >"$1/cgroup.procs" && exec "$2" --config "$3" --log-level warn' _ "$cg" "$agent" "$work/config.json" &
apid=$!
pids+=("$apid")
for _ in $(seq 100); do python3 - "$port" <<'PY' 2>/dev/null && break || sleep 0.1; done
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/readyz", timeout=2)
PY

ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$apid/stat"; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$apid/status"; }
scrape() { python3 - "$port" <<'PY'
import sys, time, urllib.request
t = time.monotonic()
body = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=10).read()
print(f"{(time.monotonic() - t) * 1000:.1f} {len(body)} {sum(1 for l in body.splitlines() if l and not l.startswith(b'#'))}")
PY
}

# Kernel memory of the BPF maps the agent holds (fdinfo "memlock" per map, each map once). Per-CPU
# maps grow with the number of possible CPUs: `possible` below says how many this host has.
bpf_map_kib() {
	local fd id seen=" " total=0 m
	for fd in /proc/$apid/fdinfo/*; do
		id=$(awk '$1 == "map_id:" { print $2 }' "$fd" 2>/dev/null) || continue
		[[ -n $id && $seen != *" $id "* ]] || continue
		seen+="$id "
		m=$(awk '$1 == "memlock:" { print $2 }' "$fd")
		total=$((total + ${m:-0}))
	done
	echo $((total / 1024))
}

# phase NAME SCRAPE_INTERVAL: samples CPU and memory for $secs seconds while scraping.
phase() {
	local name=$1 every=$2 c0 c1 t0 t1 rss max_rss=0 mem max_mem=0 s last=""
	sleep 2
	c0=$(cpu_ticks)
	t0=$(date +%s.%N)
	local end=$((SECONDS + secs))
	while ((SECONDS < end)); do
		last=$(scrape)
		rss=$(rss_kib)
		mem=$(($(cat "$cg/$mem_file") / 1024))
		((rss > max_rss)) && max_rss=$rss
		((mem > max_mem)) && max_mem=$mem
		sleep "$every"
	done
	c1=$(cpu_ticks)
	t1=$(date +%s.%N)
	read -r ms bytes series <<<"$last"
	printf '%-6s cpu %6.2f%% of a core | RSS max %6.1f MiB | cgroup memory max %6.1f MiB (peak %6.1f) | scrape %s ms, %s series, %s bytes\n' \
		"$name" "$(echo "($c1 - $c0) / $ticks / ($t1 - $t0) * 100" | bc -l)" "$(echo "$max_rss / 1024" | bc -l)" \
		"$(echo "$max_mem / 1024" | bc -l)" "$(echo "$(cat "$cg/$peak_file") / 1048576" | bc -l)" "$ms" "$series" "$bytes"
}

echo "podsight $("$agent" --version | cut -d' ' -f2-) on $(uname -r), $(nproc) CPUs online, $(cat /sys/devices/system/cpu/possible) possible, ${secs}s per phase"
echo "BPF maps held by the agent: $(bpf_map_kib) KiB (memlock)"
phase idle 15

# Load: exec storms in two fresh cgroups, loopback TCP connect/send/close, and a scrape every second.
storm_cg=$cg2/podsight-measure-load-$$
mkdir "$storm_cg"
for i in 1 2; do
	sh -c 'echo $$ >"$1/cgroup.procs"; while :; do /bin/true; done' _ "$storm_cg" &
	pids+=("$!")
done
python3 - "$storm_cg" <<'PY' &
import os, socket, sys, threading
with open(os.path.join(sys.argv[1], "cgroup.procs"), "w") as f:
    f.write(str(os.getpid()))
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(512)
port = srv.getsockname()[1]
def serve():
    while True:
        c, _ = srv.accept(); c.recv(4096); c.close()
threading.Thread(target=serve, daemon=True).start()
while True:
    s = socket.create_connection(("127.0.0.1", port)); s.sendall(b"x" * 1000); s.close()
PY
pids+=("$!")
phase load 1
execs=$(python3 - "$port" "/podsight-measure-load-$$" <<'PY'
import sys, urllib.request
body = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=10).read().decode()
print(sum(float(l.rsplit(" ", 1)[1]) for l in body.splitlines()
          if l.startswith("podsight_process_execs_total{") and f'cgroup="{sys.argv[2]}"' in l))
PY
)
echo "load: ${execs%.*} executions counted in the storm's cgroup"
for p in "${pids[@]:1}"; do kill "$p" 2>/dev/null || true; done
sleep 1
rmdir "$storm_cg" 2>/dev/null || true
