// Who a cgroup id belongs to, as the label set every workload metric carries:
// namespace, pod, container for Kubernetes workloads; the cgroup path for everything else.
#pragma once

#include "metadata/cgroups.hpp"
#include "metadata/pods.hpp"

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace podsight::metadata {

struct Workload {
  std::string namespace_;
  std::string pod;
  std::string container;
  std::string cgroup;  // path relative to the cgroup2 root; empty for identified pods
};

// The label names every workload metric starts with, in this order; a collector appends its own
// (e.g. "comm", "direction") after them.
inline const std::vector<std::string> kWorkloadLabels = {"namespace", "pod", "container", "cgroup"};

// kWorkloadLabels + `extra`, for a FamilyBuilder's label names.
inline std::vector<std::string> workload_label_names(std::initializer_list<std::string> extra = {}) {
  std::vector<std::string> names = kWorkloadLabels;
  names.insert(names.end(), extra);
  return names;
}

// Label value used when a cgroup id cannot be resolved (deleted before we saw it).
inline constexpr const char* kUnknownCgroup = "(unknown)";

class WorkloadResolver {
 public:
  // Without `pods` (Kubernetes metadata off) every workload is labelled by its cgroup path.
  explicit WorkloadResolver(CgroupPaths& cgroups, const PodStore* pods = nullptr)
      : cgroups_(cgroups), pods_(pods) {}

  // A pod's container: namespace, pod and container set, cgroup empty. A pod cgroup whose pod the API
  // has not told us about (yet), and every other cgroup: cgroup set, the rest empty.
  Workload resolve(std::uint64_t cgroup_id);
  [[nodiscard]] CgroupPaths& cgroups() { return cgroups_; }

 private:
  CgroupPaths& cgroups_;
  const PodStore* pods_;
};

}  // namespace podsight::metadata
