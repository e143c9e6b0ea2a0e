// cgroup v2 path -> Kubernetes pod UID and container ID, for every layout kubelet and the container
// runtimes create (containerd, CRI-O, Docker; systemd and cgroupfs drivers; all QoS classes). Pure:
// no I/O, so every form is a unit-test fixture.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace podsight::metadata {

enum class CgroupDriver { kCgroupfs, kSystemd };
enum class QosClass { kGuaranteed, kBurstable, kBestEffort };
// kUnknown: a bare container ID directory (cgroupfs driver), which containerd and Docker both create.
enum class Runtime { kUnknown, kContainerd, kCrio, kDocker };

std::string_view to_string(CgroupDriver d);
std::string_view to_string(QosClass q);
std::string_view to_string(Runtime r);

struct PodCgroup {
  // As in metadata.uid (with dashes); for static pods kubelet's 32-hex config hash, as in the mirror
  // pod's kubernetes.io/config.mirror annotation.
  std::string pod_uid;
  std::string container_id;  // 64 hex digits; empty for the pod's own cgroup or an unrecognised child
  Runtime runtime = Runtime::kUnknown;
  QosClass qos = QosClass::kGuaranteed;
  CgroupDriver driver = CgroupDriver::kCgroupfs;
  bool conmon = false;  // CRI-O's per-container monitor (crio-conmon-<id>), not the container itself

  bool operator==(const PodCgroup&) const = default;
};

// Paths longer than this, or with more components than kMaxPodCgroupDepth, are never pods: kubelet's
// deepest form is well under both, and the bound keeps hostile paths cheap.
inline constexpr std::size_t kMaxPodCgroupPath = 4096;
inline constexpr std::size_t kMaxPodCgroupDepth = 64;

// Parses a path relative to the cgroup2 root ("/kubepods.slice/..."). Any prefix above the kubepods
// level is allowed (kubelet's --cgroup-root, e.g. kind's /kubelet.slice/kubelet-kubepods.slice/...), and
// so is anything below the container (runtimes that nest a "container" or "init.scope" cgroup).
// nullopt: not inside a pod.
std::optional<PodCgroup> parse_pod_cgroup(std::string_view path);

}  // namespace podsight::metadata
