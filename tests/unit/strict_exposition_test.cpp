// The strict exposition reader that the exposition fuzz target trusts: it must accept what the encoder
// writes and reject each way a text can be broken; a reader that accepts everything proves nothing.
#include "fuzz/strict_exposition.hpp"
#include "metrics/exposition.hpp"
#include "metrics/family_builder.hpp"

#include <gtest/gtest.h>

#include <cmath>

namespace podsight::testing {
namespace {

using metrics::Format;

metrics::Families sample_families() {
  metrics::Families out;
  metrics::FamilyBuilder execs("podsight_process_execs_total", "Exec \"calls\"\\ with\nnewline",
                               prometheus::MetricType::Counter, {"cgroup", "comm"});
  execs.add({"/a", "q\"uo\\te"}, 3);
  execs.add({"/a", std::string("bad\xff", 4)}, 1);
  execs.add({"/a", "new\nline"}, 2);
  out.push_back(execs.take());
  metrics::FamilyBuilder info("podsight_build_info", "build", prometheus::MetricType::Gauge, {"version"});
  info.add({"1.0"}, 1);
  out.push_back(info.take());
  prometheus::MetricFamily hist;
  hist.name = "podsight_test_seconds";
  hist.help = "h";
  hist.type = prometheus::MetricType::Histogram;
  prometheus::ClientMetric m;
  m.histogram.bucket = {{1, 0.5}, {3, 1.0}};
  m.histogram.sample_count = 4;
  m.histogram.sample_sum = 2.5;
  m.timestamp_ms = 1500;
  hist.metric.push_back(m);
  out.push_back(metrics::Family::from(hist));
  prometheus::MetricFamily sum;
  sum.name = "podsight_test_latency";
  sum.type = prometheus::MetricType::Summary;
  prometheus::ClientMetric s;
  s.summary.quantile = {{0.5, 1}, {0.99, NAN}};
  s.summary.sample_count = 2;
  s.summary.sample_sum = 3;
  sum.metric.push_back(s);
  out.push_back(metrics::Family::from(sum));
  return out;
}

TEST(StrictExposition, AcceptsWhatTheEncoderWritesAndReadsItBack) {
  for (const bool om : {false, true}) {
    std::string text;
    metrics::encode(sample_families(), om ? Format::kOpenMetrics100 : Format::kText004, text);
    const auto parsed = parse_exposition_strictly(text, om);
    ASSERT_TRUE(parsed.ok()) << parsed.error << "\n" << text;
    ASSERT_EQ(parsed.families.size(), 4U);
    const auto& execs = parsed.families[0];
    EXPECT_EQ(execs.name, om ? "podsight_process_execs" : "podsight_process_execs_total");
    EXPECT_EQ(execs.help, "Exec \"calls\"\\ with\nnewline");
    ASSERT_EQ(execs.samples.size(), 3U);
    EXPECT_EQ(execs.samples[0].labels[1].second, "q\"uo\\te");
    EXPECT_EQ(execs.samples[1].labels[1].second, "bad\\xFF");
    EXPECT_EQ(execs.samples[2].labels[1].second, "new\nline");
    EXPECT_EQ(execs.samples[0].value, 3);
    EXPECT_EQ(parsed.families[1].type, om ? "info" : "gauge");
    EXPECT_EQ(parsed.families[2].samples.back().timestamp_ms, 1500);
    EXPECT_TRUE(std::isnan(parsed.families[3].samples[1].value));
  }
}

TEST(StrictExposition, RejectsEachKindOfBreakage) {
  struct Bad {
    bool om;
    std::string text;
    const char* says;
  };
  const std::vector<Bad> cases = {
      {false, "# TYPE a counter\na 1", "newline"},
      {false, "# TYPE a counter\n\na 1\n", "empty line"},
      {false, std::string("# TYPE a gauge\na{l=\"\xff\"} 1\n"), "UTF-8"},
      {false, "a 1\n", "before any # TYPE"},
      {false, "# TYPE a counter\nb 1\n", "does not belong"},
      {false, "# TYPE a counter\na 1\n# TYPE b gauge\nb 1\n# TYPE a gauge\na 2\n", "second # TYPE"},
      {false, "# TYPE a counter\na{l=\"x\"} 1\na{l=\"x\"} 2\n", "duplicate series"},
      {false, "# TYPE a counter\na{l=\"x\",} 1\n", "trailing comma"},
      {false, "# TYPE a counter\na{l=\"x\",l=\"y\"} 1\n", "twice"},
      {false, "# TYPE a counter\na{__l=\"x\"} 1\n", "invalid label name"},
      {false, "# TYPE a counter\na{l=\"a\\tb\"} 1\n", "badly escaped"},
      {false, "# TYPE a counter\na{l=\"a\"b\"} 1\n", "expected ',' or '}'"},
      {false, "# TYPE a counter\na{l=\"a} 1\n", "unterminated"},
      {false, "# TYPE a counter\na 0x10\n", "invalid value"},
      {false, "# TYPE a counter\na 1 1.5\n", "invalid timestamp"},
      {false, "# TYPE a counter\na  1\n", "invalid value"},
      {false, "# TYPE a counter\n", "no samples"},
      {false, "# HELP a x\n# TYPE b counter\nb 1\n", "different metrics"},
      {false, "# HELP a x\\q\n# TYPE a counter\na 1\n", "badly escaped"},
      {false, "# EOF\n", "neither"},
      {false, "# TYPE a histogram\na_bucket{le=\"1\"} 2\na_bucket{le=\"+Inf\"} 1\na_sum 1\na_count 1\n",
       "decrease"},
      {false, "# TYPE a histogram\na_bucket{le=\"1\"} 1\na_sum 1\na_count 1\n", "+Inf"},
      {false, "# TYPE a histogram\na_bucket{le=\"+Inf\"} 2\na_sum 1\na_count 1\n", "differs from _count"},
      {false, "# TYPE a summary\na 1\na_sum 1\na_count 1\n", "without quantile"},
      {false, "# TYPE a summary\na{quantile=\"2\"} 1\na_sum 1\na_count 1\n", "not in [0, 1]"},
      {true, "# TYPE a counter\na_total 1\n", "without # EOF"},
      {true, "# TYPE a counter\na_total 1\n# EOF\n# TYPE b gauge\n", "after # EOF"},
      {true, "# TYPE a counter\na 1\n# EOF\n", "does not belong"},
      {true, "# TYPE a_total counter\na_total_total 1\n# EOF\n", "named with _total"},
      {true, "# TYPE a counter\na_total -1\n# EOF\n", "negative or NaN"},
      {true, "# TYPE a info\na_info 2\n# EOF\n", "not 1"},
      {true, "# HELP a say \"hi\"\n# TYPE a gauge\na 1\n# EOF\n", "badly escaped"},
      {true, "# TYPE a gauge\na 1 1.500\n# EOF\n", "invalid timestamp"},
      {true, "# TYPE a untyped\na 1\n# EOF\n", "unknown type"},
  };
  for (const auto& c : cases) {
    const auto parsed = parse_exposition_strictly(c.text, c.om);
    ASSERT_FALSE(parsed.ok()) << "accepted:\n" << c.text;
    EXPECT_NE(parsed.error.find(c.says), std::string::npos) << c.text << "-> " << parsed.error;
  }
}

}  // namespace
}  // namespace podsight::testing
