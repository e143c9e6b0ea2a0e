#!/usr/bin/env bash
# Where a large scrape's CPU time goes: the agent (as bench/run.sh builds it) with its exec_counts map
# filled with N synthetic series over 100 cgroups (podsight-bench fill, as the scrape measurement
# does), sampled by `perf record` (cpu-clock, call graphs) over S plain scrapes; prints the hottest
# functions, self time and with children. Usage (root, after bench/run.sh built build-bench/):
#   bench/profile_scrape.sh [N=100000] [S=8]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100000}
scrapes=${2:-8}
build=${BENCH_BUILD_DIR:-build-bench}
listen=127.0.0.1:18877
root=$(awk '$3 == "cgroup2" {print $2; exit}' /proc/self/mounts)
work=$(mktemp -d)
cgs=()
cleanup() {
  [ -n "${agent:-}" ] && kill "$agent" 2>/dev/null && wait "$agent" 2>/dev/null || true
  for c in "${cgs[@]}"; do rmdir "$c" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
ids=()
for i in $(seq 100); do
  c="$root/pbprof-$$-$i"
  mkdir "$c"
  cgs+=("$c")
  ids+=("$(stat -c %i "$c")")
done
cat >"$work/cfg.json" <<EOF
{"http": {"listen": "$listen"}, "log": {"level": "warn"}, "programs": {"exec": {"max_entries": 131072}},
 "cardinality": {"max_series": 1000000}}
EOF
"$build/agent/podsight" --config "$work/cfg.json" >"$work/agent.log" 2>&1 &
agent=$!
for _ in $(seq 300); do curl -sf "$listen/readyz" >/dev/null && break; sleep 0.1; done
map=$("$build/bench/podsight-bench" held --pid "$agent" |
  python3 -c 'import json,sys; print(next(m["id"] for m in json.load(sys.stdin)["maps"] if m["name"].startswith("exec_counts")))')
"$build/bench/podsight-bench" fill --map-id "$map" --kind exec --entries "$n" \
  --cgroups "$(IFS=,; echo "${ids[*]}")" >/dev/null
curl -s "$listen/metrics" -o "$work/m.txt"  # warm-up: cgroup ids resolved once
echo "series: $(grep -vc '^#' "$work/m.txt")"
perf record -q -F 999 -g -p "$agent" -o "$work/perf.data" -- sleep 600 &
perf=$!
sleep 1
t0=$(date +%s.%N)
for _ in $(seq "$scrapes"); do curl -s "$listen/metrics" -o /dev/null; done
t1=$(date +%s.%N)
kill -INT "$perf"
wait "$perf" || true
echo "scrapes: $scrapes, wall per scrape: $(echo "($t1 - $t0) * 1000 / $scrapes" | bc -l | cut -c1-6) ms"
echo "--- self time"
perf report -i "$work/perf.data" --no-children --sort sym --stdio -g none 2>/dev/null | grep -v '^#' |
  grep -v '^$' | head -25
echo "--- with children"
perf report -i "$work/perf.data" --children --sort sym --stdio -g none 2>/dev/null | grep -v '^#' |
  grep -v '^$' | head -30
