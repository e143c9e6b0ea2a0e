// Tests of FamilyBuilder: sanitizing, merging of equal label sets, collision-free keys, misuse, and
// that its compact series encode exactly as the same series modelled by prometheus-cpp.
#include "metrics/family_builder.hpp"

#include "metrics/exposition.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace podsight::metrics {
namespace {

using prometheus::MetricType;

// What the encoder writes between the quotes of a label value: sanitize_utf8, then escape.
std::string escaped(std::string_view raw) {
  std::string out;
  for (char c : sanitize_utf8(raw)) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string block(const std::vector<std::pair<std::string, std::string>>& labels) {
  if (labels.empty()) return "";
  std::string out = "{";
  for (const auto& [name, value] : labels) {
    if (out.size() > 1) out += ",";
    out += name + "=\"" + escaped(value) + "\"";
  }
  return out + "}";
}

std::vector<std::string> blocks(const Family& f) {
  std::vector<std::string> out;
  for (const auto& s : f.series) out.emplace_back(f.label_block(s));
  return out;
}

TEST(FamilyBuilder, BuildsCounterFamilyWithLabelsInOrder) {
  FamilyBuilder b("podsight_exec_total", "Execs.", MetricType::Counter, {"namespace", "comm"});
  b.add({"default", "bash"}, 2);
  b.add({"kube-system", "sh"}, 5);
  EXPECT_EQ(b.size(), 2u);
  EXPECT_EQ(b.name(), "podsight_exec_total");

  const Family f = b.take();
  EXPECT_EQ(f.name, "podsight_exec_total");
  EXPECT_EQ(f.help, "Execs.");
  EXPECT_EQ(f.type, MetricType::Counter);
  EXPECT_TRUE(f.metric.empty());
  ASSERT_EQ(f.series.size(), 2u);
  EXPECT_EQ(blocks(f), (std::vector<std::string>{R"({namespace="default",comm="bash"})",
                                                 R"({namespace="kube-system",comm="sh"})"}));
  EXPECT_EQ(f.series[0].value, 2);
  EXPECT_EQ(f.series[1].value, 5);
}

TEST(FamilyBuilder, SumsEqualLabelSetsInFirstSeenOrder) {
  FamilyBuilder b("x_total", "X.", MetricType::Counter, {"pod"});
  b.add({"b"}, 1);
  b.add({"a"}, 10);
  b.add({"b"}, 2.5);
  b.add({"a"}, 20);
  b.add({"c"}, 0);
  const Family f = b.take();
  EXPECT_EQ(blocks(f), (std::vector<std::string>{R"({pod="b"})", R"({pod="a"})", R"({pod="c"})"}));
  EXPECT_EQ(f.series[0].value, 3.5);
  EXPECT_EQ(f.series[1].value, 30);
  EXPECT_EQ(f.series[2].value, 0);
}

TEST(FamilyBuilder, GaugesAreSummedToo) {
  FamilyBuilder b("open_fds", "FDs.", MetricType::Gauge, {"pod"});
  b.add({"p"}, 3);
  b.add({"p"}, 4);
  const Family f = b.take();
  ASSERT_EQ(f.series.size(), 1u);
  EXPECT_EQ(f.type, MetricType::Gauge);
  EXPECT_EQ(f.series[0].value, 7);
}

TEST(FamilyBuilder, SanitizesAndEscapesLabelValues) {
  FamilyBuilder b("x_total", "X.", MetricType::Counter, {"comm"});
  b.add({"bad\xff"}, 1);
  b.add({"q\"uote\\back\nline"}, 1);
  const Family f = b.take();
  EXPECT_EQ(blocks(f), (std::vector<std::string>{R"({comm="bad\\xFF"})", R"({comm="q\"uote\\back\nline"})"}));
  EXPECT_TRUE(valid_utf8(f.labels));
}

TEST(FamilyBuilder, MergesValuesThatBecomeEqualAfterSanitizing) {
  // A comm holding byte 0xFF and one holding the text "\xFF" are one series once sanitized; a family
  // must not carry the same label set twice.
  FamilyBuilder b("x_total", "X.", MetricType::Counter, {"comm"});
  b.add({"a\xff"}, 1);
  b.add({"a\\xFF"}, 2);
  const Family f = b.take();
  ASSERT_EQ(f.series.size(), 1u);
  EXPECT_EQ(f.series[0].value, 3);
}

TEST(FamilyBuilder, KeysDoNotCollideWhateverTheValuesHold) {
  // Pairs that naive joins confuse: plain concatenation, a separator char inside a value, and
  // values that look like length prefixes or like the rendering itself.
  const std::vector<std::pair<std::string, std::string>> tuples = {{"ab", "c"},
                                                                   {"a", "bc"},
                                                                   {"a:b", "c"},
                                                                   {"a", "b:c"},
                                                                   {"a|b", "c"},
                                                                   {"a", "b|c"},
                                                                   {"", "a"},
                                                                   {"a", ""},
                                                                   {"", ""},
                                                                   {"1:a", ""},
                                                                   {"", "1:a"},
                                                                   {"1:", "a"},
                                                                   {"1:a1:", ""},
                                                                   {"2:ab", "1:c"},
                                                                   {std::string("a\0b", 3), "c"},
                                                                   {"a", std::string("\0b\0c", 4)},
                                                                   {"a\xff", "b"},
                                                                   {"a",
                                                                    "\xff"
                                                                    "b"},
                                                                   {"a\",l2=\"b", ""},
                                                                   {"a", "\",l2=\"b"},
                                                                   {"a\\", "b"},
                                                                   {"a", "\\b"}};
  FamilyBuilder b("x_total", "X.", MetricType::Counter, {"l1", "l2"});
  for (const auto& [x, y] : tuples) b.add({x, y}, 1);
  const Family f = b.take();
  ASSERT_EQ(f.series.size(), tuples.size());
  std::set<std::string> seen;
  for (std::size_t i = 0; i < f.series.size(); ++i) {
    EXPECT_EQ(f.series[i].value, 1) << i;
    EXPECT_EQ(f.label_block(f.series[i]), block({{"l1", tuples[i].first}, {"l2", tuples[i].second}})) << i;
    seen.emplace(f.label_block(f.series[i]));
  }
  EXPECT_EQ(seen.size(), tuples.size());
}

TEST(FamilyBuilder, VectorOverloadMatchesInitializerList) {
  FamilyBuilder b("x_total", "X.", MetricType::Counter, {"a", "b"});
  b.add({"1", "2\xff"}, 1);
  b.add(std::vector<std::string>{"1", "2\xff"}, 2);
  b.add(std::vector<std::string>{"1", "3"}, 4);
  const Family f = b.take();
  ASSERT_EQ(f.series.size(), 2u);
  EXPECT_EQ(f.series[0].value, 3);
  EXPECT_EQ(f.label_block(f.series[0]), R"({a="1",b="2\\xFF"})");
  EXPECT_EQ(f.series[1].value, 4);
}

TEST(FamilyBuilder, NoLabels) {
  FamilyBuilder b("up_total", "Up.", MetricType::Counter, {});
  b.add({}, 1);
  b.add(std::vector<std::string>{}, 1);
  const Family f = b.take();
  ASSERT_EQ(f.series.size(), 1u);
  EXPECT_EQ(f.label_block(f.series[0]), "");
  EXPECT_EQ(f.series[0].value, 2);
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
  const Family f = b.take();
  ASSERT_EQ(f.series.size(), 1u);
  EXPECT_EQ(f.series[0].value, 1);
}

TEST(FamilyBuilder, OnlyCountersAndGaugesAreAccepted) {
  EXPECT_THROW(FamilyBuilder("s", "S.", MetricType::Summary, {}), std::invalid_argument);
  EXPECT_THROW(FamilyBuilder("h", "H.", MetricType::Histogram, {}), std::invalid_argument);
  EXPECT_THROW(FamilyBuilder("u", "U.", MetricType::Untyped, {}), std::invalid_argument);
}

TEST(FamilyBuilder, TakeEmptiesBuilderAndKeepsItUsable) {
  FamilyBuilder b("x_total", "X.", MetricType::Counter, {"a"});
  b.add({"1"}, 5);
  const Family first = b.take();
  EXPECT_EQ(first.series.size(), 1u);
  EXPECT_EQ(b.size(), 0u);
  EXPECT_EQ(b.name(), "x_total");

  // The old series is forgotten: the same labels start from zero in the next family.
  b.add({"1"}, 2);
  const Family second = b.take();
  EXPECT_EQ(second.name, "x_total");
  EXPECT_EQ(second.help, "X.");
  EXPECT_EQ(second.type, MetricType::Counter);
  ASSERT_EQ(second.series.size(), 1u);
  EXPECT_EQ(second.series[0].value, 2);
  EXPECT_EQ(second.label_block(second.series[0]), R"({a="1"})");
  EXPECT_TRUE(b.take().series.empty());
}

TEST(FamilyBuilder, ManySeriesWithRepeatsMatchAReferenceSum) {
  // Enough series to grow the index many times, each label set added several times, in shuffled order.
  std::mt19937 rng(7);
  std::vector<std::pair<std::string, double>> adds;
  std::map<std::string, double> want;
  for (int i = 0; i < 20000; ++i) {
    const std::string comm = "c" + std::to_string(i % 7001);
    adds.emplace_back(comm, i % 13);
    want[comm] += i % 13;
  }
  std::shuffle(adds.begin(), adds.end(), rng);
  FamilyBuilder b("x_total", "X.", MetricType::Counter, {"comm"});
  for (const auto& [comm, v] : adds) b.add({comm}, v);
  const Family f = b.take();
  ASSERT_EQ(f.series.size(), want.size());
  for (const auto& s : f.series) {
    const std::string_view blk = f.label_block(s);
    const std::string comm(blk.substr(7, blk.size() - 9));  // {comm="..."}
    EXPECT_EQ(s.value, want.at(comm)) << comm;
  }
}

// expect() only sizes the builder: with a hint too small, right or far too big, and across scrapes
// of one builder, the family is the same series in the same order with the same sums.
TEST(FamilyBuilder, ExpectChangesNothingButAllocation) {
  const auto build = [](FamilyBuilder& b, std::size_t hint) {
    if (hint != 0) b.expect(hint);
    for (int i = 0; i < 30000; ++i) {
      b.add({"ns" + std::to_string(i % 17), "/kubepods/pod" + std::to_string(i % 9001), "c" + std::to_string(i)},
            i % 5);
      if (i % 4 == 0) b.add({"ns" + std::to_string(i % 17), "/kubepods/pod" + std::to_string(i % 9001), "c0"}, 1);
    }
    return b.take();
  };
  FamilyBuilder reference_builder("x_total", "X.", MetricType::Counter, {"namespace", "cgroup", "comm"});
  const Family reference = build(reference_builder, 0);
  ASSERT_GT(reference.series.size(), 30000u);  // the "c0" adds merge into fewer series than they are
  FamilyBuilder b("x_total", "X.", MetricType::Counter, {"namespace", "cgroup", "comm"});
  for (const std::size_t hint : {std::size_t{1}, std::size_t{30000}, std::size_t{1000000}, std::size_t{0}}) {
    const Family f = build(b, hint);
    EXPECT_EQ(blocks(f), blocks(reference)) << hint;
    ASSERT_EQ(f.series.size(), reference.series.size()) << hint;
    for (std::size_t i = 0; i < f.series.size(); ++i) EXPECT_EQ(f.series[i].value, reference.series[i].value);
    EXPECT_EQ(f.labels.size(), reference.labels.size()) << hint;
  }
}

// Encoding in pieces writes the same bytes as encoding into one string, in both formats, each piece
// whole lines of about the size asked for; an exception from the writer ends the encoding.
TEST(FamilyBuilder, EncodingInPiecesWritesTheSameBytes) {
  Families families;
  FamilyBuilder big("podsight_process_execs_total", "Execs.", MetricType::Counter, {"cgroup", "comm"});
  for (int i = 0; i < 5000; ++i) big.add({"/pod" + std::to_string(i % 50), "c\\" + std::to_string(i)}, i);
  families.push_back(big.take());
  FamilyBuilder info("podsight_build_info", "Build.", MetricType::Gauge, {"version"});
  info.add({"1.0"}, 1);
  families.push_back(info.take());
  prometheus::MetricFamily histogram;
  histogram.name = "podsight_scrape_seconds";
  histogram.help = "Scrapes.";
  histogram.type = MetricType::Histogram;
  histogram.metric.emplace_back();
  histogram.metric.back().histogram.sample_count = 3;
  histogram.metric.back().histogram.bucket = {{1, 0.5}, {3, 2.0}};
  families.push_back(Family::from(histogram));

  for (const Format format : {Format::kText004, Format::kOpenMetrics100}) {
    std::string whole;
    encode(families, format, whole);
    EXPECT_GE(encoded_size_estimate(families), whole.size() * 9 / 10);
    for (const std::size_t piece : {std::size_t{1}, std::size_t{1000}, std::size_t{64} << 10}) {
      std::string joined;
      std::size_t pieces = 0;
      encode(
          families, format,
          [&](std::string_view p) {
            ++pieces;
            EXPECT_FALSE(p.empty());
            EXPECT_EQ(p.back(), '\n') << "a piece ends inside a line";
            EXPECT_LT(p.size(), piece + 200);
            joined.append(p);
          },
          piece);
      EXPECT_EQ(joined, whole) << piece;
      EXPECT_GE(pieces, whole.size() / (piece + 200)) << piece;
    }
  }
  int calls = 0;
  EXPECT_THROW(encode(
                   families, Format::kText004,
                   [&](std::string_view) {
                     if (++calls == 3) throw std::runtime_error("client went away");
                   },
                   1000),
               std::runtime_error);
  EXPECT_EQ(calls, 3);
}

TEST(FamilyBuilder, OutputEncodesToExpectedText) {
  FamilyBuilder b("podsight_exec_total", "Execs.", MetricType::Counter, {"comm"});
  b.add({"we\"ird\n"}, 1);
  b.add({"plain"}, 2);
  b.add({"we\"ird\n"}, 1);
  std::string out;
  encode(Families{b.take()}, Format::kText004, out);
  EXPECT_EQ(out,
            "# HELP podsight_exec_total Execs.\n# TYPE podsight_exec_total counter\n"
            "podsight_exec_total{comm=\"we\\\"ird\\n\"} 2\npodsight_exec_total{comm=\"plain\"} 2\n");
}

// The compact path (label blocks rendered by FamilyBuilder) must write exactly the bytes the
// prometheus-cpp path writes for the same sanitized series, in both formats: counters with their
// OpenMetrics suffix, gauges, info gauges, no labels, hostile bytes, empty families.
TEST(FamilyBuilder, CompactSeriesEncodeLikeClassicOnes) {
  struct Case {
    std::string name;
    MetricType type;
    std::vector<std::string> label_names;
    std::vector<std::pair<std::vector<std::string>, double>> samples;
  };
  const std::vector<Case> cases = {
      {"podsight_x_total",
       MetricType::Counter,
       {"namespace", "comm"},
       {{{"default", "bash"}, 3}, {{"", "we\"ird\\\n"}, 1.5}, {{"a\xff\xc0", "ok"}, 1e15}}},
      {"podsight_g", MetricType::Gauge, {"map"}, {{{"m"}, -0.25}, {{"n"}, 7}}},
      {"podsight_build_info", MetricType::Gauge, {"version"}, {{{"1.0"}, 1}}},
      {"podsight_nolabels_total", MetricType::Counter, {}, {{{}, 42}}},
      {"podsight_empty_total", MetricType::Counter, {"a"}, {}},
  };
  for (const Format format : {Format::kText004, Format::kOpenMetrics100}) {
    Families compact;
    std::vector<prometheus::MetricFamily> classic;
    for (const auto& c : cases) {
      FamilyBuilder b(c.name, "Help with \\ and \" and\nnewline.", c.type, c.label_names);
      prometheus::MetricFamily m;
      m.name = c.name;
      m.help = "Help with \\ and \" and\nnewline.";
      m.type = c.type;
      for (const auto& [values, v] : c.samples) {
        b.add(values, v);
        prometheus::ClientMetric cm;
        for (std::size_t i = 0; i < values.size(); ++i)
          cm.label.push_back({c.label_names[i], sanitize_utf8(values[i])});
        (c.type == MetricType::Counter ? cm.counter.value : cm.gauge.value) = v;
        m.metric.push_back(cm);
      }
      compact.push_back(b.take());
      classic.push_back(m);
    }
    // A prometheus-cpp family carried in a Family encodes as it would alone.
    prometheus::MetricFamily registry;
    registry.name = "podsight_http_requests_total";
    registry.help = "Requests.";
    registry.type = MetricType::Counter;
    registry.metric.emplace_back();
    registry.metric.back().label.push_back({"code", "200"});
    registry.metric.back().counter.value = 9;
    compact.push_back(Family::from(registry));
    classic.push_back(registry);

    std::string a;
    std::string b;
    encode(compact, format, a);
    encode(classic, format, b);
    EXPECT_EQ(a, b) << (format == Format::kText004 ? "text" : "openmetrics");
    EXPECT_TRUE(valid_utf8(a));
  }
}

}  // namespace
}  // namespace podsight::metrics
