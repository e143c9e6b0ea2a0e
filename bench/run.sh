#!/usr/bin/env bash
# The benchmark suite, one command, as root: installs what it needs (apt), builds podsight and the
# bench tools into build-bench/, runs every measurement against its peers in interleaved rounds, writes
# bench/results/<stamp>/results.json (and latest.json, merged.json) and regenerates the tables of
# docs/performance.md. Usage: bench/run.sh [--quick] [--only a,b] [--skip a,b] [--duration SECONDS]
# [--rounds N] [--no-docs]; bench/run.sh --help lists the measurements.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "bench/run.sh: must run as root (loads BPF programs, makes cgroups, netns and veths)" >&2
  exit 1
fi

mapfile -t bench_packages < <(grep -v '^\s*\(#\|$\)' bench/deps.txt)
scripts/deps.sh "${bench_packages[@]}"
scripts/kernel-mounts.sh || true

# The agent as shipped (RelWithDebInfo), without the test suite.
BUILD_DIR=${BENCH_BUILD_DIR:-build-bench} scripts/build.sh -DPODSIGHT_TESTS=OFF -DPODSIGHT_BENCH=ON

# One suite at a time on a machine: two would measure each other.
exec 9>/run/podsight-bench.lock
flock -n 9 || { echo "bench/run.sh: another run holds /run/podsight-bench.lock" >&2; exit 1; }
PYTHONPATH=bench exec python3 -m podbench --build "${BENCH_BUILD_DIR:-build-bench}" "$@"
