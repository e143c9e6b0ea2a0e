// Builds one metric family from scrape-time samples: sanitizes label values, merges samples whose
// label sets become equal (two cgroups that resolve to the same workload, two comms that differ only
// in invalid bytes), so a family never carries duplicate series.
#pragma once

#include <prometheus/metric_family.h>
#include <prometheus/metric_type.h>

#include <cstddef>
#include <initializer_list>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace podsight::metrics {

class FamilyBuilder {
 public:
  // `type` is Counter or Gauge (anything else throws std::invalid_argument: a summary or histogram
  // cannot be built by summing single values). Counter names end in "_total".
  FamilyBuilder(std::string name, std::string help, prometheus::MetricType type,
                std::vector<std::string> label_names);

  // Adds `value` to the series with these label values (one per label name, same order).
  // Values are passed through sanitize_utf8. Samples with equal label values are summed.
  // A count of values that differs from the count of label names is a programming error and throws
  // std::invalid_argument; nothing is added then.
  void add(std::initializer_list<std::string_view> label_values, double value);
  void add(const std::vector<std::string>& label_values, double value);

  [[nodiscard]] std::size_t size() const { return family_.metric.size(); }
  [[nodiscard]] const std::string& name() const { return family_.name; }

  // Hands out the family (series in first-seen order). The builder is empty afterwards: it keeps
  // name, help, type and label names, so it can be reused for the next scrape.
  prometheus::MetricFamily take();

 private:
  void add_sanitized(std::vector<std::string>&& values, double value);

  prometheus::MetricFamily family_;
  std::vector<std::string> label_names_;
  std::unordered_map<std::string, std::size_t> index_;  // joined label values -> position in family_.metric
};

}  // namespace podsight::metrics
