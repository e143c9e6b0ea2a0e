// xdp collector: podsight_xdp_packets_total / _bytes_total{interface,family,protocol} from xdp_counts, and
// podsight_xdp_attached{interface,mode} from the family's interface table.
#pragma once

#include "collectors/collector.hpp"
#include "programs/xdp.hpp"

namespace podsight::collectors {

class Xdp final : public Collector {
 public:
  explicit Xdp(const programs::Xdp& program) : program_(program) {}
  [[nodiscard]] std::string_view name() const override { return "xdp"; }
  bool collect(ScrapeContext& ctx, metrics::Families& out) override;

 private:
  const programs::Xdp& program_;
};

}  // namespace podsight::collectors
