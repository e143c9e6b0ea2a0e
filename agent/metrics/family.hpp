// One metric family as a scrape hands it to the encoder. Counters and gauges built by FamilyBuilder
// keep every series as its label block, sanitized, escaped and rendered once (`{a="x",b="y"}`), all
// blocks in one string: a scrape of 100k series then costs a handful of allocations instead of a
// dozen per series. Families from prometheus-cpp (the agent's own registry; summaries, histograms)
// are carried as prometheus-cpp models them.
#pragma once

#include <prometheus/client_metric.h>
#include <prometheus/metric_family.h>
#include <prometheus/metric_type.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace podsight::metrics {

struct Family {
  struct Series {
    std::uint32_t offset = 0;  // of its label block in `labels`
    std::uint32_t size = 0;    // of its label block; 0 for a series without labels
    double value = 0;
  };

  std::string name;
  std::string help;
  prometheus::MetricType type = prometheus::MetricType::Untyped;
  std::string labels;                            // the label blocks of `series`, back to back
  std::vector<Series> series;                    // counters and gauges from FamilyBuilder
  std::vector<prometheus::ClientMetric> metric;  // series as prometheus-cpp models them

  // Wraps a prometheus-cpp family (its series go to `metric`).
  static Family from(prometheus::MetricFamily f) {
    Family out;
    out.name = std::move(f.name);
    out.help = std::move(f.help);
    out.type = f.type;
    out.metric = std::move(f.metric);
    return out;
  }

  [[nodiscard]] std::string_view label_block(const Series& s) const {
    return {labels.data() + s.offset, s.size};
  }
  [[nodiscard]] std::size_t size() const { return series.size() + metric.size(); }
};

using Families = std::vector<Family>;

// The labels of a label block as FamilyBuilder renders it (`{a="x",b="y"}`), unescaped, in order.
// Throws std::invalid_argument on a block our renderer could not have made.
std::vector<prometheus::ClientMetric::Label> parse_label_block(std::string_view block);

}  // namespace podsight::metrics
