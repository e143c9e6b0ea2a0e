// Tests of FamilyBuilder: sanitizing, merging of equal label sets, collision-free keys, misuse.
#include "metrics/family_builder.hpp"

#include "metrics/exposition.hpp"

#include <gtest/gtest.h>

#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace podsight::metrics {
namespace {

using prometheus::MetricFamily;
using prometheus::MetricType;

std::vector<std::string> label_values(const prometheus::ClientMetric& m) {
  std::vector<std::string> out;
  for (const auto& l : m.label) out.push_back(l.value);
  return out;
}

TEST(FamilyBuilder, BuildsCounterFamilyWithLabelsInOrder) {
  FamilyBuilder b("podsight_exec_total", "Execs.", MetricType::Counter, {"namespace", "comm"});
  b.add({"default", "bash"}, 2);
  b.add({"kube-system", "sh"}, 5);
  EXPECT_EQ(b.size(), 2u);
  EXPECT_EQ(b.name(), "podsight_exec_total");

  const MetricFamily f = b.take();
  EXPECT_EQ(f.name, "podsight_exec_total");
  EXPECT_EQ(f.help, "Execs.");
  EXPECT_EQ(f.type, MetricType::Counter);
  ASSERT_EQ(f.metric.size(), 2u);
  ASSERT_EQ(f.metric[0].label.size(), 2u);
  EXPECT_EQ(f.metric[0].label[0].name, "namespace");
  EXPECT_EQ(f.metric[0].label[0].value, "default");
  EXPECT_EQ(f.metric[0].label[1].name, "comm");
  EXPECT_EQ(f.metric[0].label[1].value, "bash");
  EXPECT_EQ(f.metric[0].counter.value, 2);
  EXPECT_EQ(label_values(f.metric[1]), (std::vector<std::string>{"kube-system", "sh"}));
  EXPECT_EQ(f.metric[1].counter.value, 5);
}

TEST(FamilyBuilder, SumsEqualLabelSetsInFirstSeenOrder) {
  FamilyBuilder b("x_total", "X.", MetricType::Counter, {"pod"});
  b.add({"b"}, 1);
  b.add({"a"}, 10);
  b.add({"b"}, 2.5);
  b.add({"a"}, 20);
  b.add({"c"}, 0);
  const MetricFamily f = b.take();
  ASSERT_EQ(f.metric.size(), 3u);
  EXPECT_EQ(label_values(f.metric[0]), std::vector<std::string>{"b"});
  EXPECT_EQ(f.metric[0].counter.value, 3.5);
  EXPECT_EQ(label_values(f.metric[1]), std::vector<std::string>{"a"});
  EXPECT_EQ(f.metric[1].counter.value, 30);
  EXPECT_EQ(label_values(f.metric[2]), std::vector<std::string>{"c"});
}

TEST(FamilyBuilder, GaugesAreSummedToo) {
  FamilyBuilder b("open_fds", "FDs.", MetricType::Gauge, {"pod"});
  b.add({"p"}, 3);
  b.add({"p"}, 4);
  const MetricFamily f = b.take();
  ASSERT_EQ(f.metric.size(), 1u);
  EXPECT_EQ(f.type, MetricType::Gauge);
  EXPECT_EQ(f.metric[0].gauge.value, 7);
  EXPECT_EQ(f.metric[0].counter.value, 0);
}

TEST(FamilyBuilder, SanitizesLabelValues) {
  FamilyBuilder b("x_total", "X.", MetricType::Counter, {"comm"});
  b.add({"bad\xff"}, 1);
  const MetricFamily f = b.take();
  ASSERT_EQ(f.metric.size(), 1u);
  EXPECT_EQ(f.metric[0].label[0].value, "bad\\xFF");
  EXPECT_TRUE(valid_utf8(f.metric[0].label[0].value));
}

TEST(FamilyBuilder, MergesValuesThatBecomeEqualAfterSanitizing) {
  // A comm holding byte 0xFF and one holding the text "\xFF" are one series once sanitized; a family
  // must not carry the same label set twice.
  FamilyBuilder b("x_total", "X.", MetricType::Counter, {"comm"});
  b.add({"a\xff"}, 1);
  b.add({"a\\xFF"}, 2);
  const MetricFamily f = b.take();
  ASSERT_EQ(f.metric.size(), 1u);
  EXPECT_EQ(f.metric[0].counter.value, 3);
}

TEST(FamilyBuilder, KeysDoNotCollideWhateverTheValuesHold) {
  // Pairs that naive joins confuse: plain concatenation, a separator char inside a value, and
  // values that look like length prefixes.
  const std::vector<std::pair<std::string, std::string>> tuples = {
      {"ab", "c"},   {"a", "bc"},        {"a:b", "c"},          {"a", "b:c"},   {"a|b", "c"},
      {"a", "b|c"},  {"", "a"},          {"a", ""},             {"", ""},       {"1:a", ""},
      {"", "1:a"},   {"1:", "a"},        {"1:a1:", ""},         {"2:ab", "1:c"}, {std::string("a\0b", 3), "c"},
      {"a", std::string("\0b\0c", 4)}, {"a\xff", "b"}, {"a", "\xff" "b"}};
  FamilyBuilder b("x_total", "X.", MetricType::Counter, {"l1", "l2"});
  for (const auto& [x, y] : tuples) b.add({x, y}, 1);
  const MetricFamily f = b.take();
  ASSERT_EQ(f.metric.size(), tuples.size());
  std::set<std::vector<std::string>> seen;
  for (std::size_t i = 0; i < f.metric.size(); ++i) {
    EXPECT_EQ(f.metric[i].counter.value, 1) << i;
    EXPECT_EQ(label_values(f.metric[i]),
              (std::vector<std::string>{sanitize_utf8(tuples[i].first), sanitize_utf8(tuples[i].second)}));
    seen.insert(label_values(f.metric[i]));
  }
  EXPECT_EQ(seen.size(), tuples.size());
}

TEST(FamilyBuilder, VectorOverloadMatchesInitializerList) {
  FamilyBuilder b("x_total", "X.", MetricType::Counter, {"a", "b"});
  b.add({"1", "2\xff"}, 1);
  b.add(std::vector<std::string>{"1", "2\xff"}, 2);
  b.add(std::vector<std::string>{"1", "3"}, 4);
  const MetricFamily f = b.take();
  ASSERT_EQ(f.metric.size(), 2u);
  EXPECT_EQ(f.metric[0].counter.value, 3);
  EXPECT_EQ(label_values(f.metric[0]), (std::vector<std::string>{"1", "2\\xFF"}));
  EXPECT_EQ(f.metric[1].counter.value, 4);
}

TEST(FamilyBuilder, NoLabels) {
  FamilyBuilder b("up_total", "Up.", MetricType::Counter, {});
  b.add({}, 1);
  b.add(std::vector<std::string>{}, 1);
  const MetricFamily f = b.take();
  ASSERT_EQ(f.metric.size(), 1u);
  EXPECT_TRUE(f.metric[0].label.empty());
  EXPECT_EQ(f.metric[0].counter.value, 2);
}

TEST(FamilyBuilder, WrongNumberOfLabelValuesThrowsAndAddsNothing) {
  FamilyBuilder b("x_total", "X.", MetricType::Counter, {"a", "b"});
  b.add({"1", "2"}, 1);
  EXPECT_THROW(b.add({"1"}, 1), std::invalid_argument);
  EXPECT_THROW(b.add({"1", "2", "3"}, 1), std::invalid_argument);
  EXPECT_THROW(b.add({}, 1), std::invalid_argument);
  EXPECT_THROW(b.add(std::vector<std::string>{"1"}, 1), std::invalid_argument);
  EXPECT_THROW(b.add(std::vector<std::string>{"1", "2", "3"}, 1), std::invalid_argument);
  EXPECT_EQ(b.size(), 1u);
  const MetricFamily f = b.take();
  ASSERT_EQ(f.metric.size(), 1u);
  EXPECT_EQ(f.metric[0].counter.value, 1);
}

TEST(FamilyBuilder, OnlyCountersAndGaugesAreAccepted) {
  EXPECT_THROW(FamilyBuilder("s", "S.", MetricType::Summary, {}), std::invalid_argument);
  EXPECT_THROW(FamilyBuilder("h", "H.", MetricType::Histogram, {}), std::invalid_argument);
  EXPECT_THROW(FamilyBuilder("u", "U.", MetricType::Untyped, {}), std::invalid_argument);
}

TEST(FamilyBuilder, TakeEmptiesBuilderAndKeepsItUsable) {
  FamilyBuilder b("x_total", "X.", MetricType::Counter, {"a"});
  b.add({"1"}, 5);
  const MetricFamily first = b.take();
  EXPECT_EQ(first.metric.size(), 1u);
  EXPECT_EQ(b.size(), 0u);
  EXPECT_EQ(b.name(), "x_total");

  // The old series is forgotten: the same labels start from zero in the next family.
  b.add({"1"}, 2);
  const MetricFamily second = b.take();
  EXPECT_EQ(second.name, "x_total");
  EXPECT_EQ(second.help, "X.");
  EXPECT_EQ(second.type, MetricType::Counter);
  ASSERT_EQ(second.metric.size(), 1u);
  EXPECT_EQ(second.metric[0].counter.value, 2);
  EXPECT_EQ(second.metric[0].label[0].name, "a");
  EXPECT_TRUE(b.take().metric.empty());
}

TEST(FamilyBuilder, OutputEncodesToExpectedText) {
  FamilyBuilder b("podsight_exec_total", "Execs.", MetricType::Counter, {"comm"});
  b.add({"we\"ird\n"}, 1);
  b.add({"plain"}, 2);
  b.add({"we\"ird\n"}, 1);
  std::string out;
  encode({b.take()}, Format::kText004, out);
  EXPECT_EQ(out,
            "# HELP podsight_exec_total Execs.\n# TYPE podsight_exec_total counter\n"
            "podsight_exec_total{comm=\"we\\\"ird\\n\"} 2\npodsight_exec_total{comm=\"plain\"} 2\n");
}

}  // namespace
}  // namespace podsight::metrics
