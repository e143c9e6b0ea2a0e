#!/usr/bin/env bash
# Boots Debian's kernels under qemu (software emulation) with an initramfs holding the agent, its
# libraries, busybox and a test workload, and asserts in each that `podsight --check` passes, that every
# program family in tests/kernel-matrix/families/ attaches with the variant its table names for that
# kernel, and that the family's workload is counted exactly. Fails when any kernel or family does.
#
#   scripts/kernel-matrix.sh [AGENT_BINARY]        default: build/agent/podsight
#   scripts/kernel-matrix.sh --write-docs [AGENT]  also rewrites the table in docs/kernels.md
#
# Environment:
#   MATRIX_KERNELS  "release:series ..."  default "bullseye:5.10 bookworm:6.1 trixie:6.12": the newest
#                   linux-image-cloud-amd64 of that series in the release (+ -updates, -security)
#   MATRIX_OUT      results, console logs, initramfs      default build/kernel-matrix
#   MATRIX_CACHE    downloaded kernel packages            default $MATRIX_OUT/cache
#   MATRIX_TIMEOUT  seconds per VM                        default 600
#   MATRIX_FAMILIES the family files                      default tests/kernel-matrix/families
# Kernel packages come from a private apt configuration in a temporary directory
# (scripts/lib/private-apt.sh): no system apt state is touched; apt checks them against the signed
# archive index. Needs: qemu-system-x86, busybox-static, cpio, gcc, apt, dpkg-deb (scripts/deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# shellcheck source=lib/private-apt.sh
source scripts/lib/private-apt.sh

write_docs=0
if [[ "${1:-}" == --write-docs ]]; then
	write_docs=1
	shift
fi
agent=$(realpath "${1:-build/agent/podsight}")
kernels=${MATRIX_KERNELS:-bullseye:5.10 bookworm:6.1 trixie:6.12}
out=$(mkdir -p "${MATRIX_OUT:-build/kernel-matrix}" && realpath "${MATRIX_OUT:-build/kernel-matrix}")
cache=${MATRIX_CACHE:-$out/cache}
vm_timeout=${MATRIX_TIMEOUT:-600}
families_dir=$(realpath "${MATRIX_FAMILIES:-$root/tests/kernel-matrix/families}")

log() { echo "kernel-matrix: $*" >&2; }
die() {
	log "error: $*"
	exit 1
}
for t in qemu-system-x86_64 busybox cpio gzip gcc apt-get apt-cache dpkg-deb ldd timeout; do
	command -v "$t" >/dev/null || die "'$t' not found (scripts/deps.sh installs it)"
done
[[ -x "$agent" ]] || die "no agent binary at $agent (scripts/build.sh)"
busybox_bin=$(command -v busybox)
ldd "$busybox_bin" >/dev/null 2>&1 && die "$busybox_bin is not static (apt-get install busybox-static)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/kernel-matrix.XXXXXX")
trap 'rm -rf -- "$tmp"' EXIT
mkdir -p "$cache"

# ---- kernels ---------------------------------------------------------------------------------------
releases=()
for k in $kernels; do releases+=("${k%%:*}"); done
log "apt-get update (private: ${releases[*]}, amd64)"
private_apt_update "$tmp/apt" amd64 "${releases[@]}" || die "private apt-get update failed (above)"

# newest_kernel SERIES: "PACKAGE VERSION" of the newest linux-image-cloud-amd64 whose version starts
# with SERIES. (the metapackage's versions span every release configured).
newest_kernel() {
	local series=$1 best="" v
	for v in $(apt-cache madison linux-image-cloud-amd64 | awk '{ print $3 }'); do
		[[ "$v" == "$series".* ]] || continue
		if [[ -z "$best" ]] || dpkg --compare-versions "$v" gt "$best"; then best=$v; fi
	done
	[[ -n "$best" ]] || return 1
	local pkg
	pkg=$(apt-cache depends "linux-image-cloud-amd64=$best" | awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }')
	[[ -n "$pkg" ]] || return 1
	echo "$pkg $best" # the signed image and its metapackage share the version
}

# fetch_kernel PACKAGE VERSION: path of its vmlinuz, downloading into the cache when needed.
fetch_kernel() {
	local pkg=$1 ver=$2 sha deb dir
	sha=$(apt_field "$pkg=$ver" SHA256)
	[[ -n "$sha" ]] || die "$pkg=$ver is not in the archive index"
	deb=$cache/${pkg}_${ver}_amd64.deb
	if [[ ! -f "$deb" ]] || ! echo "$sha  $deb" | sha256sum -c --quiet - 2>/dev/null; then
		log "downloading $pkg=$ver"
		(cd "$tmp" && apt-get -q download "$pkg=$ver" >"$tmp/download.log" 2>&1) || die "apt-get download $pkg=$ver: $(tail -3 "$tmp/download.log")"
		mv "$tmp"/"${pkg}"_*.deb "$deb"
		echo "$sha  $deb" | sha256sum -c --quiet - || die "sha256 mismatch for $deb"
	fi
	dir=$tmp/kernel-$pkg
	mkdir -p "$dir"
	dpkg-deb -x "$deb" "$dir"
	local vmlinuz
	for vmlinuz in "$dir"/boot/vmlinuz-*; do break; done
	[[ -f "$vmlinuz" ]] || die "no boot/vmlinuz-* in $deb"
	echo "$vmlinuz"
}

# ---- initramfs -------------------------------------------------------------------------------------
ir=$tmp/initramfs
mkdir -p "$ir"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,etc,matrix/families}
cp "$busybox_bin" "$ir/bin/busybox"
for applet in $("$busybox_bin" --list); do
	[[ -e "$ir/bin/$applet" ]] || ln -s busybox "$ir/bin/$applet"
done
# add_binary HOST_PATH [DEST]: a binary and every shared library it loads, at their host paths.
add_binary() {
	local src=$1 dest=${2:-$1} lib
	mkdir -p "$ir$(dirname "$dest")"
	cp -L "$src" "$ir$dest"
	for lib in $(ldd "$src" 2>/dev/null | awk '/=> \// { print $3 } /^\t\/.*ld-linux/ { print $1 }'); do
		[[ -e "$ir$lib" ]] && continue
		mkdir -p "$ir$(dirname "$lib")"
		cp -L "$lib" "$ir$lib"
	done
}
add_binary "$agent" /usr/bin/podsight
# Workload programs (tests/kernel-matrix/workloads/NAME.c), static, as /bin/NAME.
for c in tests/kernel-matrix/workloads/*.c; do
	gcc -static -Os -Wall -Wextra -Werror -o "$ir/bin/$(basename "$c" .c)" "$c" || die "cannot build $c"
done
install -m 0755 tests/kernel-matrix/init.sh "$ir/init"
programs=""
for f in "$families_dir"/*.sh; do
	cp "$f" "$ir/matrix/families/"
	# A family file may name host binaries it needs and JSON for its "programs" entry.
	for extra in $(bash -c 'source "$1"; echo "${files:-}"' _ "$f"); do add_binary "$extra"; done
	fragment=$(bash -c 'source "$1"; echo "${config:-}"' _ "$f")
	[[ -n "$fragment" ]] && programs+="${programs:+, }$fragment"
done
cat >"$ir/matrix/config.json" <<EOF
{"http": {"listen": "127.0.0.1:10795"}, "programs": {${programs}}}
EOF
(cd "$ir" && find . | cpio -o -H newc --quiet | gzip -1) >"$out/initramfs.gz"
log "initramfs $(du -h "$out/initramfs.gz" | cut -f1) with $(basename "$agent") and $(ls "$families_dir" | wc -l) family file(s)"

# What each kernel must report: per family, its variant line and one line per expected series.
expected_passes() {
	local f n=0 lines
	for f in "$families_dir"/*.sh; do
		lines=$(bash -c 'source "$1"; echo "$expect"' _ "$f" | grep -c .)
		n=$((n + 1 + lines))
	done
	echo $((n + 2)) # plus `podsight --check` and the clean stop
}
want_passes=$(expected_passes)

# ---- boot each kernel ------------------------------------------------------------------------------
results=$out/results.txt
: >"$results"
failed=()
for k in $kernels; do
	release=${k%%:*}
	series=${k##*:}
	read -r pkg ver < <(newest_kernel "$series") || die "no linux-image-cloud-amd64 $series.* in $release"
	[[ -n "$pkg" && -n "${ver:-}" ]] || die "no linux-image-cloud-amd64 $series.* in $release"
	vmlinuz=$(fetch_kernel "$pkg" "$ver")
	console=$out/console-$release.log
	log "$release: $pkg $ver under qemu (TCG)"
	t0=$SECONDS
	timeout "$vm_timeout" qemu-system-x86_64 -accel tcg -cpu max -smp 2 -m 1024 -nographic -no-reboot \
		-kernel "$vmlinuz" -initrd "$out/initramfs.gz" -append "console=ttyS0 panic=-1 quiet" \
		</dev/null >"$console" 2>&1 || true
	took=$((SECONDS - t0))
	tr -d '\r' <"$console" | grep '^MATRIX ' | sed "s/^MATRIX /release=$release package=$pkg version=$ver /" >>"$results" || true
	passes=$(tr -d '\r' <"$console" | grep '^MATRIX ' | grep -c 'result=PASS' || true)
	fails=$(tr -d '\r' <"$console" | grep '^MATRIX ' | grep -c 'result=FAIL' || true)
	if ! tr -d '\r' <"$console" | grep -q '^MATRIX-END'; then
		log "$release: the VM did not finish (see $console)"
		failed+=("$release")
	elif ((fails > 0 || passes != want_passes)); then
		log "$release: $passes of $want_passes checks passed, $fails failed (see $console)"
		failed+=("$release")
	else
		log "$release: all $passes checks passed in ${took}s"
	fi
	tr -d '\r' <"$console" | grep '^MATRIX ' | sed 's/^/  /' >&2 || true
done

# ---- docs/kernels.md -------------------------------------------------------------------------------
if ((write_docs)); then
	table=$tmp/table.md
	{
		echo "Run on $(date -u +%F) with $("$agent" --version)."
		echo
		echo "| Debian | kernel package | \`uname -r\` | BTF | kprobes | fentry | family | variant | workload counted | result |"
		echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
		awk '
			function field(k,   i, n, kv) { for (i = 1; i <= NF; i++) { n = index($i, "="); if (substr($i, 1, n - 1) == k) return substr($i, n + 1) } return "" }
			{ key = field("release") }
			field("feature") != "" { feat[key, field("feature")] = field("detail"); next }
			field("family") != "" && field("variant") != "" { fam[key] = fam[key] " " field("family"); var[key, field("family")] = field("variant"); ok[key, field("family")] = field("result"); pkg[key] = field("package") " " field("version"); rel[key] = field("kernel"); order[++n] = key; next }
			field("family") != "" && field("series") != "" { cnt[key, field("family")] = cnt[key, field("family")] field("got") "/" field("want") " "; if (field("result") != "PASS") ok[key, field("family")] = "FAIL"; next }
			END {
				for (i = 1; i <= n; i++) {
					k = order[i]; if (seen[k]++) continue
					split(substr(fam[k], 2), fs, " ")
					for (j in fs) {
						f = fs[j]; sub(/ $/, "", cnt[k, f])
						printf "| %s | `%s` | `%s` | %s | %s | %s | `%s` | `%s` | %s | %s |\n", k, pkg[k], rel[k],
							feat[k, "btf"] ~ /sys/ ? "yes" : "no", feat[k, "kprobes"] == "available" ? "yes" : "no",
							feat[k, "fentry"] == "available" ? "yes" : "no", f, var[k, f], cnt[k, f], ok[k, f]
					}
				}
			}' "$results"
	} >"$table"
	docs=docs/kernels.md
	[[ -f "$docs" ]] || die "$docs missing"
	awk -v table="$table" '
		/<!-- kernel-matrix:begin -->/ { print; while ((getline line < table) > 0) print line; skip = 1; next }
		/<!-- kernel-matrix:end -->/ { skip = 0 }
		!skip { print }' "$docs" >"$tmp/kernels.md"
	mv "$tmp/kernels.md" "$docs"
	log "wrote the table in $docs"
fi

if ((${#failed[@]})); then
	log "FAILED on: ${failed[*]}"
	exit 1
fi
log "every kernel passed: $kernels"
