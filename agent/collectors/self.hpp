// The agent's own metrics: build, program state, map fill and failed inserts, in-kernel run time per
// program, scrape cost, and the standard process_* metrics. This is how podsight is honest about its cost.
#pragma once

#include "bpf/probe.hpp"
#include "collectors/collector.hpp"
#include "programs/program.hpp"

#include <prometheus/registry.h>

#include <functional>
#include <memory>
#include <vector>

namespace podsight::collectors {

class Self final : public Collector {
 public:
  // `families` outlive the collector. `registry` holds the agent's userspace counters (HTTP, errors).
  Self(std::vector<const programs::Family*> families, bpf::Features& features,
       std::shared_ptr<prometheus::Registry> registry, std::function<bool()> bpf_stats_enabled);
  [[nodiscard]] std::string_view name() const override { return "self"; }
  bool collect(ScrapeContext& ctx, metrics::Families& out) override;

 private:
  void collect_programs(metrics::Families& out);
  bool collect_maps(const ScrapeContext& ctx, metrics::Families& out);

  std::vector<const programs::Family*> families_;
  bpf::Features& features_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::function<bool()> bpf_stats_enabled_;
};

// process_* metrics of this process (CPU, memory, fds, start time) from /proc/self.
void collect_process(metrics::Families& out);

}  // namespace podsight::collectors
