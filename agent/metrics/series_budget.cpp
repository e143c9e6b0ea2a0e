// Series budget: relabel (drop / cap), then sticky admission and the overflow series.
#include "metrics/series_budget.hpp"

#include "metrics/family_builder.hpp"

#include <algorithm>
#include <charconv>
#include <functional>
#include <string_view>

namespace podsight::metrics {
namespace {

bool summable(prometheus::MetricType t) {
  return t == prometheus::MetricType::Counter || t == prometheus::MetricType::Gauge ||
         t == prometheus::MetricType::Untyped;
}

double& value_of(prometheus::ClientMetric& m, prometheus::MetricType t) {
  if (t == prometheus::MetricType::Counter) return m.counter.value;
  if (t == prometheus::MetricType::Gauge) return m.gauge.value;
  return m.untyped.value;
}

// Length-prefixed names and values: no label can pose as a separator.
std::string series_key(const prometheus::ClientMetric& m) {
  std::string key;
  for (const auto& l : m.label) {
    for (const std::string* s : {&l.name, &l.value}) {
      char len[20];
      const auto res = std::to_chars(len, len + sizeof len, s->size());
      key.append(len, res.ptr);
      key.push_back(':');
      key.append(*s);
    }
  }
  return key;
}

// 64-bit identity of a label set for admission, without building a string: each name and value is
// hashed on its own (so no value can pose as a boundary) and the hashes are chained.
std::uint64_t series_hash(const prometheus::ClientMetric& m) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (const auto& l : m.label) {
    for (const std::string* s : {&l.name, &l.value}) {
      h ^= std::hash<std::string_view>{}(*s) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    }
  }
  return h;
}

// Cuts `s` to at most `max` bytes without splitting a UTF-8 sequence.
void cut_utf8(std::string& s, std::size_t max) {
  if (s.size() <= max) return;
  std::size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  s.resize(n);
}

// Whether `sorted` (ascending, distinct) holds k. The keys are hashes, spread evenly over 64 bits, so
// k's place is about k / 2^64 of the way in, give or take a few hundred places at 100k keys: the
// window starts there and widens until it must hold k, then is searched. A binary search over all of
// them made most of the budget's time at 100k series, a cache miss per step.
bool holds(const std::vector<std::uint64_t>& sorted, std::uint64_t k) {
  const std::size_t n = sorted.size();
  if (n == 0) return false;
  // k's top 32 bits times n (< 2^32 series) fits 64 bits; the result is below n.
  const auto guess = static_cast<std::size_t>(((k >> 32) * static_cast<std::uint64_t>(n)) >> 32);
  std::size_t lo = guess;
  std::size_t hi = guess + 1;
  // Everything before lo is smaller than sorted[lo] <= k; everything from hi on is above sorted[hi - 1] >= k.
  for (std::size_t step = 1; lo > 0 && sorted[lo] > k; step *= 2) lo = lo > step ? lo - step : 0;
  for (std::size_t step = 1; hi < n && sorted[hi - 1] < k; step *= 2) hi = std::min(n, hi + step);
  const auto begin = sorted.begin() + static_cast<std::ptrdiff_t>(lo);
  const auto end = sorted.begin() + static_cast<std::ptrdiff_t>(hi);
  return std::binary_search(begin, end, k);
}

}  // namespace

SeriesBudget::SeriesBudget(BudgetOptions options) : options_(std::move(options)) {}

std::size_t SeriesBudget::limit(const std::string& family) const {
  auto it = options_.family_max_series.find(family);
  return it == options_.family_max_series.end() ? options_.max_series : it->second;
}

bool SeriesBudget::relabel_values(std::vector<prometheus::ClientMetric::Label>& labels) const {
  bool changed = false;
  for (auto& l : labels) {
    if (options_.drop_labels.count(l.name) != 0 && !l.value.empty()) {
      l.value.clear();
      changed = true;
    } else if (auto cap = options_.label_max_bytes.find(l.name);
               cap != options_.label_max_bytes.end() && l.value.size() > cap->second) {
      cut_utf8(l.value, cap->second);
      changed = true;
    }
  }
  return changed;
}

void SeriesBudget::relabel(Family& family) const {
  if (options_.drop_labels.empty() && options_.label_max_bytes.empty()) return;
  if (!summable(family.type)) return;  // merging needs values that add up

  // Series rendered by FamilyBuilder: read each block back, and if any label changed, build the
  // family again; the builder merges the series that became equal.
  if (!family.series.empty()) {
    std::vector<std::vector<prometheus::ClientMetric::Label>> parsed;
    parsed.reserve(family.series.size());
    bool changed = false;
    for (const auto& series : family.series) {
      parsed.push_back(parse_label_block(family.label_block(series)));
      changed |= relabel_values(parsed.back());
    }
    if (changed) {
      std::vector<std::string> names;
      for (const auto& l : parsed.front()) names.push_back(l.name);
      FamilyBuilder b(family.name, family.help, family.type, names);
      std::vector<std::string> values;
      for (std::size_t i = 0; i < parsed.size(); ++i) {
        values.clear();
        for (auto& l : parsed[i]) values.push_back(std::move(l.value));
        b.add(values, family.series[i].value);
      }
      Family rebuilt = b.take();
      family.labels = std::move(rebuilt.labels);
      family.series = std::move(rebuilt.series);
    }
  }

  // Series as prometheus-cpp models them.
  bool changed = false;
  for (auto& m : family.metric) changed |= relabel_values(m.label);
  if (!changed) return;
  // Series that became equal are one series now: sum them, keep the first one's position.
  std::unordered_map<std::string, std::size_t> index;
  std::vector<prometheus::ClientMetric> merged;
  merged.reserve(family.metric.size());
  for (auto& m : family.metric) {
    auto [it, fresh] = index.try_emplace(series_key(m), merged.size());
    if (fresh) {
      merged.push_back(std::move(m));
    } else {
      value_of(merged[it->second], family.type) += value_of(m, family.type);
    }
  }
  family.metric = std::move(merged);
}

void SeriesBudget::apply(Family& family, bool complete) {
  relabel(family);
  FamilyState& st = families_[family.name];
  const std::size_t max = limit(family.name);
  const bool counter = family.type == prometheus::MetricType::Counter;
  const bool sums = summable(family.type);
  const bool rendered = !family.series.empty();  // FamilyBuilder's blocks, else prometheus-cpp series
  if (rendered) {
    st.label_names.clear();
    for (const auto& l : parse_label_block(family.label_block(family.series.front()))) {
      st.label_names.push_back(l.name);
    }
  } else if (!family.metric.empty()) {
    st.label_names.clear();
    for (const auto& l : family.metric.front().label) st.label_names.push_back(l.name);
  }

  // A family carries one representation or the other; index i walks whichever it is.
  const std::size_t n = rendered ? family.series.size() : family.metric.size();
  const auto value_at = [&](std::size_t i) -> double {
    if (!sums) return 0;
    return rendered ? family.series[i].value : value_of(family.metric[i], family.type);
  };
  std::vector<std::uint64_t> keys(n);
  for (std::size_t i = 0; i < n; ++i) {
    keys[i] = rendered ? std::hash<std::string_view>{}(family.label_block(family.series[i]))
                       : series_hash(family.metric[i]);
  }
  auto& admitted = st.admitted;  // sorted
  // Whether each series was admitted before this scrape, looked up once: releasing the admitted
  // series that are gone (below) never changes it for one that is present.
  std::vector<char> was_admitted(n);
  std::size_t admitted_present = 0;
  for (std::size_t i = 0; i < n; ++i) {
    was_admitted[i] = holds(admitted, keys[i]) ? 1 : 0;
    admitted_present += static_cast<std::size_t>(was_admitted[i]);
  }
  if (complete) {
    // Series that are gone free their place. In a steady state every admitted and folded series is
    // still present, which counting shows without building the set of present keys. A key two series
    // share (a 64-bit collision) counts twice: that only takes the exact path below.
    std::size_t folded_present = 0;
    if (!st.folded.empty()) {
      for (const std::uint64_t k : keys) folded_present += st.folded.count(k);
    }
    if (admitted_present != admitted.size() || folded_present != st.folded.size()) {
      std::vector<std::uint64_t> present(keys);
      std::sort(present.begin(), present.end());
      const auto gone = [&](std::uint64_t k) { return !std::binary_search(present.begin(), present.end(), k); };
      std::erase_if(admitted, gone);
      std::erase_if(st.folded, [&](const auto& e) {
        if (!gone(e.first)) return false;
        if (counter) st.retired += e.second;
        return true;
      });
    }
  }

  // Admission, and the kept series moved down in place. Keys admitted now join the sorted set after
  // the pass.
  std::size_t room = max > admitted.size() ? max - admitted.size() : 0;
  std::vector<std::uint64_t> fresh;
  std::size_t kept = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint64_t k = keys[i];
    bool admit = was_admitted[i] != 0;
    if (!admit && room > 0) {
      admit = true;
      --room;
      fresh.push_back(k);
      // A folded series that gets its own place leaves its value behind in the overflow counter.
      if (auto f = st.folded.find(k); f != st.folded.end()) {
        if (counter) st.retired += f->second;
        st.folded.erase(f);
      }
    }
    if (admit) {
      if (kept != i) {
        if (rendered) {
          family.series[kept] = family.series[i];
        } else {
          family.metric[kept] = std::move(family.metric[i]);
        }
      }
      ++kept;
      continue;
    }
    auto [f, fresh_fold] = st.folded.try_emplace(k, value_at(i));
    if (fresh_fold) ++st.dropped;
    f->second = value_at(i);
  }
  if (!fresh.empty()) {
    std::sort(fresh.begin(), fresh.end());
    const auto middle = static_cast<std::ptrdiff_t>(admitted.size());
    admitted.insert(admitted.end(), fresh.begin(), fresh.end());
    std::inplace_merge(admitted.begin(), admitted.begin() + middle, admitted.end());
    // Two series of one key (a 64-bit collision) were both admitted as new: the key once.
    admitted.erase(std::unique(admitted.begin(), admitted.end()), admitted.end());
  }
  // Kept series keep their label blocks where they are in family.labels.
  if (rendered) {
    family.series.resize(kept);
  } else {
    family.metric.resize(kept);
  }

  const bool show = sums && (!st.folded.empty() || (counter && st.overflow_shown));
  if (!show) return;
  double total = counter ? st.retired : 0;
  for (const auto& [k, v] : st.folded) total += v;
  st.overflow_shown = true;
  std::vector<std::string> names;
  for (const auto& name : st.label_names) {
    if (name != kOverflowLabel) names.push_back(name);
  }
  names.emplace_back(kOverflowLabel);
  if (rendered || family.metric.empty()) {
    if (family.type != prometheus::MetricType::Counter && family.type != prometheus::MetricType::Gauge) return;
    std::vector<std::string> values(names.size());
    values.back() = "true";
    FamilyBuilder b(family.name, family.help, family.type, names);
    b.add(values, total);
    Family overflow = b.take();
    const auto offset = static_cast<std::uint32_t>(family.labels.size());
    family.labels += overflow.labels;
    family.series.push_back({offset, static_cast<std::uint32_t>(overflow.labels.size()), total});
  } else {
    prometheus::ClientMetric overflow;
    for (const auto& name : names) overflow.label.push_back({name, name == kOverflowLabel ? "true" : ""});
    value_of(overflow, family.type) = total;
    family.metric.push_back(std::move(overflow));
  }
}

std::uint64_t SeriesBudget::dropped(const std::string& family) const {
  auto it = families_.find(family);
  return it == families_.end() ? 0 : it->second.dropped;
}

void SeriesBudget::collect(Families& out) const {
  FamilyBuilder b("podsight_series_dropped_total",
                  "Series that did not fit under the family's series limit and were folded into its overflow "
                  "series.",
                  prometheus::MetricType::Counter, {"family"});
  for (const auto& [name, st] : families_) b.add({name}, static_cast<double>(st.dropped));
  out.push_back(b.take());
}

}  // namespace podsight::metrics
