// Cardinality budget, applied to every family a collector produces before it is encoded: free-text
// labels blanked or capped in length, then at most N series per family. Series beyond the limit are
// folded into one overflow series per family (every label empty, overflow="true") and counted in
// podsight_series_dropped_total{family}. Admission is sticky: a series admitted stays admitted for as
// long as it exists, so a counter never moves between its own series and the overflow series.
#pragma once

#include "metrics/family.hpp"

#include <prometheus/metric_family.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

namespace podsight::metrics {

struct BudgetOptions {
  std::size_t max_series = 10000;                        // per family
  std::map<std::string, std::size_t> family_max_series;  // per-family overrides
  std::set<std::string> drop_labels;                     // values blanked (series then merge)
  std::map<std::string, std::size_t> label_max_bytes;    // values cut to this many bytes (UTF-8 safe)
};

// The label that marks a family's overflow series.
inline constexpr const char* kOverflowLabel = "overflow";

class SeriesBudget {
 public:
  explicit SeriesBudget(BudgetOptions options);

  // Rewrites `family` in place. `complete` says the collector read all it had to: series missing from
  // `family` then no longer exist and free their place. After a partial read nothing is released.
  void apply(Family& family, bool complete);

  // podsight_series_dropped_total{family}, one series per family seen.
  void collect(Families& out) const;

  [[nodiscard]] std::uint64_t dropped(const std::string& family) const;
  [[nodiscard]] std::size_t limit(const std::string& family) const;

 private:
  struct FamilyState {
    std::vector<std::uint64_t> admitted;  // sorted: 8 bytes a series, where a hash set took ~35
    std::unordered_map<std::uint64_t, double> folded;  // series key -> its value at the last scrape
    double retired = 0;  // counters: values of series that left the overflow (kept so it never decreases)
    bool overflow_shown = false;
    std::uint64_t dropped = 0;
    std::vector<std::string> label_names;  // for the overflow series
  };

  void relabel(Family& family) const;
  [[nodiscard]] bool relabel_values(std::vector<prometheus::ClientMetric::Label>& labels) const;

  BudgetOptions options_;
  std::map<std::string, FamilyState> families_;
};

}  // namespace podsight::metrics
