#!/usr/bin/env bash
# Installs dependencies, builds, and runs the whole test suite: unit tests, then the privileged
# integration tests against the real kernel. With CI=true a privileged test that would skip fails.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || echo "warning: not root: privileged tests will skip (and fail under CI=true)" >&2
scripts/deps.sh
scripts/build.sh
scripts/kernel-mounts.sh || true
cd build
ctest --output-on-failure --timeout 600 -L unit -j2
ctest --output-on-failure --timeout 600 -L integration
cd ..
# The chart, manifests, alerts, dashboards' rules, least privilege and the container image.
tests/packaging/run.sh
