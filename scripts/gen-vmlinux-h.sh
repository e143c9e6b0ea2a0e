#!/usr/bin/env bash
# Regenerates the pinned bpf/vmlinux/<arch>/vmlinux.h that bpf/*.bpf.c compile against (see
# bpf/vmlinux/README.md for why a pinned header is safe with CO-RE).
#
#   scripts/gen-vmlinux-h.sh x86 [BTF-FILE]
#       Dumps BTF-FILE (default /sys/kernel/btf/vmlinux, i.e. the running x86_64 kernel) as C.
#
#   scripts/gen-vmlinux-h.sh arm64
#       Downloads the pinned Debian bookworm arm64 kernel package below, pulls the raw BTF blob out
#       of its kernel Image and dumps it as C. apt runs with a private configuration, state and cache
#       in a temporary directory: no system apt source, list, cache or dpkg architecture is touched.
#       The .deb is checked against the signed archive index (by apt) and against the pinned sha256.
#
#   scripts/gen-vmlinux-h.sh arm64-latest
#       Prints the pins for the newest linux-image-cloud-arm64 in bookworm (+ -updates, -security),
#       to paste below when the pinned version has left the mirror or a newer kernel is wanted.
#
# Environment: VMLINUX_OUT=<file> writes there instead of bpf/vmlinux/<arch>/vmlinux.h;
#              KEEP_TMP=1 keeps the temporary directory (downloaded .deb, Image, raw BTF).
# Needs: bpftool, python3; for arm64 also apt-get, dpkg-deb, gzip (zstd/xz if the Image uses them).
# The C dump depends on the bpftool version as well as on the BTF: the pinned headers were made
# with bpftool v7.1.0 (Debian bookworm's bpftool package); another version may order or spell
# things differently, which is harmless but shows up as a diff.
set -euo pipefail

# ---- arm64 pin (update with `gen-vmlinux-h.sh arm64-latest`) ----------------------------------
ARM64_SUITE_FROM=bookworm-security
ARM64_PKG=linux-image-6.1.0-56-cloud-arm64
ARM64_VER=6.1.192-2
ARM64_DEB_SHA256=481ab54a27246579aadeb372315c56de02f2fe0cba4e09b387946269fff2f415
ARM64_META_PKG=linux-image-cloud-arm64
# -------------------------------------------------------------------------------------------------

usage() {
	echo "usage: $0 x86 [BTF-FILE] | arm64 | arm64-latest" >&2
	exit 2
}

die() {
	echo "gen-vmlinux-h: error: $*" >&2
	exit 1
}

log() {
	echo "gen-vmlinux-h: $*" >&2
}

need() {
	local t
	for t in "$@"; do
		command -v "$t" >/dev/null 2>&1 || die "'$t' not found in PATH"
	done
}

repo_root() {
	cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd
}

TMP=""
cleanup() {
	if [[ -n "$TMP" && -d "$TMP" ]]; then
		if [[ "${KEEP_TMP:-0}" == 1 ]]; then
			log "kept $TMP"
		else
			rm -rf -- "$TMP"
		fi
	fi
}
trap cleanup EXIT

make_tmp() {
	TMP=$(mktemp -d "${TMPDIR:-/tmp}/gen-vmlinux-h.XXXXXX")
}

# dump_btf <raw-btf-file> <out-file> <arch>: validates the BTF with bpftool, writes the C dump
# atomically and checks that it looks like the right architecture.
dump_btf() {
	local btf=$1 out=$2 arch=$3 tmp_out
	bpftool btf dump file "$btf" >/dev/null 2>"$TMP/bpftool.err" ||
		die "bpftool cannot parse $btf: $(cat "$TMP/bpftool.err")"
	mkdir -p "$(dirname "$out")"
	tmp_out="$out.tmp.$$"
	bpftool btf dump file "$btf" format c >"$tmp_out" || { rm -f "$tmp_out"; die "bpftool format c failed on $btf"; }
	# Types every podsight program family names, and one that only exists on the wanted arch.
	local want=("struct task_struct {" "struct sock {" "struct trace_event_raw_inet_sock_set_state {" "struct pt_regs {")
	case "$arch" in
	x86) want+=("long unsigned int orig_ax;") ;;
	arm64) want+=("struct user_pt_regs {") ;;
	esac
	local w
	for w in "${want[@]}"; do
		grep -qF -- "$w" "$tmp_out" || { rm -f "$tmp_out"; die "dump of $btf lacks '$w' (wrong arch or not a vmlinux BTF?)"; }
	done
	mv -f "$tmp_out" "$out"
	log "wrote $out ($(wc -c <"$out") bytes, sha256 $(sha256sum "$out" | cut -d' ' -f1))"
	log "from BTF $btf ($(wc -c <"$btf") bytes, sha256 $(sha256sum "$btf" | cut -d' ' -f1)) with $(bpftool version | head -1)"
}

gen_x86() {
	local btf=${1:-/sys/kernel/btf/vmlinux}
	need bpftool python3
	if [[ ! -r "$btf" ]]; then
		[[ "$btf" == /sys/kernel/btf/vmlinux ]] && die "cannot read $btf: running kernel built without CONFIG_DEBUG_INFO_BTF?"
		die "cannot read BTF file '$btf'"
	fi
	[[ "$btf" != /sys/kernel/btf/vmlinux || "$(uname -m)" == x86_64 ]] ||
		die "running kernel is $(uname -m), not x86_64: pass an x86_64 BTF-FILE"
	make_tmp
	local out=${VMLINUX_OUT:-$(repo_root)/bpf/vmlinux/x86/vmlinux.h}
	[[ "$btf" == /sys/kernel/btf/vmlinux ]] && log "source: running kernel $(uname -r) $(uname -m)"
	dump_btf "$btf" "$out" x86
}

# Private apt under $TMP/apt (scripts/lib/private-apt.sh): no system apt state is touched.
setup_private_apt() {
	log "apt-get update (private, arm64, $TMP/apt)"
	private_apt_update "$TMP/apt" arm64 bookworm || die "private apt-get update failed (above)"
}

gen_arm64_latest() {
	need apt-get apt-cache
	make_tmp
	setup_private_apt
	local ver pkg sha fn
	ver=$(apt-cache policy "$ARM64_META_PKG" | awk '$1 == "Candidate:" { print $2 }')
	[[ -n "$ver" && "$ver" != "(none)" ]] || die "no candidate for $ARM64_META_PKG"
	pkg=$(apt-cache depends "$ARM64_META_PKG=$ver" | awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }')
	[[ -n "$pkg" ]] || die "$ARM64_META_PKG=$ver depends on no linux-image-* package"
	ver=$(apt-cache policy "$pkg" | awk '$1 == "Candidate:" { print $2 }')
	sha=$(apt_field "$pkg=$ver" SHA256)
	fn=$(apt_field "$pkg=$ver" Filename)
	echo "# newest $ARM64_META_PKG in bookworm: $fn"
	echo "ARM64_SUITE_FROM=$(apt-cache policy "$pkg" | awk -v v="$ver" '$1 == v || ($1 == "***" && $2 == v) { getline; print $3; exit }' | cut -d/ -f1)"
	echo "ARM64_PKG=$pkg"
	echo "ARM64_VER=$ver"
	echo "ARM64_DEB_SHA256=$sha"
}

# find_btf.py <image> <out>: finds the raw .BTF blob in a kernel Image by its header and writes it.
FIND_BTF_PY=$(
	cat <<'PY'
import struct, sys

BTF_MAGIC = b"\x9f\xeb"  # 0xEB9F, little endian
HDR = struct.Struct("<HBBIIIII")  # magic, version, flags, hdr_len, type_off, type_len, str_off, str_len

img_path, out_path = sys.argv[1], sys.argv[2]
data = open(img_path, "rb").read()
# magic, version 1, flags 0, hdr_len 24
needle = BTF_MAGIC + b"\x01\x00" + struct.pack("<I", HDR.size)
found = []
pos = data.find(needle)
while pos >= 0:
    if pos + HDR.size <= len(data):
        _, _, _, hdr_len, type_off, type_len, str_off, str_len = HDR.unpack_from(data, pos)
        body = max(type_off + type_len, str_off + str_len)
        total = hdr_len + body
        s0, s1 = pos + hdr_len + str_off, pos + hdr_len + str_off + str_len
        ok = (
            type_len > 0 and str_len > 0
            and type_off % 4 == 0
            # sections do not overlap
            and (type_off + type_len <= str_off or str_off + str_len <= type_off)
            and pos + total <= len(data)
            # string section: starts with "" and is NUL terminated
            and data[s0] == 0 and data[s1 - 1] == 0
        )
        print(f"candidate @0x{pos:x}: type_off={type_off} type_len={type_len} str_off={str_off} "
              f"str_len={str_len} total={total} {'ok' if ok else 'rejected'}", file=sys.stderr)
        if ok:
            found.append((total, pos))
    pos = data.find(needle, pos + 1)
if not found:
    sys.exit(f"no BTF header (magic 0xEB9F, v1, flags 0, hdr_len 24) in {img_path}")
if len(found) > 1:
    print(f"warning: {len(found)} BTF candidates, taking the largest", file=sys.stderr)
total, pos = max(found)
with open(out_path, "wb") as f:
    f.write(data[pos:pos + total])
print(f"BTF blob at offset 0x{pos:x}, {total} bytes", file=sys.stderr)
PY
)

gen_arm64() {
	need apt-get apt-cache dpkg-deb bpftool python3 sha256sum file
	make_tmp
	setup_private_apt
	local out=${VMLINUX_OUT:-$(repo_root)/bpf/vmlinux/arm64/vmlinux.h}

	if [[ -z "$(apt_field "$ARM64_PKG=$ARM64_VER" Version)" ]]; then
		die "$ARM64_PKG=$ARM64_VER is no longer in bookworm on $DEBIAN_MIRROR (superseded kernels leave the mirror);" \
			"run '$0 arm64-latest', update the pins at the top of this script and bpf/vmlinux/README.md"
	fi
	local want_sha
	want_sha=$(apt_field "$ARM64_PKG=$ARM64_VER" SHA256)
	[[ "$want_sha" == "$ARM64_DEB_SHA256" ]] ||
		die "archive index says $ARM64_PKG=$ARM64_VER has sha256 $want_sha, pinned $ARM64_DEB_SHA256"

	log "downloading $ARM64_PKG=$ARM64_VER (arm64)"
	mkdir -p "$TMP/dl"
	(cd "$TMP/dl" && apt-get -q download "$ARM64_PKG=$ARM64_VER" >"$TMP/apt-download.log" 2>&1) ||
		die "apt-get download failed: $(tail -5 "$TMP/apt-download.log")"
	local deb=""
	for deb in "$TMP"/dl/*.deb; do break; done
	[[ -f "$deb" ]] || die "apt-get download left no .deb in $TMP/dl"
	echo "$ARM64_DEB_SHA256  $deb" | sha256sum -c --quiet - || die "sha256 mismatch for $deb"
	log "$(basename "$deb"): sha256 $ARM64_DEB_SHA256 OK"

	dpkg-deb -x "$deb" "$TMP/root"
	local vmlinuz=""
	for vmlinuz in "$TMP"/root/boot/vmlinuz-*; do break; done
	[[ -f "$vmlinuz" ]] || die "no boot/vmlinuz-* in $deb"
	if [[ -r "$TMP/root/boot/config-${vmlinuz##*/vmlinuz-}" ]]; then
		grep -qx 'CONFIG_DEBUG_INFO_BTF=y' "$TMP/root/boot/config-${vmlinuz##*/vmlinuz-}" ||
			die "$ARM64_PKG is built without CONFIG_DEBUG_INFO_BTF"
	fi
	log "$(basename "$vmlinuz"): $(file -b "$vmlinuz")"

	# Debian's signed arm64 vmlinuz is the raw (EFI-signed) Image; the -unsigned one is gzip'ed.
	# Decide by magic, not by name.
	local image=$TMP/Image magic
	magic=$(od -An -tx1 -N4 "$vmlinuz" | tr -d ' \n')
	case "$magic" in
	1f8b*) gzip -dc "$vmlinuz" >"$image" ;;
	28b52ffd) need zstd; zstd -dcq "$vmlinuz" >"$image" ;;
	fd377a58) need xz; xz -dc "$vmlinuz" >"$image" ;;
	*) cp "$vmlinuz" "$image" ;;
	esac
	local ftype
	ftype=$(file -b "$image")
	log "Image: $ftype"
	[[ "$ftype" == *"ARM64 boot executable Image"* ]] || die "not an arm64 kernel Image: $ftype"

	python3 -c "$FIND_BTF_PY" "$image" "$TMP/vmlinux.btf" || die "BTF not found in the Image"
	dump_btf "$TMP/vmlinux.btf" "$out" arm64
	log "source: $ARM64_PKG $ARM64_VER ($ARM64_SUITE_FROM), $(basename "$vmlinuz")"
}

# shellcheck source=lib/private-apt.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/private-apt.sh"

[[ $# -ge 1 ]] || usage
case "$1" in
x86)
	[[ $# -le 2 ]] || usage
	gen_x86 "${2:-}"
	;;
arm64)
	[[ $# -eq 1 ]] || usage
	gen_arm64
	;;
arm64-latest)
	[[ $# -eq 1 ]] || usage
	gen_arm64_latest
	;;
-h | --help) usage ;;
*) usage ;;
esac
