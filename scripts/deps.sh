#!/usr/bin/env bash
# Installs what podsight needs to build and test, from Debian packages, plus any named as arguments.
# Idempotent; quiet when done.
set -euo pipefail

packages=(
  # build
  cmake g++ make pkg-config clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev
  prometheus-cpp-dev libcpp-httplib-dev libssl-dev nlohmann-json3-dev libspdlog-dev
  libgtest-dev libgmock-dev googletest
  # Kubernetes metadata: kubeconfig files (YAML); the openssl CLI makes the test API server's certificates
  libyaml-cpp-dev openssl
  # tests against real outside programs
  prometheus iproute2 iputils-ping netcat-openbsd procps libcap2-bin util-linux python3
  iptables  # tcp tests: drop rule inside a test namespace to force retransmissions
  # packaging checks (tests/packaging): image build with podman, helm test script, helm from npm
  podman runc debootstrap busybox-static unzip
  curl  # the helm test script's client under TLS (busybox wget cannot negotiate with OpenSSL 3)
  # reliability: TLS test certificates and s_client, libFuzzer, the qemu kernel matrix
  libclang-rt-14-dev qemu-system-x86 cpio
)

# Callers may name more packages (bench/run.sh passes bench/deps.txt).
packages+=("$@")

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
