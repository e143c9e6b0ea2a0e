#!/usr/bin/env bash
# Scrape cost of the tcp family's bytes of open connections with many network namespaces, as on a
# node with many pods: N namespaces, each holding C loopback connections open (2C sockets), the agent
# scraped S times with BPF statistics on. Prints the scrape duration the agent reports, the wall time
# of the open-connection walk and the in-kernel time of the scrape-time iterator, per scrape.
#
# Usage (root, after scripts/build.sh):
#   bench/tcp_netns.sh [N=100] [C=3] [S=20] [open_connections=auto|sk_storage|iter_tcp|-]
# "-" leaves programs.tcp.open_connections out of the configuration (for builds that predate it).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100}
conns=${2:-3}
scrapes=${3:-20}
method=${4:-auto}
port=18798
listen=127.0.0.1:18799
prefix=psn-b$$-
work=$(mktemp -d)
cleanup() {
  [ -n "${agent:-}" ] && kill "$agent" 2>/dev/null && wait "$agent" 2>/dev/null || true
  [ -n "${holder:-}" ] && kill "$holder" 2>/dev/null || true
  for i in $(seq "$n"); do ip netns del "$prefix$i" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
for i in $(seq "$n"); do
  ip netns add "$prefix$i"
  ip -n "$prefix$i" link set lo up
done
ulimit -n 65536 2>/dev/null || true

# One process makes every connection: it enters each namespace in turn (a socket stays in the
# namespace it was made in), then holds them all open until killed.
cat >"$work/hold.py" <<'PY'
import ctypes, os, socket, sys, time
libc = ctypes.CDLL(None, use_errno=True)
prefix, n, conns, port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
home = os.open("/proc/self/ns/net", os.O_RDONLY)
keep = []
for i in range(1, n + 1):
    fd = os.open("/var/run/netns/%s%d" % (prefix, i), os.O_RDONLY)
    if libc.setns(fd, 0x40000000) != 0:
        raise OSError(ctypes.get_errno(), "setns")
    os.close(fd)
    srv = socket.socket(); srv.bind(("127.0.0.1", port)); srv.listen(conns + 4)
    for _ in range(conns):
        c = socket.create_connection(("127.0.0.1", port)); a, _ = srv.accept()
        c.sendall(b"x" * 100); a.recv(100); keep += [c, a]
    keep.append(srv)
libc.setns(home, 0x40000000)
print("ready", flush=True)
time.sleep(3600)
PY
python3 "$work/hold.py" "$prefix" "$n" "$conns" "$port" >"$work/hold.out" &
holder=$!
for _ in $(seq 300); do grep -q ready "$work/hold.out" 2>/dev/null && break; sleep 0.1; done
grep -q ready "$work/hold.out" || { echo "holder did not start" >&2; exit 1; }

tcp='"max_connections": 65536'
[ "$method" != "-" ] && tcp="$tcp, \"open_connections\": \"$method\""
cat >"$work/cfg.json" <<EOF
{"http": {"listen": "$listen"}, "bpf_stats": true, "log": {"level": "debug"},
 "kubernetes": {"source": "off"},
 "programs": {"exec": {"enabled": false}, "cgroup_skb": {"enabled": false}, "tcp": {$tcp}}}
EOF
build/agent/podsight --config "$work/cfg.json" >"$work/agent.log" 2>&1 &
agent=$!
for _ in $(seq 300); do curl -sf "$listen/readyz" >/dev/null && break; sleep 0.1; done

metric() { grep -E "^$1" "$work/m.txt" | awk '{s+=$NF} END {printf "%.9f", s}'; }
curl -s "$listen/metrics" >"$work/m.txt"
t0=$(metric 'podsight_program_run_seconds_total\{program="tcp_iter"\}')
r0=$(metric 'podsight_program_runs_total\{program="tcp_iter"\}')
skip=$(grep -c '"tcp iterator fold"' "$work/agent.log" || true)
total=0
for _ in $(seq "$scrapes"); do
  curl -s "$listen/metrics" >"$work/m.txt"
  total=$(echo "$total + $(metric 'podsight_scrape_duration_seconds ')" | bc -l)
done
t1=$(metric 'podsight_program_run_seconds_total\{program="tcp_iter"\}')
r1=$(metric 'podsight_program_runs_total\{program="tcp_iter"\}')
active=$(grep -E '^podsight_tcp_connections_active' "$work/m.txt" | awk '{s+=$NF} END {print s}')
used=$(grep -E '^podsight_tcp_open_connections_method\{' "$work/m.txt" | awk '$NF == 1' |
  sed 's/.*method="\([^"]*\)".*/\1/' || true)
echo "namespaces: $n, connections per namespace: $conns ($((2 * n * conns)) sockets held open); tracked by the agent: $active"
echo "open-connection walk: ${used:-iter_tcp (build without podsight_tcp_open_connections_method)}"
printf 'scrape duration (agent, all collectors): %.3f ms per scrape\n' "$(echo "$total * 1000 / $scrapes" | bc -l)"
walk_us=$(grep '"tcp iterator fold"' "$work/agent.log" | tail -n +"$((skip + 1))" |
  sed 's/.*"walk_us":"\([0-9]*\)".*/\1/' | awk '{s+=$1} END {if (NR) printf "%.3f", s/NR/1000; else print "n/a"}')
echo "open-connection walk (wall clock): $walk_us ms per scrape"
printf 'scrape-time iterator in the kernel: %.3f ms per scrape, %d program runs per scrape\n' \
  "$(echo "($t1 - $t0) * 1000 / $scrapes" | bc -l)" "$(echo "($r1 - $r0) / $scrapes" | bc)"
ps -o rss= -p "$agent" | awk '{printf "agent RSS: %.1f MiB\n", $1/1024}'
