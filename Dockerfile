# podsight container image. A Debian bookworm builder compiles the agent (its BPF objects are embedded
# in the binary); the runtime stage holds only that binary and the shared libraries it links, with no
# shell, no package manager and no compiler (tests/packaging/image.sh checks it).
#
#   podman build -t podsight:dev .          (or docker build)
#
# Build arguments:
#   BUILDER_IMAGE   Debian bookworm (or a derivative) with apt; the build installs its packages there.
#   RUNTIME_IMAGE   base of the runtime stage; "scratch" by default. Any glibc-based image of the same
#                   Debian release works (e.g. a distroless cc image), since the libraries come along.
#   PODSIGHT_REVISION  source revision for podsight_build_info (the build context carries no .git).
ARG BUILDER_IMAGE=docker.io/library/debian:bookworm-slim
ARG RUNTIME_IMAGE=scratch

FROM ${BUILDER_IMAGE} AS build
ARG DEBIAN_FRONTEND=noninteractive
# The build subset of scripts/deps.sh (no test tools), plus binutils for strip and ldconfig's input.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      cmake g++ make pkg-config clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev \
      prometheus-cpp-dev libcpp-httplib-dev libssl-dev nlohmann-json3-dev libspdlog-dev \
      libyaml-cpp-dev binutils ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
ARG PODSIGHT_REVISION=unknown
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPODSIGHT_TESTS=OFF \
          -DPODSIGHT_REVISION="${PODSIGHT_REVISION}" \
 && cmake --build /build --target podsight -j"$(nproc)" \
 && cmake --install /build --prefix /rootfs/usr --strip \
 && scripts/image-rootfs.sh /rootfs /usr/bin/podsight

FROM ${RUNTIME_IMAGE}
COPY --from=build /rootfs/ /
# Root in the container, but only the capabilities the chart grants (docs/security.md): BPF
# program loading and attaching are gated by capabilities, not by uid.
USER 0:0
EXPOSE 10795
ENTRYPOINT ["/usr/bin/podsight"]
