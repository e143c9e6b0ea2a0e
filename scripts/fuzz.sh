#!/usr/bin/env bash
# Runs every libFuzzer target of a PODSIGHT_FUZZ build for a bounded time, starting from its committed
# seed corpus. Fails (and prints the crashing input) when a target finds a crash, a sanitizer report,
# a leak or a timeout.
#
#   scripts/fuzz.sh [BUILD_DIR] [TARGET...]     default: build-sanitize, every target it built
#
# Environment: FUZZ_SECONDS (per target, default 40: six targets, two at a time on CI's two CPUs, keep
# the stage at ~2 minutes), FUZZ_MAX_LEN (default 4096), FUZZ_JOBS (targets run at once, default the
# number of CPUs).
# New inputs a run finds go to BUILD_DIR/fuzz-work/<target>/ (not committed). To grow a seed corpus:
#   build-sanitize/tests/fuzz/fuzz_<t> -merge=1 tests/fuzz/corpus/<t> build-sanitize/fuzz-work/<t>
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-sanitize}
shift || true
seconds=${FUZZ_SECONDS:-40}
max_len=${FUZZ_MAX_LEN:-4096}
list=$build/tests/fuzz/targets.txt
[[ -r "$list" ]] || { echo "fuzz: $list missing: configure $build with -DPODSIGHT_FUZZ=ON" >&2; exit 1; }
targets=("$@")
((${#targets[@]})) || mapfile -t targets <"$list"

# fuzz_one TARGET: runs it; its output goes to $build/fuzz-TARGET.log.
fuzz_one() {
	local t=$1 bin=$build/tests/fuzz/fuzz_$1 seeds=tests/fuzz/corpus/$1 work=$build/fuzz-work/$1
	local artifacts=$build/fuzz-artifacts/$1
	mkdir -p "$work" "$artifacts"
	local args=(-max_total_time="$seconds" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048
		-print_final_stats=1 -artifact_prefix="$artifacts/")
	[[ -f tests/fuzz/$t.dict ]] && args+=(-dict="tests/fuzz/$t.dict")
	# The first corpus directory receives new inputs; the seed directory is only read.
	"$bin" "${args[@]}" "$work" "$seeds" >"$build/fuzz-$t.log" 2>&1
}

for t in "${targets[@]}"; do
	[[ -x "$build/tests/fuzz/fuzz_$t" ]] || { echo "fuzz: $build/tests/fuzz/fuzz_$t not built" >&2; exit 1; }
done
# As many targets at once as there are CPUs (FUZZ_JOBS): each is one process.
jobs=${FUZZ_JOBS:-$(nproc)}
declare -A pid_of=()
for t in "${targets[@]}"; do
	while (($(jobs -rp | wc -l) >= jobs)); do wait -n || true; done
	echo "fuzz: $t for ${seconds}s" >&2
	fuzz_one "$t" &
	pid_of[$t]=$!
done
failed=()
for t in "${targets[@]}"; do
	if ! wait "${pid_of[$t]}"; then
		failed+=("$t")
		tail -60 "$build/fuzz-$t.log" >&2
		for a in "$build/fuzz-artifacts/$t"/*; do
			[[ -f "$a" ]] || continue
			echo "fuzz: $t: reproducer $a ($(wc -c <"$a") bytes), base64:" >&2
			head -c 4096 "$a" | base64 >&2
		done
		continue
	fi
	grep -E '^stat::(number_of_executed_units|new_units_added|peak_rss_mb)' "$build/fuzz-$t.log" |
		sed "s/^/fuzz: $t: /" >&2
done
if ((${#failed[@]})); then
	echo "fuzz: FAILED: ${failed[*]} (replay: $build/tests/fuzz/fuzz_<target> <reproducer>)" >&2
	exit 1
fi
