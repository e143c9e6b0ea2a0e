// Workload identity of a cgroup id.
#include "metadata/workload.hpp"

namespace podsight::metadata {

Workload WorkloadResolver::resolve(std::uint64_t cgroup_id) {
  Workload w;
  auto p = cgroups_.path(cgroup_id);
  w.cgroup = p ? *p : kUnknownCgroup;
  return w;
}

}  // namespace podsight::metadata
