#!/usr/bin/env bash
# Installs dependencies, builds, and runs the whole test suite: unit tests, then the privileged
# integration tests against the real kernel. With CI=true a privileged test that would skip fails.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || echo "warning: not root: privileged tests will skip (and fail under CI=true)" >&2

stage_times=()
stage() { # stage NAME COMMAND...: runs it and remembers how long it took
	local name=$1 t0=$SECONDS
	shift
	echo "==> $name" >&2
	"$@"
	stage_times+=("$name: $((SECONDS - t0)) s")
}
tests() ( # tests BUILD_DIR: unit tests in parallel, then integration tests one at a time
	cd "$1"
	ctest --output-on-failure --timeout 900 -L unit -j2
	ctest --output-on-failure --timeout 900 -L integration
)
# The same suite again, built by clang with AddressSanitizer, UndefinedBehaviorSanitizer and leak
# checks (the agent binary too, so integration tests check it). The libFuzzer targets share that build.
sanitize_build() {
	CC=clang CXX=clang++ BUILD_DIR=build-sanitize scripts/build.sh \
		-DPODSIGHT_SANITIZE=ON -DPODSIGHT_FUZZ=ON -DPODSIGHT_WERROR=OFF
}
sanitize_tests() ( # a subshell: the options stay in here
	# ASan stops at the first error by default; -fno-sanitize-recover makes UBSan stop too.
	export ASAN_OPTIONS=detect_leaks=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1
	export UBSAN_OPTIONS=print_stacktrace=1
	tests build-sanitize
	cd build-sanitize && ctest --output-on-failure --timeout 900 -L fuzz -j2 # seed corpora, replayed
)

stage "dependencies" scripts/deps.sh
stage "build" scripts/build.sh
scripts/kernel-mounts.sh || true
stage "tests" tests build
stage "soak" scripts/soak.sh 60 # every family under exec, TCP and packet load; no growth, no lost scrape
stage "packaging" tests/packaging/run.sh  # chart, manifests, alerts, least privilege, container image
stage "sanitizer build" sanitize_build
stage "sanitizer tests" sanitize_tests
stage "fuzzing" scripts/fuzz.sh build-sanitize # FUZZ_SECONDS per target, default 40
stage "kernel matrix" scripts/kernel-matrix.sh build/agent/podsight # Debian 5.10, 6.1, 6.12 under qemu
# The verifiers of 5.10 and 6.1 warn where 6.18's do not: every variant loads there without a warning.
stage "kernel matrix tests" scripts/kernel-matrix-gtest.sh 'Agent.LoadingEveryVariant*' bullseye bookworm
printf 'time: %s\n' "${stage_times[@]}" >&2
