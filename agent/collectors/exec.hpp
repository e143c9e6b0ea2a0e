// exec collector: podsight_process_execs_total{namespace,pod,container,cgroup,comm} from exec_counts.
#pragma once

#include "collectors/collector.hpp"
#include "metadata/workload.hpp"
#include "programs/exec.hpp"

#include <cstddef>

namespace podsight::collectors {

class Exec final : public Collector {
 public:
  Exec(const programs::Exec& program, metadata::WorkloadResolver& workloads)
      : program_(program), workloads_(workloads) {}
  [[nodiscard]] std::string_view name() const override { return "exec"; }
  bool collect(ScrapeContext& ctx, metrics::Families& out) override;

 private:
  const programs::Exec& program_;
  metadata::WorkloadResolver& workloads_;
  std::size_t last_entries_ = 0;  // exec_counts entries at the last scrape
};

}  // namespace podsight::collectors
