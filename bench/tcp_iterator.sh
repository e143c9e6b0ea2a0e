#!/usr/bin/env bash
# Per-scrape cost of the tcp family's iterator walk: N connections held open inside a fresh network
# namespace (loopback, 2N sockets), the agent scraped S times with BPF statistics on. Prints the
# scrape duration the agent reports and the in-kernel time of the iter/tcp program per scrape.
# Usage (root, after scripts/build.sh): bench/tcp_iterator.sh [N=1000] [S=20]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000}
scrapes=${2:-20}
port=18796
ns=psn-bench-$$
work=$(mktemp -d)
cleanup() {
  [ -n "${agent:-}" ] && kill "$agent" 2>/dev/null || true
  [ -n "${holder:-}" ] && kill "$holder" 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$ns"
ip -n "$ns" link set lo up
ulimit -n 65536 2>/dev/null || true

# One process holds both ends of every connection open until killed.
cat >"$work/hold.py" <<PY
import socket, sys, time
n = int(sys.argv[1])
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", $port)); srv.listen(n + 16)
keep = []
for _ in range(n):
    c = socket.create_connection(("127.0.0.1", $port)); a, _ = srv.accept()
    c.sendall(b"x" * 100); a.recv(100); keep += [c, a]
print("ready", flush=True)
time.sleep(3600)
PY
ip netns exec "$ns" python3 "$work/hold.py" "$n" >"$work/hold.out" &
holder=$!
for _ in $(seq 100); do grep -q ready "$work/hold.out" 2>/dev/null && break; sleep 0.1; done

echo '{"http": {"listen": "127.0.0.1:18797"}, "bpf_stats": true, "log": {"level": "debug"}, "programs": {"exec": {"enabled": false}}}' >"$work/cfg.json"
build/agent/podsight --config "$work/cfg.json" >"$work/agent.log" 2>&1 &
agent=$!
for _ in $(seq 100); do curl -sf 127.0.0.1:18797/readyz >/dev/null && break; sleep 0.1; done

metric() { grep -E "^$1" "$work/m.txt" | awk '{s+=$NF} END {printf "%.9f", s}'; }
curl -s 127.0.0.1:18797/metrics >"$work/m.txt"
t0=$(metric 'podsight_program_run_seconds_total\{program="tcp_iter"\}')
r0=$(metric 'podsight_program_runs_total\{program="tcp_iter"\}')
total=0
for _ in $(seq "$scrapes"); do
  curl -s 127.0.0.1:18797/metrics >"$work/m.txt"
  total=$(echo "$total + $(metric 'podsight_scrape_duration_seconds ')" | bc -l)
done
t1=$(metric 'podsight_program_run_seconds_total\{program="tcp_iter"\}')
r1=$(metric 'podsight_program_runs_total\{program="tcp_iter"\}')
active=$(grep -E '^podsight_tcp_connections_active' "$work/m.txt" | awk '{s+=$NF} END {print s}')
echo "connections held open: $n ($((2 * n)) sockets); tracked by the agent: $active"
printf 'scrape duration (agent, all collectors): %.3f ms per scrape\n' "$(echo "$total * 1000 / $scrapes" | bc -l)"
walks=$(grep -c '"tcp iterator fold"' "$work/agent.log")
walk_us=$(grep '"tcp iterator fold"' "$work/agent.log" | tail -n "$scrapes" | sed 's/.*"walk_us":"\([0-9]*\)".*/\1/' |
  awk '{s+=$1} END {printf "%.3f", s/NR/1000}')
echo "iterator walk (wall clock, every namespace with tracked connections): $walk_us ms per scrape ($walks walks)"
printf 'iter/tcp in-kernel: %.3f ms per scrape, %d program runs per scrape\n' \
  "$(echo "($t1 - $t0) * 1000 / $scrapes" | bc -l)" "$(echo "($r1 - $r0) / $scrapes" | bc)"
