#!/usr/bin/env bash
# Installs dependencies, builds, and runs the agent on this host (no Kubernetes needed), logging text
# to the terminal. Metrics: http://127.0.0.1:10795/metrics. Extra arguments go to the agent.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "run as root: the agent loads BPF programs" >&2; exit 1; }
scripts/deps.sh
scripts/build.sh
scripts/kernel-mounts.sh
exec build/agent/podsight --log-format text "$@"
