// What this kernel and host offer, probed once at start-up: every program family picks its variant
// from here, and `podsight --check` prints it.
#pragma once

#include "util/result.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

struct btf;

namespace podsight::bpf {

struct MountPoints {
  std::string cgroup2;  // mount point of the cgroup v2 hierarchy, empty if none
  std::string bpffs;
  std::string tracefs;
};

// Parses /proc/self/mountinfo content (octal escapes such as \040 decoded). The first cgroup2 mount
// whose root is "/" wins, so a container that sees the host's hierarchy at /host/sys/fs/cgroup and its
// own namespaced one elsewhere picks the host's when configured to look there.
MountPoints parse_mountinfo(std::string_view content);

class Features {
 public:
  Features();
  ~Features();
  Features(const Features&) = delete;
  Features& operator=(const Features&) = delete;

  [[nodiscard]] const std::string& kernel_release() const { return release_; }
  // (major, minor) from the release string, e.g. {6, 18}; {0, 0} if unparseable.
  [[nodiscard]] std::pair<int, int> kernel_version() const { return version_; }
  [[nodiscard]] const MountPoints& mounts() const { return mounts_; }

  // vmlinux BTF is present and parses (needed for CO-RE and for tp_btf/fentry).
  [[nodiscard]] bool has_vmlinux_btf();
  // BTF-typed raw tracepoint for `event` (e.g. "sched_process_exec") can be used.
  bool has_tp_btf(std::string_view event);
  // A raw tracepoint named `event` can be attached (a minimal program is attached and detached at
  // once). Raw tracepoints are found by name in the kernel, tracefs or not, with or without BTF.
  bool has_raw_tracepoint(std::string_view event);
  // The kprobe PMU exists (kprobes are compiled in and usable through perf_event_open).
  [[nodiscard]] bool has_kprobes() const;
  // A minimal fentry program attached to kernel function `func` loads (not just BTF present:
  // some kernels refuse tracing programs, e.g. with lockdown or EPERM).
  bool can_load_fentry(std::string_view func);
  // A minimal BPF iterator program for `target` (e.g. "bpf_sk_storage_map", "tcp") loads. BTF can
  // name an iterator that the kernel still refuses (seen: map iterators fail with EPERM on a 6.18 VM
  // whose iter/tcp and iter/task load).
  bool can_load_iter(std::string_view target);
  // BPF memory is charged to the cgroup (>= 5.11), so RLIMIT_MEMLOCK does not matter.
  [[nodiscard]] bool memcg_accounting() const;
  // Kprobe and raw tracepoint programs may use hash maps that allocate an element as its key arrives
  // (BPF_F_NO_PREALLOC) without a kernel warning: >= 6.1. From 5.7 to 6.0 the verifier loads them
  // but prints a WARN_ONCE splat (a panic where panic_on_warn is set). BTF-typed programs (tp_btf,
  // fentry) and cgroup or XDP programs always may.
  [[nodiscard]] bool tracing_maps_may_allocate() const;

  // The vmlinux BTF object (owned here), or nullptr. Valid until release_btf().
  const struct btf* vmlinux_btf();
  // Frees the vmlinux BTF (the kernel's types: over 5 MiB resident, for as long as the agent runs)
  // once start-up probing is done; a later probe loads it again.
  void release_btf();

 private:
  std::string release_;
  std::pair<int, int> version_{0, 0};
  MountPoints mounts_;
  std::mutex mu_;
  bool btf_loaded_ = false;
  struct btf* btf_ = nullptr;
  std::map<std::string, bool, std::less<>> fentry_cache_;
  std::map<std::string, bool, std::less<>> raw_tp_cache_;
  std::map<std::string, bool, std::less<>> iter_cache_;

  // The vmlinux BTF id of kernel function `func`, 0 if none (what fentry and iterator probes attach to).
  std::uint32_t btf_func_id(const std::string& func);
  // cache[key], running probe() once to fill it (the probe runs without the lock held).
  bool cached(std::map<std::string, bool, std::less<>>& cache, std::string_view key,
              const std::function<bool()>& probe);
};

// Reads a whole (small) file, e.g. from /proc or /sys.
Result<std::string> read_file(const std::string& path);

}  // namespace podsight::bpf
