#!/usr/bin/env bash
# Runs integration tests under other Debian kernels in qemu (TCG), to prove program variants this
# machine's kernel lacks (kprobes, fentry) and older struct layouts (CO-RE flavours).
#
#   scripts/kernel-matrix-gtest.sh [GTEST_FILTER] [SUITE...]    e.g. scripts/kernel-matrix-gtest.sh '*Tcp*' bookworm bullseye
#
# SUITE picks Debian's linux-image-cloud-amd64 of that release (bookworm: 6.1, bullseye: 5.10). The
# initramfs holds busybox, the agent and test binaries at their build paths, the outside programs the
# tests call (ip, iptables, sysctl, true, setpriv) with their libraries, and the modules they need. Each run
# prints the test output; the exit status is non-zero if any kernel's run failed.
# Needs root, a build (scripts/build.sh) and: qemu-system-x86 busybox-static cpio binutils.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$(pwd)
filter=${1:-'*Tcp*'}
shift || true
suites=("$@")
((${#suites[@]})) || suites=(bookworm bullseye)
work=${KERNEL_MATRIX_DIR:-/tmp/podsight-kernel-matrix}
mkdir -p "$work"

for p in qemu-system-x86 busybox-static cpio binutils; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    { echo "kernel-matrix: installing $p" >&2; apt-get install -y -qq --no-install-recommends "$p" >/dev/null; }
done

# Modules the integration tests load, by name; their dependencies are added from each .ko's modinfo.
# (nft_counter is a module before 5.18; iptables-nft puts a counter in every rule.)
wanted_modules=(veth nf_tables nft_compat nft_counter xt_statistic xt_length xt_tcpudp)

kernel_for() {  # suite -> directory with boot/ and lib/modules/ of that suite's cloud kernel
  local suite=$1 dir=$work/$1
  if [ ! -d "$dir/pkg/boot" ]; then
    mkdir -p "$dir/apt/parts" "$dir/apt/lists/partial" "$dir/apt/cache/archives/partial"
    printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "$suite" >"$dir/apt/parts/$suite.sources"
    local opts=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$dir/apt/parts"
      -o "Dir::State::Lists=$dir/apt/lists" -o "Dir::Cache=$dir/apt/cache")
    apt-get "${opts[@]}" update -qq >/dev/null
    local image
    image=$(apt-cache "${opts[@]}" depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')
    (cd "$dir" && apt-get "${opts[@]}" download "$image" >/dev/null 2>&1)
    dpkg-deb -x "$dir"/linux-image-*.deb "$dir/pkg"
  fi
  echo "$dir/pkg"
}

copy_with_libs() {  # root host-path
  local root=$1 f=$2 lib
  mkdir -p "$root$(dirname "$f")"
  cp -L "$f" "$root$f"
  for lib in $(ldd "$f" 2>/dev/null | grep -o '/[^ ]*'); do
    mkdir -p "$root$(dirname "$lib")"
    [ -e "$root$lib" ] || cp -L "$lib" "$root$lib"
  done
}

build_initrd() {  # kernel-pkg-dir out.gz
  local pkg=$1 out=$2 root
  root=$(mktemp -d "$work/root.XXXX")
  mkdir -p "$root"/{bin,dev,proc,sys,tmp,run,etc,modules}
  mkdir -p "$root/var" && ln -s /run "$root/var/run"
  cp /bin/busybox "$root/bin/busybox"
  for a in $(/bin/busybox --list); do [ -e "$root/bin/$a" ] || ln -s busybox "$root/bin/$a"; done
  rm -f "$root"/bin/{ip,sysctl,true,iptables,setpriv}
  for b in /usr/sbin/ip /usr/sbin/sysctl /usr/bin/true /usr/sbin/xtables-nft-multi /usr/bin/setpriv \
    "$src/build/agent/podsight" "$src/build/tests/podsight_integration_tests"; do
    copy_with_libs "$root" "$b"
  done
  ln -sf /usr/bin/true "$root/bin/true"
  ln -sf xtables-nft-multi "$root/usr/sbin/iptables"
  mkdir -p "$root/usr/lib/x86_64-linux-gnu"
  cp -r /usr/lib/x86_64-linux-gnu/xtables "$root/usr/lib/x86_64-linux-gnu/"
  for l in /usr/lib/x86_64-linux-gnu/xtables/*.so; do
    for lib in $(ldd "$l" | grep -o '/[^ ]*'); do [ -e "$root$lib" ] || cp -L "$lib" "$root$lib"; done
  done
  strip "$root$src/build/agent/podsight" "$root$src/build/tests/podsight_integration_tests"
  mkdir -p "$root$src/docs" && cp "$src/docs/metrics.md" "$root$src/docs/"

  # Modules in dependency order.
  local kmods order=() m
  kmods=$(echo "$pkg"/lib/modules/*/kernel)
  add_module() {
    local name=$1 ko deps d
    [[ " ${order[*]} " == *" $name "* ]] && return
    ko=$(find "$kmods" -name "$name.ko" | head -1)
    [ -n "$ko" ] || return 0  # built in
    deps=$(strings "$ko" | sed -n 's/^depends=//p' | tr ',' ' ')
    for d in $deps; do add_module "$d"; done
    cp "$ko" "$root/modules/"
    order+=("$name")
  }
  for m in "${wanted_modules[@]}"; do add_module "$m"; done

  cat >"$root/init" <<INIT
#!/bin/sh
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp; mount -t tmpfs run /run
mkdir -p /sys/fs/cgroup && mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t bpf bpf /sys/fs/bpf; mount -t tracefs tracefs /sys/kernel/tracing; mount -t debugfs debugfs /sys/kernel/debug
for m in ${order[*]}; do insmod /modules/\$m.ko || echo "insmod \$m failed"; done
ip link set lo up
echo "kernel-matrix: kernel \$(uname -r)"
cd /tmp
$src/build/tests/podsight_integration_tests --gtest_filter='$filter' 2>&1 | grep -v '"level"'
poweroff -f
INIT
  chmod +x "$root/init"
  (cd "$root" && find . | cpio -o -H newc 2>/dev/null | gzip -1) >"$out"
  rm -rf "$root"
}

status=0
for suite in "${suites[@]}"; do
  pkg=$(kernel_for "$suite")
  build_initrd "$pkg" "$work/$suite.initrd.gz"
  log=$work/$suite.log
  echo "=== $suite: $(basename "$pkg"/boot/vmlinuz-*)"
  timeout 1800 qemu-system-x86_64 -accel tcg -cpu max -smp 2 -m 2048 -nographic -no-reboot \
    -kernel "$(echo "$pkg"/boot/vmlinuz-*)" -initrd "$work/$suite.initrd.gz" \
    -append "console=ttyS0 panic=-1 quiet" >"$log" 2>&1 || true
  grep -E '^\[ +(OK|FAILED|SKIPPED|PASSED) |Failure|Which is|kernel-matrix:' "$log" || true
  grep -q '^\[  PASSED  \]' "$log" && ! grep -q '^\[  FAILED  \]' "$log" || status=1
done
exit $status
