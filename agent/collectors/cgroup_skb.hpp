// cgroup_skb collector: podsight_network_{bytes,packets}_total{namespace,pod,container,cgroup,direction}.
#pragma once

#include "collectors/collector.hpp"
#include "metadata/workload.hpp"
#include "programs/cgroup_skb.hpp"

#include <cstdint>
#include <unordered_map>

// clang-format off
#include <linux/types.h>
#include "cgroup_skb.h"
// clang-format on

namespace podsight::collectors {

class CgroupSkb final : public Collector {
 public:
  CgroupSkb(const programs::CgroupSkb& program, metadata::WorkloadResolver& workloads)
      : program_(program), workloads_(workloads) {}
  [[nodiscard]] std::string_view name() const override { return "cgroup_skb"; }
  bool collect(ScrapeContext& ctx, metrics::Families& out) override;

 private:
  // Adds each cgroup's slot (bpf/shared/cgroup_skb.h) to its hash totals, frees slots of cgroups no
  // longer in the hash, and gives free slots to cgroups in the hash.
  Status add_slots(int ncpus, std::unordered_map<std::uint64_t, cgroup_skb_value>& totals);

  const programs::CgroupSkb& program_;
  metadata::WorkloadResolver& workloads_;
};

}  // namespace podsight::collectors
