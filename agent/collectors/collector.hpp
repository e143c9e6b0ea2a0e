// Scrape-time collection: each collector reads its family's maps when /metrics is asked for and turns
// them into metric families (the prometheus-cpp Collectable idea, with a per-scrape context).
#pragma once

#include "metrics/family.hpp"

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace podsight::collectors {

// Facts one scrape gathers in passing, for the self collector that runs last.
struct ScrapeContext {
  std::map<std::string, std::uint64_t, std::less<>> map_entries;  // map name -> entries seen in this walk
  double seconds = 0;  // time spent collecting before the self collector runs
};

class Collector {
 public:
  virtual ~Collector() = default;
  [[nodiscard]] virtual std::string_view name() const = 0;
  // Appends this collector's families to `out`. A map that cannot be read is reported by returning
  // false (the scrape goes on with what could be read and counts the error); exceptions are bugs.
  virtual bool collect(ScrapeContext& ctx, metrics::Families& out) = 0;
};

}  // namespace podsight::collectors
