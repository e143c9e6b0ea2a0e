// Series budget: the limit per family, the overflow series and its value, admission that sticks across
// scrapes, places freed by series that ended, counters that never go backwards, labels dropped or cut.
#include "metrics/series_budget.hpp"

#include "metrics/family_builder.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace podsight::metrics {
namespace {

using prometheus::MetricType;

Family family(MetricType type, const std::vector<std::pair<std::string, double>>& series,
                                const std::string& name = "podsight_test_total") {
  FamilyBuilder b(name, "test", type, {"pod", "comm"});
  for (const auto& [pod, v] : series) b.add({pod, "sh"}, v);
  return b.take();
}

// The family's series with their labels read back from the rendered blocks.
std::vector<prometheus::ClientMetric> decoded(const Family& f) {
  std::vector<prometheus::ClientMetric> out;
  for (const auto& s : f.series) {
    prometheus::ClientMetric m;
    m.label = parse_label_block(f.label_block(s));
    m.counter.value = m.gauge.value = s.value;
    out.push_back(std::move(m));
  }
  for (const auto& m : f.metric) out.push_back(m);
  return out;
}

// label "pod" (or "overflow") -> value
std::map<std::string, double> values(const Family& f) {
  std::map<std::string, double> out;
  for (const auto& m : decoded(f)) {
    std::string key;
    for (const auto& l : m.label) {
      if (l.name == "pod" && !l.value.empty()) key = l.value;
      if (l.name == kOverflowLabel) key = "<overflow>";
    }
    out[key] = f.type == MetricType::Counter ? m.counter.value : m.gauge.value;
  }
  return out;
}

TEST(SeriesBudget, FoldsSeriesBeyondTheLimitIntoOneOverflowSeries) {
  SeriesBudget budget(BudgetOptions{.max_series = 3});
  auto f = family(MetricType::Counter, {{"a", 1}, {"b", 2}, {"c", 3}, {"d", 4}, {"e", 5}});
  budget.apply(f, true);
  EXPECT_EQ(values(f), (std::map<std::string, double>{{"a", 1}, {"b", 2}, {"c", 3}, {"<overflow>", 9}}));
  EXPECT_EQ(budget.dropped("podsight_test_total"), 2u);
  // The overflow series has every label of the family, empty, plus overflow="true".
  const auto overflow = decoded(f).back();
  ASSERT_EQ(overflow.label.size(), 3u);
  EXPECT_EQ(overflow.label[0].name, "pod");
  EXPECT_EQ(overflow.label[0].value, "");
  EXPECT_EQ(overflow.label[1].name, "comm");
  EXPECT_EQ(overflow.label[2].name, "overflow");
  EXPECT_EQ(overflow.label[2].value, "true");

  Families self;
  budget.collect(self);
  ASSERT_EQ(self.size(), 1u);
  EXPECT_EQ(self[0].name, "podsight_series_dropped_total");
  ASSERT_EQ(self[0].size(), 1u);
  EXPECT_EQ(decoded(self[0])[0].counter.value, 2);
}

TEST(SeriesBudget, AdmissionSticksAcrossScrapes) {
  SeriesBudget budget(BudgetOptions{.max_series = 2});
  auto f1 = family(MetricType::Counter, {{"a", 1}, {"b", 1}});
  budget.apply(f1, true);
  // New series appear first in the order: a and b keep their places, x and y overflow.
  auto f2 = family(MetricType::Counter, {{"x", 10}, {"y", 20}, {"a", 2}, {"b", 3}});
  budget.apply(f2, true);
  EXPECT_EQ(values(f2), (std::map<std::string, double>{{"a", 2}, {"b", 3}, {"<overflow>", 30}}));
  EXPECT_EQ(budget.dropped("podsight_test_total"), 2u);
  // Same series again: nothing new is dropped; the folded ones count on inside the overflow series.
  auto f3 = family(MetricType::Counter, {{"x", 11}, {"y", 21}, {"a", 2}, {"b", 3}});
  budget.apply(f3, true);
  EXPECT_EQ(values(f3)["<overflow>"], 32);
  EXPECT_EQ(budget.dropped("podsight_test_total"), 2u);
}

TEST(SeriesBudget, EndedSeriesFreeTheirPlaceAndCountersNeverGoBack) {
  SeriesBudget budget(BudgetOptions{.max_series = 2});
  auto f1 = family(MetricType::Counter, {{"a", 1}, {"b", 1}, {"x", 10}, {"y", 20}});
  budget.apply(f1, true);
  EXPECT_EQ(values(f1)["<overflow>"], 30);
  // a ended (its cgroup was collected): x takes its place with its own series; the 10 it had counted
  // stay in the overflow counter, and y ended too: its 20 stay as well.
  auto f2 = family(MetricType::Counter, {{"b", 2}, {"x", 12}});
  budget.apply(f2, true);
  EXPECT_EQ(values(f2), (std::map<std::string, double>{{"b", 2}, {"x", 12}, {"<overflow>", 30}}));
  // Nothing folded any more: a counter's overflow series stays (at its last value), never decreasing.
  auto f3 = family(MetricType::Counter, {{"b", 3}, {"x", 13}});
  budget.apply(f3, true);
  EXPECT_EQ(values(f3)["<overflow>"], 30);
}

TEST(SeriesBudget, IncompleteScrapeReleasesNothing) {
  SeriesBudget budget(BudgetOptions{.max_series = 1});
  auto f1 = family(MetricType::Counter, {{"a", 1}, {"x", 5}});
  budget.apply(f1, true);
  // The collector failed half-way: a and x were not read, but they may well exist.
  auto f2 = family(MetricType::Counter, {{"y", 7}});
  budget.apply(f2, false);
  EXPECT_EQ(values(f2),
            (std::map<std::string, double>{{"<overflow>", 12}}));  // y folded, x's last value kept
  auto f3 = family(MetricType::Counter, {{"a", 2}, {"x", 6}, {"y", 7}});
  budget.apply(f3, true);
  EXPECT_EQ(values(f3), (std::map<std::string, double>{{"a", 2}, {"<overflow>", 13}}));
}

TEST(SeriesBudget, GaugesOverflowOnlyWhileSomethingIsFolded) {
  SeriesBudget budget(BudgetOptions{.max_series = 1});
  auto f1 = family(MetricType::Gauge, {{"a", 1}, {"b", 1}, {"c", 1}}, "podsight_test_info");
  budget.apply(f1, true);
  EXPECT_EQ(values(f1), (std::map<std::string, double>{{"a", 1}, {"<overflow>", 2}}));
  auto f2 = family(MetricType::Gauge, {{"a", 1}}, "podsight_test_info");
  budget.apply(f2, true);
  EXPECT_EQ(values(f2), (std::map<std::string, double>{{"a", 1}}));
}

TEST(SeriesBudget, PerFamilyLimitsAndIndependentFamilies) {
  SeriesBudget budget(BudgetOptions{.max_series = 100, .family_max_series = {{"podsight_small_total", 1}}});
  auto small = family(MetricType::Counter, {{"a", 1}, {"b", 1}}, "podsight_small_total");
  auto big = family(MetricType::Counter, {{"a", 1}, {"b", 1}}, "podsight_big_total");
  budget.apply(small, true);
  budget.apply(big, true);
  EXPECT_EQ(small.size(), 2u);  // a + overflow
  EXPECT_EQ(big.size(), 2u);    // a, b
  EXPECT_EQ(budget.dropped("podsight_small_total"), 1u);
  EXPECT_EQ(budget.dropped("podsight_big_total"), 0u);
  EXPECT_EQ(budget.limit("podsight_small_total"), 1u);
  EXPECT_EQ(budget.limit("podsight_big_total"), 100u);
}

TEST(SeriesBudget, DroppedLabelsMergeSeriesBeforeTheLimit) {
  SeriesBudget budget(BudgetOptions{.max_series = 2, .drop_labels = {"comm"}});
  FamilyBuilder b("podsight_execs_total", "test", MetricType::Counter, {"pod", "comm"});
  b.add({"a", "sh"}, 1);
  b.add({"a", "ls"}, 2);
  b.add({"b", "sh"}, 4);
  auto f = b.take();
  budget.apply(f, true);
  ASSERT_EQ(f.size(), 2u);  // a (sh + ls), b: under the limit once comm is gone
  EXPECT_EQ(decoded(f)[0].label[1].value, "");
  EXPECT_EQ(f.series[0].value, 3);
  EXPECT_EQ(f.series[1].value, 4);
  EXPECT_EQ(budget.dropped("podsight_execs_total"), 0u);
}

TEST(SeriesBudget, CappedLabelsAreCutOnACharacterBoundary) {
  SeriesBudget budget(BudgetOptions{.label_max_bytes = {{"comm", 4}}});
  FamilyBuilder b("podsight_execs_total", "test", MetricType::Counter, {"pod", "comm"});
  b.add({"a", "abcdef"}, 1);
  b.add({"a", "abcdxyz"}, 2);
  b.add({"a", "abc\xc3\xa9"}, 4);  // "abcé": the 4-byte cut falls inside é
  auto f = b.take();
  budget.apply(f, true);
  ASSERT_EQ(f.size(), 2u);
  EXPECT_EQ(decoded(f)[0].label[1].value, "abcd");
  EXPECT_EQ(f.series[0].value, 3);
  EXPECT_EQ(decoded(f)[1].label[1].value, "abc");
  EXPECT_EQ(decoded(f)[1].label[0].value, "a");  // other labels untouched
}

TEST(SeriesBudget, ManySeriesKeepExactlyTheLimit) {
  SeriesBudget budget(BudgetOptions{.max_series = 1000});
  std::vector<std::pair<std::string, double>> series;
  double total = 0;
  for (int i = 0; i < 5000; ++i) {
    series.emplace_back("pod-" + std::to_string(i), i);
    total += i;
  }
  auto f = family(MetricType::Counter, series);
  budget.apply(f, true);
  ASSERT_EQ(f.size(), 1001u);
  double kept = 0;
  for (std::size_t i = 0; i + 1 < f.size(); ++i) kept += f.series[i].value;
  EXPECT_EQ(kept + f.series.back().value, total);  // nothing lost, nothing counted twice
  EXPECT_EQ(budget.dropped("podsight_test_total"), 4000u);
}

// The budget's rules written out plainly, with a std::set of admitted names, to check the budget
// against over many scrapes of many series.
struct BudgetModel {
  std::size_t max;
  std::set<std::string> admitted;
  std::map<std::string, double> folded;
  double retired = 0;
  bool shown = false;
  std::uint64_t dropped = 0;

  std::map<std::string, double> apply(const std::vector<std::pair<std::string, double>>& series, bool complete) {
    if (complete) {
      std::set<std::string> present;
      for (const auto& [name, v] : series) present.insert(name);
      std::erase_if(admitted, [&](const std::string& n) { return present.count(n) == 0; });
      std::erase_if(folded, [&](const auto& e) {
        if (present.count(e.first) != 0) return false;
        retired += e.second;
        return true;
      });
    }
    std::size_t room = max > admitted.size() ? max - admitted.size() : 0;
    std::set<std::string> before = admitted;
    std::map<std::string, double> out;
    for (const auto& [name, v] : series) {
      bool admit = before.count(name) != 0;
      if (!admit && room > 0) {
        admit = true;
        --room;
        admitted.insert(name);
        if (auto f = folded.find(name); f != folded.end()) {
          retired += f->second;
          folded.erase(f);
        }
      }
      if (admit) {
        out[name] = v;
        continue;
      }
      if (folded.count(name) == 0) ++dropped;
      folded[name] = v;
    }
    if (!folded.empty() || shown) {
      shown = true;
      double total = retired;
      for (const auto& [name, v] : folded) total += v;
      out["<overflow>"] = total;
    }
    return out;
  }
};

// Thousands of series come and go over many scrapes, in a new order each time, some scrapes
// incomplete: the kept series, the overflow value and the drop count are what the rules say.
TEST(SeriesBudget, ManyScrapesOfSeriesComingAndGoingFollowTheRules) {
  constexpr std::size_t kLimit = 700;
  SeriesBudget budget(BudgetOptions{.max_series = kLimit});
  BudgetModel model{.max = kLimit};
  std::mt19937 rng(20261206);
  std::vector<int> pods(3000);
  std::iota(pods.begin(), pods.end(), 0);
  for (int scrape = 0; scrape < 40; ++scrape) {
    std::shuffle(pods.begin(), pods.end(), rng);
    // A window of the pods, shifting: some end, some start, most stay.
    const std::size_t n = 400 + static_cast<std::size_t>(rng() % 1200);
    std::vector<std::pair<std::string, double>> series;
    for (std::size_t i = 0; i < n; ++i) {
      const int pod = pods[i];
      series.emplace_back("pod-" + std::to_string(pod), 1000.0 * scrape + pod);
    }
    const bool complete = scrape % 7 != 3;
    auto f = family(MetricType::Counter, series);
    budget.apply(f, complete);
    ASSERT_EQ(values(f), model.apply(series, complete)) << "scrape " << scrape;
    ASSERT_EQ(budget.dropped("podsight_test_total"), model.dropped) << "scrape " << scrape;
    ASSERT_LE(f.size(), kLimit + 1);
  }
}

TEST(SeriesBudget, FamiliesFromPrometheusCppAreBudgetedToo) {
  SeriesBudget budget(BudgetOptions{.max_series = 2});
  prometheus::MetricFamily pf;
  pf.name = "podsight_pod_info";
  pf.help = "test";
  pf.type = MetricType::Gauge;
  for (const char* pod : {"a", "b", "c"}) {
    prometheus::ClientMetric m;
    m.label = {{"pod", pod}};
    m.gauge.value = 1;
    pf.metric.push_back(m);
  }
  auto f = Family::from(std::move(pf));
  budget.apply(f, true);
  EXPECT_EQ(values(f), (std::map<std::string, double>{{"a", 1}, {"b", 1}, {"<overflow>", 1}}));
  EXPECT_EQ(f.metric.back().label.back().name, kOverflowLabel);
  EXPECT_EQ(budget.dropped("podsight_pod_info"), 1u);
}

}  // namespace
}  // namespace podsight::metrics
