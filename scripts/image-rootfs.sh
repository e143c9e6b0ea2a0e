#!/usr/bin/env bash
# Completes the runtime root filesystem of the container image (run by the Dockerfile's build stage):
# copies the shared libraries that ROOTFS/BINARY links, and the dynamic loader, from this Debian
# system into ROOTFS with Debian's merged-/usr layout, builds ld.so.cache for them, and adds the
# copyright file of every Debian package a copied file comes from. Nothing else goes in: no shell, no
# coreutils, no package database.
#
#   scripts/image-rootfs.sh ROOTFS BINARY      e.g. scripts/image-rootfs.sh /rootfs /usr/bin/podsight
set -euo pipefail
[[ $# -eq 2 ]] || { echo "usage: $0 ROOTFS BINARY" >&2; exit 2; }
rootfs=$1
binary=$2
[[ -x "$rootfs$binary" ]] || { echo "image-rootfs: $rootfs$binary is not an executable" >&2; exit 1; }

# Merged /usr as on Debian bookworm: /lib and /lib64 are links into /usr.
mkdir -p "$rootfs/usr/lib" "$rootfs/usr/lib64" "$rootfs/etc"
ln -sfn usr/lib "$rootfs/lib"
ln -sfn usr/lib64 "$rootfs/lib64"

# `ldd` lines: "libx.so.1 => /lib/x86_64-linux-gnu/libx.so.1 (0x...)" and the loader "/lib64/ld-linux-x86-64.so.2 (0x...)".
mapfile -t libs < <(ldd "$rootfs$binary" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
if ldd "$rootfs$binary" | grep -q 'not found'; then
	echo "image-rootfs: unresolved libraries:" >&2
	ldd "$rootfs$binary" | grep 'not found' >&2
	exit 1
fi
packages=()
for lib in "${libs[@]}"; do
	# Keep the name the binary asks for (the soname), with the content of the file it points to.
	dest=$lib
	case "$dest" in /lib/* | /lib64/*) dest=/usr$dest ;; esac
	mkdir -p "$rootfs$(dirname "$dest")"
	cp -L "$lib" "$rootfs$dest"
	real=$(readlink -f "$lib")
	pkg=$(dpkg -S "$real" 2>/dev/null || dpkg -S "${real#/usr}" 2>/dev/null || true)
	[[ -n "$pkg" ]] && packages+=("${pkg%%:*}")
done

# The loader reads /etc/ld.so.cache first; build it for exactly these libraries.
ldconfig -r "$rootfs"

# Licences of what we redistribute: the agent's own dependencies' copyright files.
for pkg in $(printf '%s\n' "${packages[@]}" | sort -u); do
	if [[ -f "/usr/share/doc/$pkg/copyright" ]]; then
		mkdir -p "$rootfs/usr/share/doc/$pkg"
		cp "/usr/share/doc/$pkg/copyright" "$rootfs/usr/share/doc/$pkg/copyright"
	fi
done
echo "image-rootfs: $binary with ${#libs[@]} libraries from: $(printf '%s\n' "${packages[@]}" | sort -u | tr '\n' ' ')" >&2
