// tcp collector: connections opened/closed/failed/active, payload bytes and retransmits per workload
// and direction, read from the tcp family's maps after the iterator folded still-open connections.
#pragma once

#include "collectors/collector.hpp"
#include "metadata/workload.hpp"
#include "programs/tcp.hpp"

namespace podsight::collectors {

class Tcp final : public Collector {
 public:
  Tcp(const programs::Tcp& program, metadata::WorkloadResolver& workloads)
      : program_(program), workloads_(workloads) {}
  [[nodiscard]] std::string_view name() const override { return "tcp"; }
  bool collect(ScrapeContext& ctx, metrics::Families& out) override;

 private:
  const programs::Tcp& program_;
  metadata::WorkloadResolver& workloads_;
};

}  // namespace podsight::collectors
