// Wiring of program families to their collectors.
#include "app/families.hpp"

#include "collectors/cgroup_skb.hpp"
#include "collectors/exec.hpp"
#include "collectors/tcp.hpp"
#include "collectors/xdp.hpp"
#include "programs/cgroup_skb.hpp"
#include "programs/exec.hpp"
#include "programs/tcp.hpp"
#include "programs/xdp.hpp"

namespace podsight::app {

std::vector<FamilyParts> make_families(const config::Config& cfg, metadata::WorkloadResolver& workloads,
                                       metadata::RemoteIndex* remote) {
  std::vector<FamilyParts> parts;
  {
    auto p = std::make_unique<programs::Exec>(cfg.programs.exec);
    auto c = std::make_unique<collectors::Exec>(*p, workloads);
    parts.push_back({std::move(p), std::move(c)});
  }
  {
    auto p = std::make_unique<programs::Tcp>(cfg.programs.tcp, remote);
    auto c =
        std::make_unique<collectors::Tcp>(*p, workloads, cfg.programs.tcp.remote.enabled ? remote : nullptr,
                                          std::chrono::seconds(cfg.gc.grace_period_seconds));
    parts.push_back({std::move(p), std::move(c)});
  }
  {
    // Attached at the same cgroup2 root the workload labels are resolved under.
    auto p = std::make_unique<programs::CgroupSkb>(cfg.programs.cgroup_skb, workloads.cgroups().root());
    auto c = std::make_unique<collectors::CgroupSkb>(*p, workloads);
    parts.push_back({std::move(p), std::move(c)});
  }
  {
    auto p = std::make_unique<programs::Xdp>(cfg.programs.xdp);
    auto c = std::make_unique<collectors::Xdp>(*p);
    parts.push_back({std::move(p), std::move(c)});
  }
  return parts;
}

}  // namespace podsight::app
