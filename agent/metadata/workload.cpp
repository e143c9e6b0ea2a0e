// Workload identity of a cgroup id: cgroup path -> pod UID and container ID -> the pod store.
#include "metadata/workload.hpp"

#include "metadata/pod_cgroup.hpp"

namespace podsight::metadata {

Workload WorkloadResolver::resolve(std::uint64_t cgroup_id) {
  Workload w;
  auto p = cgroups_.path(cgroup_id);
  if (!p) {
    w.cgroup = kUnknownCgroup;
    return w;
  }
  if (pods_ != nullptr) {
    if (auto ref = parse_pod_cgroup(*p)) {
      if (auto id = pods_->identify(ref->pod_uid, ref->container_id, ref->conmon)) {
        w.namespace_ = std::move(id->namespace_);
        w.pod = std::move(id->pod);
        w.container = std::move(id->container);
        return w;
      }
    }
  }
  w.cgroup = std::move(*p);
  return w;
}

}  // namespace podsight::metadata
