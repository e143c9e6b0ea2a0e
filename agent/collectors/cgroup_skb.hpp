// cgroup_skb collector: podsight_network_{bytes,packets}_total{namespace,pod,container,cgroup,direction}.
#pragma once

#include "collectors/collector.hpp"
#include "metadata/workload.hpp"
#include "programs/cgroup_skb.hpp"

#include <cstddef>

namespace podsight::collectors {

class CgroupSkb final : public Collector {
 public:
  CgroupSkb(const programs::CgroupSkb& program, metadata::WorkloadResolver& workloads)
      : program_(program), workloads_(workloads) {}
  [[nodiscard]] std::string_view name() const override { return "cgroup_skb"; }
  bool collect(ScrapeContext& ctx, metrics::Families& out) override;

 private:
  const programs::CgroupSkb& program_;
  metadata::WorkloadResolver& workloads_;
  std::size_t last_entries_ = 0;  // cgroup_skb_counts entries at the last scrape
};

}  // namespace podsight::collectors
