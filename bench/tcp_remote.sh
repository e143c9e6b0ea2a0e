#!/usr/bin/env bash
# In-kernel cost of the opt-in remote labels (programs.tcp.remote) per TCP state change: N connections
# to this host's own first non-loopback IPv4 address (so that the remote address is looked up, not
# short-cut as loopback), opened, written to and closed by one process, with the agent's tcp family
# (remote off, then on) and BPF statistics on. Prints the lifecycle program's mean run time per run for each, from
# podsight_program_run_seconds_total / podsight_program_runs_total{program="tcp_state"}.
# Usage (root, after scripts/build.sh): bench/tcp_remote.sh [N=20000] [rounds=3]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-20000}
rounds=${2:-3}
listen=127.0.0.1:18801
work=$(mktemp -d)
cleanup() {
  [ -n "${agent:-}" ] && kill "$agent" 2>/dev/null && wait "$agent" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
addr=$(ip -4 -o addr show scope global | awk '{sub(/\/.*/, "", $4); print $4; exit}')
[ -n "$addr" ] || { echo "no global IPv4 address on this host" >&2; exit 1; }

cat >"$work/storm.py" <<'PY'
import socket, sys
n = int(sys.argv[1])
addr = sys.argv[2]
srv = socket.socket(); srv.bind((addr, 0)); srv.listen(512)
port = srv.getsockname()[1]
for _ in range(n):
    c = socket.create_connection((addr, port)); a, _ = srv.accept()
    c.sendall(b"x" * 64); a.recv(64); c.close(); a.close()
PY

metric() { curl -s "$listen/metrics" | grep -E "^$1" | awk '{s+=$NF} END {printf "%.9f", s}'; }
run() {  # run true|false -> mean ns per tcp_state run
  cat >"$work/cfg.json" <<JSON
{"http": {"listen": "$listen"}, "bpf_stats": true, "kubernetes": {"source": "off"},
 "programs": {"exec": {"enabled": false}, "cgroup_skb": {"enabled": false},
              "tcp": {"remote": {"enabled": $1}}}}
JSON
  build/agent/podsight --config "$work/cfg.json" >"$work/agent.log" 2>&1 &
  agent=$!
  for _ in $(seq 300); do curl -sf "$listen/readyz" >/dev/null && break; sleep 0.1; done
  local t0 r0 t1 r1
  t0=$(metric 'podsight_program_run_seconds_total\{program="tcp_state"\}')
  r0=$(metric 'podsight_program_runs_total\{program="tcp_state"\}')
  python3 "$work/storm.py" "$n" "$addr"
  t1=$(metric 'podsight_program_run_seconds_total\{program="tcp_state"\}')
  r1=$(metric 'podsight_program_runs_total\{program="tcp_state"\}')
  kill "$agent"; wait "$agent" 2>/dev/null || true; agent=
  echo "($t1 - $t0) * 1000000000 / ($r1 - $r0)" | bc -l
}
echo "tcp_state mean run time per state change, ns ($n connections to $addr per round)"
for r in $(seq "$rounds"); do
  off=$(run false); on=$(run true)
  printf 'round %d: remote off %.0f ns, remote on %.0f ns\n' "$r" "$off" "$on"
done
