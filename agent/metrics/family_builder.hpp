// Builds one metric family from scrape-time samples: sanitizes label values, merges samples whose
// label sets become equal (two cgroups that resolve to the same workload, two comms that differ only
// in invalid bytes), so a family never carries duplicate series. Each series is rendered once, as its
// label block, into one string (see metrics/family.hpp): no allocation per series.
#pragma once

#include "metrics/family.hpp"

#include <prometheus/metric_type.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

namespace podsight::metrics {

class FamilyBuilder {
 public:
  // `type` is Counter or Gauge (anything else throws std::invalid_argument: a summary or histogram
  // cannot be built by summing single values). Counter names end in "_total".
  FamilyBuilder(std::string name, std::string help, prometheus::MetricType type,
                std::vector<std::string> label_names);

  // Adds `value` to the series with these label values (one per label name, same order).
  // Values are sanitized as by sanitize_utf8. Samples with equal label values are summed.
  // A count of values that differs from the count of label names is a programming error and throws
  // std::invalid_argument; nothing is added then.
  void add(std::initializer_list<std::string_view> label_values, double value);
  void add(const std::vector<std::string>& label_values, double value);

  // Sizes the builder for about `series` series (a hint, such as the entries of the map the family
  // comes from): the series, their index and their label blocks are then allocated once rather than
  // grown and copied step by step. Changes nothing else.
  void expect(std::size_t series);

  [[nodiscard]] std::size_t size() const { return family_.series.size(); }
  [[nodiscard]] const std::string& name() const { return family_.name; }

  // Hands out the family (series in first-seen order). The builder is empty afterwards: it keeps
  // name, help, type and label names, so it can be reused for the next scrape.
  Family take();

 private:
  template <typename Values>
  void add_values(const Values& values, double value);
  // The series whose label block equals `block`, or -1.
  [[nodiscard]] std::int64_t find(std::string_view block, std::uint32_t hash) const;
  void insert_slot(std::uint64_t slot);
  // Makes the index at least twice as big as `series` and the series kept.
  void grow_slots(std::size_t series);

  Family family_;
  std::vector<std::string> label_names_;
  std::size_t expected_ = 0;  // series expect() announced
  std::size_t used_ = 0;  // bytes of family_.labels holding blocks; the rest is room for the next one
  // Open addressing over the series, linear probing: (32-bit block hash << 32) | (series index + 1);
  // 0 is an empty slot.
  std::vector<std::uint64_t> slots_;
};

}  // namespace podsight::metrics
