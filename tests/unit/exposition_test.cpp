// Tests of the Prometheus exposition encoder: escaping, UTF-8, numbers, both formats, Accept parsing,
// and the real promtool as an outside judge of the text format.
#include "metrics/exposition.hpp"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace podsight::metrics {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;
using Labels = std::vector<std::pair<std::string, std::string>>;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

ClientMetric series(const Labels& labels) {
  ClientMetric m;
  for (const auto& [name, value] : labels) m.label.push_back({name, value});
  return m;
}

MetricFamily family(std::string name, std::string help, MetricType type) {
  MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  return f;
}

MetricFamily gauge(std::string name, std::string help, const Labels& labels, double value) {
  MetricFamily f = family(std::move(name), std::move(help), MetricType::Gauge);
  f.metric.push_back(series(labels));
  f.metric.back().gauge.value = value;
  return f;
}

MetricFamily counter(std::string name, std::string help, const Labels& labels, double value) {
  MetricFamily f = family(std::move(name), std::move(help), MetricType::Counter);
  f.metric.push_back(series(labels));
  f.metric.back().counter.value = value;
  return f;
}

std::string encode_as(const std::vector<MetricFamily>& families, Format format) {
  std::string out;
  encode(families, format, out);
  return out;
}

std::string text(const std::vector<MetricFamily>& families) { return encode_as(families, Format::kText004); }
std::string om(const std::vector<MetricFamily>& families) {
  return encode_as(families, Format::kOpenMetrics100);
}

// The value as written on a label-less gauge sample line.
std::string value_text(double v) {
  const std::string out = text({gauge("g", "", {}, v)});
  const std::string prefix = "# TYPE g gauge\ng ";
  EXPECT_EQ(out.compare(0, prefix.size(), prefix), 0) << out;
  EXPECT_EQ(out.back(), '\n') << out;
  return out.substr(prefix.size(), out.size() - prefix.size() - 1);
}

// The value of label `name` of the first sample line, unescaped by the text format's rules, so tests
// can check what a scraper would read back. Written independently of the encoder on purpose.
std::string read_back_label(const std::string& exposition, std::string_view name) {
  std::istringstream lines(exposition);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] == '#') continue;
    const std::string key = std::string(name) + "=\"";
    std::size_t i = line.find('{');
    // Walk label by label so that a key-like text inside an earlier value is not mistaken for one.
    while (i != std::string::npos && i < line.size() && line[i] != '}') {
      ++i;
      const bool match = line.compare(i, key.size(), key) == 0;
      i = line.find("=\"", i);
      if (i == std::string::npos) break;
      i += 2;
      std::string value;
      for (; i < line.size() && line[i] != '"'; ++i) {
        if (line[i] == '\\' && i + 1 < line.size()) {
          ++i;
          value.push_back(line[i] == 'n' ? '\n' : line[i]);
        } else {
          value.push_back(line[i]);
        }
      }
      if (match) return value;
      ++i;  // past the closing quote, onto ',' or '}'
    }
    ADD_FAILURE() << "label " << name << " not on the first sample line: " << line;
    return {};
  }
  ADD_FAILURE() << "no sample line in: " << exposition;
  return {};
}

// ---------------------------------------------------------------------------------------------------
// Text format structure and escaping

TEST(ExpositionText, GaugeWithoutLabelsHasNoBraces) {
  EXPECT_EQ(text({gauge("up_things", "Things that are up.", {}, 3)}),
            "# HELP up_things Things that are up.\n# TYPE up_things gauge\nup_things 3\n");
}

TEST(ExpositionText, CounterWithLabelsInGivenOrder) {
  EXPECT_EQ(text({counter("x_total", "Xs.", {{"b", "2"}, {"a", "1"}}, 7)}),
            "# HELP x_total Xs.\n# TYPE x_total counter\nx_total{b=\"2\",a=\"1\"} 7\n");
}

TEST(ExpositionText, EmptyHelpIsOmitted) {
  EXPECT_EQ(text({gauge("g", "", {{"a", "b"}}, 1)}), "# TYPE g gauge\ng{a=\"b\"} 1\n");
}

TEST(ExpositionText, UntypedFamily) {
  MetricFamily f = family("u", "U.", MetricType::Untyped);
  f.metric.push_back(series({}));
  f.metric.back().untyped.value = 2.5;
  EXPECT_EQ(text({f}), "# HELP u U.\n# TYPE u untyped\nu 2.5\n");
}

TEST(ExpositionText, FamilyWithoutSeriesIsSkipped) {
  EXPECT_EQ(text({family("empty", "E.", MetricType::Gauge), gauge("g", "", {}, 1)}),
            "# TYPE g gauge\ng 1\n");
}

TEST(ExpositionText, EmptyInputGivesEmptyOutput) { EXPECT_EQ(text({}), ""); }

TEST(ExpositionText, AppendsToExistingContent) {
  std::string out = "# prior\n";
  encode({gauge("g", "", {}, 1)}, Format::kText004, out);
  EXPECT_EQ(out, "# prior\n# TYPE g gauge\ng 1\n");
}

TEST(ExpositionText, LabelValueEscapesEachSpecialCharacter) {
  EXPECT_EQ(text({gauge("g", "", {{"l", "a\\b"}}, 1)}), "# TYPE g gauge\ng{l=\"a\\\\b\"} 1\n");
  EXPECT_EQ(text({gauge("g", "", {{"l", "a\"b"}}, 1)}), "# TYPE g gauge\ng{l=\"a\\\"b\"} 1\n");
  EXPECT_EQ(text({gauge("g", "", {{"l", "a\nb"}}, 1)}), "# TYPE g gauge\ng{l=\"a\\nb\"} 1\n");
  // Everything else is written as is: tab, carriage return, braces, '=', ',' and valid UTF-8.
  EXPECT_EQ(text({gauge("g", "", {{"l", "\t\r{}=,\xC3\xA9"}}, 1)}),
            "# TYPE g gauge\ng{l=\"\t\r{}=,\xC3\xA9\"} 1\n");
  EXPECT_EQ(text({gauge("g", "", {{"l", ""}}, 1)}), "# TYPE g gauge\ng{l=\"\"} 1\n");
}

TEST(ExpositionText, LabelValueReadsBackAsSanitizedOriginal) {
  const std::vector<std::string> values = {
      "plain",   "\"quoted\"",      "back\\slash", "trailing\\",  "new\nline",       "\\n literal",
      "\\\"",    "a\"},b=\"c",      "\xff\xfe",    "x\\xFF",      "\xC0\xAF",        "\xED\xA0\x80",
      "\xE2\x82", "tab\there",      "",            "\xF0\x9D\x84\x9E", "mixed\xff\"\\\n"};
  for (const auto& v : values) {
    const std::string out = text({gauge("g", "", {{"first", "1"}, {"l", v}, {"last", "2"}}, 1)});
    EXPECT_EQ(read_back_label(out, "l"), sanitize_utf8(v)) << out;
    EXPECT_EQ(read_back_label(out, "last"), "2") << out;
    EXPECT_TRUE(valid_utf8(out)) << out;
    // One line per sample whatever the value held.
    EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 2) << out;
  }
}

TEST(ExpositionText, SpecialByteFoundAtEveryOffsetAndLength) {
  // The scanner looks at whole words and re-reads tails; a special byte must be caught wherever it
  // sits relative to those words.
  const std::vector<std::pair<std::string, std::string>> specials = {
      {"\\", "\\\\"}, {"\"", "\\\""}, {"\n", "\\n"}, {"\xff", "\\\\xFF"}, {"\xC3\xA9", "\xC3\xA9"},
      {"\xE2\x82", "\\\\xE2\\\\x82"}};
  for (std::size_t len = 1; len <= 33; ++len) {
    for (std::size_t pos = 0; pos < len; ++pos) {
      for (const auto& [raw, escaped] : specials) {
        std::string value(len, 'a');
        value.replace(pos, 1, raw);
        std::string want(len, 'a');
        want.replace(pos, 1, escaped);
        ASSERT_EQ(text({gauge("g", "", {{"l", value}}, 1)}), "# TYPE g gauge\ng{l=\"" + want + "\"} 1\n")
            << "len " << len << " pos " << pos;
        const bool valid = raw == "\xC3\xA9" || (raw.size() == 1 && static_cast<unsigned char>(raw[0]) < 0x80);
        ASSERT_EQ(valid_utf8(value), valid) << "len " << len << " pos " << pos;
      }
    }
  }
}

TEST(ExpositionText, InvalidUtf8InLabelValueBecomesEscapedHexLiteral) {
  // sanitize_utf8 gives the four characters \xFF; on the wire the backslash is escaped in turn.
  EXPECT_EQ(text({gauge("g", "", {{"l", "a\xff" "b"}}, 1)}), "# TYPE g gauge\ng{l=\"a\\\\xFFb\"} 1\n");
}

TEST(ExpositionText, HelpEscapesBackslashAndNewlineOnly) {
  EXPECT_EQ(text({gauge("g", "back\\slash \"quoted\"\nnext\ttab", {}, 1)}),
            "# HELP g back\\\\slash \"quoted\"\\nnext\ttab\n# TYPE g gauge\ng 1\n");
}

TEST(ExpositionText, HelpWithInvalidUtf8IsSanitized) {
  const std::string out = text({gauge("g", "bad \xff", {}, 1)});
  EXPECT_EQ(out, "# HELP g bad \\\\xFF\n# TYPE g gauge\ng 1\n");
  EXPECT_TRUE(valid_utf8(out));
}

TEST(ExpositionText, TimestampOnlyWhenSet) {
  MetricFamily f = gauge("g", "", {{"a", "b"}}, 1);
  EXPECT_EQ(text({f}), "# TYPE g gauge\ng{a=\"b\"} 1\n");
  f.metric.back().timestamp_ms = 1700000000123;
  EXPECT_EQ(text({f}), "# TYPE g gauge\ng{a=\"b\"} 1 1700000000123\n");
  f.metric.back().timestamp_ms = -5;
  EXPECT_EQ(text({f}), "# TYPE g gauge\ng{a=\"b\"} 1 -5\n");
}

TEST(ExpositionText, HistogramAddsInfBucketWhenMissing) {
  MetricFamily f = family("lat_seconds", "L.", MetricType::Histogram);
  f.metric.push_back(series({{"op", "read"}}));
  f.metric.back().histogram.bucket = {{1, 0.005}, {3, 1}};
  f.metric.back().histogram.sample_count = 4;
  f.metric.back().histogram.sample_sum = 2.5;
  EXPECT_EQ(text({f}),
            "# HELP lat_seconds L.\n# TYPE lat_seconds histogram\n"
            "lat_seconds_bucket{op=\"read\",le=\"0.005\"} 1\n"
            "lat_seconds_bucket{op=\"read\",le=\"1\"} 3\n"
            "lat_seconds_bucket{op=\"read\",le=\"+Inf\"} 4\n"
            "lat_seconds_sum{op=\"read\"} 2.5\n"
            "lat_seconds_count{op=\"read\"} 4\n");
}

TEST(ExpositionText, HistogramKeepsExistingInfBucketAndWorksWithoutLabels) {
  MetricFamily f = family("h", "", MetricType::Histogram);
  f.metric.push_back(series({}));
  f.metric.back().histogram.bucket = {{2, 10}, {5, kInf}};
  f.metric.back().histogram.sample_count = 5;
  f.metric.back().histogram.sample_sum = 12;
  EXPECT_EQ(text({f}),
            "# TYPE h histogram\n"
            "h_bucket{le=\"10\"} 2\nh_bucket{le=\"+Inf\"} 5\nh_sum 12\nh_count 5\n");
}

TEST(ExpositionText, Summary) {
  MetricFamily f = family("rtt_seconds", "R.", MetricType::Summary);
  f.metric.push_back(series({{"peer", "x"}}));
  f.metric.back().summary.quantile = {{0.5, 0.25}, {0.99, 1}};
  f.metric.back().summary.sample_count = 10;
  f.metric.back().summary.sample_sum = 3.5;
  EXPECT_EQ(text({f}),
            "# HELP rtt_seconds R.\n# TYPE rtt_seconds summary\n"
            "rtt_seconds{peer=\"x\",quantile=\"0.5\"} 0.25\n"
            "rtt_seconds{peer=\"x\",quantile=\"0.99\"} 1\n"
            "rtt_seconds_sum{peer=\"x\"} 3.5\n"
            "rtt_seconds_count{peer=\"x\"} 10\n");
}

// ---------------------------------------------------------------------------------------------------
// Numbers

TEST(ExpositionNumbers, IntegersPrintWithoutExponentOrDecimal) {
  EXPECT_EQ(value_text(0), "0");
  EXPECT_EQ(value_text(42), "42");
  EXPECT_EQ(value_text(-7), "-7");
  EXPECT_EQ(value_text(1e15), "1000000000000000");
  EXPECT_EQ(value_text(std::ldexp(1.0, 53)), "9007199254740992");
  EXPECT_EQ(value_text(std::ldexp(1.0, 62)), "4611686018427387904");
  EXPECT_EQ(value_text(-std::ldexp(1.0, 63)), "-9223372036854775808");
}

TEST(ExpositionNumbers, NonIntegersUseShortestRoundTripForm) {
  EXPECT_EQ(value_text(1.5), "1.5");
  EXPECT_EQ(value_text(0.1), "0.1");
  EXPECT_EQ(value_text(-0.001), "-0.001");
  EXPECT_EQ(value_text(1e300), "1e+300");
  EXPECT_EQ(value_text(5e-324), "5e-324");
  EXPECT_EQ(value_text(0.1 + 0.2), "0.30000000000000004");
}

TEST(ExpositionNumbers, SpecialValues) {
  EXPECT_EQ(value_text(kInf), "+Inf");
  EXPECT_EQ(value_text(-kInf), "-Inf");
  EXPECT_EQ(value_text(kNaN), "NaN");
  EXPECT_EQ(value_text(-kNaN), "NaN");
  EXPECT_EQ(value_text(-0.0), "-0");
}

TEST(ExpositionNumbers, EveryFiniteValueRoundTrips) {
  std::vector<double> values = {0.0,
                                -0.0,
                                1.0,
                                -1.0,
                                0.1,
                                1.0 / 3,
                                std::ldexp(1.0, 53) + 2,
                                std::ldexp(1.0, 63),
                                std::ldexp(1.0, 64),
                                -std::ldexp(1.0, 63) - 2048,
                                std::numeric_limits<double>::max(),
                                std::numeric_limits<double>::lowest(),
                                std::numeric_limits<double>::min(),
                                std::numeric_limits<double>::denorm_min(),
                                std::numeric_limits<double>::epsilon()};
  std::mt19937_64 rng(20240229);
  while (values.size() < 20000) {
    const std::uint64_t bits = rng();
    double v;
    std::memcpy(&v, &bits, sizeof v);
    if (std::isfinite(v)) values.push_back(v);
    values.push_back(static_cast<double>(static_cast<std::int64_t>(bits) >> (bits % 64)));
  }
  for (const double v : values) {
    const std::string s = value_text(v);
    char* end = nullptr;
    const double back = std::strtod(s.c_str(), &end);
    ASSERT_EQ(end, s.c_str() + s.size()) << s;
    ASSERT_EQ(std::memcmp(&back, &v, sizeof v), 0) << s << " read back as " << back;
  }
}

// ---------------------------------------------------------------------------------------------------
// OpenMetrics

TEST(ExpositionOpenMetrics, CounterFamilyDropsTotalSuffixSampleKeepsIt) {
  EXPECT_EQ(om({counter("podsight_events_total", "Events.", {{"a", "1"}}, 3)}),
            "# HELP podsight_events Events.\n# TYPE podsight_events counter\n"
            "podsight_events_total{a=\"1\"} 3\n# EOF\n");
}

TEST(ExpositionOpenMetrics, CounterWithoutTotalSuffixStillGetsValidSampleName) {
  EXPECT_EQ(om({counter("events", "", {}, 1)}), "# TYPE events counter\nevents_total 1\n# EOF\n");
}

TEST(ExpositionOpenMetrics, InfoGaugeBecomesInfoWithValueOne) {
  EXPECT_EQ(om({gauge("podsight_build_info", "Build.", {{"version", "1.2"}}, 5)}),
            "# HELP podsight_build Build.\n# TYPE podsight_build info\n"
            "podsight_build_info{version=\"1.2\"} 1\n# EOF\n");
  // The text format has no info type: same family is a plain gauge there.
  EXPECT_EQ(text({gauge("podsight_build_info", "Build.", {{"version", "1.2"}}, 5)}),
            "# HELP podsight_build_info Build.\n# TYPE podsight_build_info gauge\n"
            "podsight_build_info{version=\"1.2\"} 5\n");
}

TEST(ExpositionOpenMetrics, OrdinaryGaugeAndUntyped) {
  MetricFamily u = family("u", "", MetricType::Untyped);
  u.metric.push_back(series({}));
  u.metric.back().untyped.value = 4;
  EXPECT_EQ(om({gauge("temp_info_celsius", "", {}, 21.5), u}),
            "# TYPE temp_info_celsius gauge\ntemp_info_celsius 21.5\n# TYPE u unknown\nu 4\n# EOF\n");
}

TEST(ExpositionOpenMetrics, EndsWithExactlyOneEof) {
  EXPECT_EQ(om({}), "# EOF\n");
  const std::string out = om({gauge("a", "", {}, 1), gauge("b", "", {}, 2)});
  EXPECT_EQ(out, "# TYPE a gauge\na 1\n# TYPE b gauge\nb 2\n# EOF\n");
  EXPECT_EQ(out.find("# EOF"), out.size() - 6);
}

TEST(ExpositionOpenMetrics, HelpEscapesQuoteToo) {
  EXPECT_EQ(om({gauge("g", "back\\slash \"quoted\"\nnext \xff", {}, 1)}),
            "# HELP g back\\\\slash \\\"quoted\\\"\\nnext \\\\xFF\n# TYPE g gauge\ng 1\n# EOF\n");
}

TEST(ExpositionOpenMetrics, LabelValuesEscapedAsInText) {
  EXPECT_EQ(om({gauge("g", "", {{"l", "\"\\\n\xff"}}, 1)}),
            "# TYPE g gauge\ng{l=\"\\\"\\\\\\n\\\\xFF\"} 1\n# EOF\n");
}

TEST(ExpositionOpenMetrics, TimestampsAreSeconds) {
  MetricFamily f = gauge("g", "", {}, 1);
  const std::vector<std::pair<std::int64_t, std::string>> cases = {
      {1700000000123, "1700000000.123"}, {1500, "1.5"}, {2000, "2"},
      {-1500, "-1.5"},                   {7, "0.007"},  {std::numeric_limits<std::int64_t>::min(), "-9223372036854775.808"}};
  for (const auto& [ms, want] : cases) {
    f.metric.back().timestamp_ms = ms;
    EXPECT_EQ(om({f}), "# TYPE g gauge\ng 1 " + want + "\n# EOF\n") << ms;
  }
  f.metric.back().timestamp_ms = 0;
  EXPECT_EQ(om({f}), "# TYPE g gauge\ng 1\n# EOF\n");
}

TEST(ExpositionOpenMetrics, HistogramAndSummaryUseCanonicalThresholds) {
  MetricFamily h = family("lat_seconds", "", MetricType::Histogram);
  h.metric.push_back(series({}));
  h.metric.back().histogram.bucket = {{1, 0.5}, {2, 1}, {3, 10}};
  h.metric.back().histogram.sample_count = 3;
  h.metric.back().histogram.sample_sum = 4;
  MetricFamily s = family("rtt_seconds", "", MetricType::Summary);
  s.metric.push_back(series({}));
  s.metric.back().summary.quantile = {{0.5, 1}, {1, 2}};
  s.metric.back().summary.sample_count = 2;
  s.metric.back().summary.sample_sum = 3;
  EXPECT_EQ(om({h, s}),
            "# TYPE lat_seconds histogram\n"
            "lat_seconds_bucket{le=\"0.5\"} 1\nlat_seconds_bucket{le=\"1.0\"} 2\n"
            "lat_seconds_bucket{le=\"10.0\"} 3\nlat_seconds_bucket{le=\"+Inf\"} 3\n"
            "lat_seconds_sum 4\nlat_seconds_count 3\n"
            "# TYPE rtt_seconds summary\n"
            "rtt_seconds{quantile=\"0.5\"} 1\nrtt_seconds{quantile=\"1.0\"} 2\n"
            "rtt_seconds_sum 3\nrtt_seconds_count 2\n# EOF\n");
}

// ---------------------------------------------------------------------------------------------------
// UTF-8

TEST(ExpositionUtf8, AcceptsWellFormed) {
  for (const std::string_view s :
       {std::string_view(""), std::string_view("ascii"), std::string_view("nul\0inside", 10),
        std::string_view("\xC2\x80"),               // U+0080, smallest 2-byte
        std::string_view("\xC3\xA9"),               // é
        std::string_view("\xDF\xBF"),               // U+07FF
        std::string_view("\xE0\xA0\x80"),           // U+0800, smallest 3-byte
        std::string_view("\xE2\x82\xAC"),           // €
        std::string_view("\xED\x9F\xBF"),           // U+D7FF, just below the surrogates
        std::string_view("\xEE\x80\x80"),           // U+E000, just above them
        std::string_view("\xEF\xBF\xBF"),           // U+FFFF
        std::string_view("\xF0\x90\x80\x80"),       // U+10000, smallest 4-byte
        std::string_view("\xF0\x9D\x84\x9E"),       // musical G clef
        std::string_view("\xF4\x8F\xBF\xBF"),       // U+10FFFF, the last code point
        std::string_view("long ascii run before \xC3\xA9 and after, longer than a word")}) {
    EXPECT_TRUE(valid_utf8(s)) << s;
    EXPECT_EQ(sanitize_utf8(s), s);
  }
}

TEST(ExpositionUtf8, RejectsAndReplacesEachIllFormedByte) {
  const std::vector<std::pair<std::string_view, std::string_view>> cases = {
      {"\xC0\xAF", "\\xC0\\xAF"},                        // overlong '/'
      {"\xC1\xBF", "\\xC1\\xBF"},                        // overlong 2-byte
      {"\xE0\x80\xAF", "\\xE0\\x80\\xAF"},               // overlong 3-byte
      {"\xF0\x80\x80\xAF", "\\xF0\\x80\\x80\\xAF"},      // overlong 4-byte
      {"\xED\xA0\x80", "\\xED\\xA0\\x80"},               // U+D800, high surrogate
      {"\xED\xBF\xBF", "\\xED\\xBF\\xBF"},               // U+DFFF, low surrogate
      {"\xE2\x82", "\\xE2\\x82"},                        // truncated at the end
      {"x\xE2\x82y", "x\\xE2\\x82y"},                    // truncated in the middle
      {"\xF0\x9D\x84", "\\xF0\\x9D\\x84"},               // truncated 4-byte
      {"\xF4\x90\x80\x80", "\\xF4\\x90\\x80\\x80"},      // U+110000
      {"\xF5\x80\x80\x80", "\\xF5\\x80\\x80\\x80"},      // lead byte never valid
      {"\xF8\x88\x80\x80\x80", "\\xF8\\x88\\x80\\x80\\x80"},
      {"\xFF", "\\xFF"},
      {"\xFE\xFF", "\\xFE\\xFF"},
      {"\x80", "\\x80"},                                 // lone continuation
      {"\xC3\xA9\xFF\xC3\xA9", "\xC3\xA9\\xFF\xC3\xA9"},  // valid neighbours survive
      {"\xC3", "\\xC3"},
      {"\xC3\xC3\xA9", "\\xC3\xC3\xA9"},                 // a bad lead does not swallow a good one
      {"0123456789abcdef\x9f", "0123456789abcdef\\x9F"},  // after the word-at-a-time path
  };
  for (const auto& [in, want] : cases) {
    EXPECT_FALSE(valid_utf8(in)) << want;
    EXPECT_EQ(sanitize_utf8(in), want);
    EXPECT_TRUE(valid_utf8(sanitize_utf8(in))) << want;
  }
}

// A reference built the other way round: decode a code point arithmetically, then check it.
std::size_t reference_sequence_length(const unsigned char* p, std::size_t n) {
  const unsigned b0 = p[0];
  std::size_t len;
  std::uint32_t cp;
  if (b0 < 0x80) return 1;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2;
    cp = b0 & 0x1F;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3;
    cp = b0 & 0x0F;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4;
    cp = b0 & 0x07;
  } else {
    return 0;
  }
  if (n < len) return 0;
  for (std::size_t i = 1; i < len; ++i) {
    if ((p[i] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (p[i] & 0x3F);
  }
  const std::uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < min[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

bool reference_valid(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t len = reference_sequence_length(p + i, s.size() - i);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

TEST(ExpositionUtf8, AgreesWithReferenceDecoderOnAllShortSequences) {
  std::size_t mismatches = 0;
  char buf[4];
  for (unsigned a = 0; a < 256; ++a) {
    buf[0] = static_cast<char>(a);
    if (valid_utf8({buf, 1}) != reference_valid({buf, 1})) ++mismatches;
    for (unsigned b = 0; b < 256; ++b) {
      buf[1] = static_cast<char>(b);
      if (valid_utf8({buf, 2}) != reference_valid({buf, 2})) ++mismatches;
      // Three-byte strings only matter where the first byte can start a multi-byte sequence.
      if (a < 0xC0) continue;
      for (unsigned c = 0; c < 256; ++c) {
        buf[2] = static_cast<char>(c);
        if (valid_utf8({buf, 3}) != reference_valid({buf, 3})) ++mismatches;
      }
    }
  }
  for (unsigned a = 0xE0; a < 256; ++a) {
    for (unsigned b = 0; b < 256; ++b) {
      for (const unsigned c : {0x00u, 0x41u, 0x80u, 0x9Fu, 0xA0u, 0xBFu, 0xC0u}) {
        for (const unsigned d : {0x41u, 0x80u, 0xBFu, 0xC0u, 0xFFu}) {
          buf[0] = static_cast<char>(a);
          buf[1] = static_cast<char>(b);
          buf[2] = static_cast<char>(c);
          buf[3] = static_cast<char>(d);
          if (valid_utf8({buf, 4}) != reference_valid({buf, 4})) ++mismatches;
        }
      }
    }
  }
  EXPECT_EQ(mismatches, 0u);
}

TEST(ExpositionUtf8, SanitizedRandomBytesAreValidAndStable) {
  std::mt19937 rng(7);
  // Bias towards bytes that make interesting sequences.
  const unsigned char alphabet[] = {'a', '\\', 'x', 0x80, 0x9F, 0xA0, 0xBF, 0xC2, 0xDF,
                                    0xE0, 0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0xFF, 0xC0};
  for (int round = 0; round < 20000; ++round) {
    std::string s(rng() % 24, '\0');
    for (auto& ch : s) ch = static_cast<char>(alphabet[rng() % sizeof alphabet]);
    const std::string clean = sanitize_utf8(s);
    ASSERT_TRUE(valid_utf8(clean)) << clean;
    ASSERT_EQ(sanitize_utf8(clean), clean);
    ASSERT_EQ(valid_utf8(s), clean == s);
    ASSERT_EQ(valid_utf8(s), reference_valid(s));
  }
}

// ---------------------------------------------------------------------------------------------------
// Content negotiation

constexpr std::string_view kPrometheus242Accept =
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

// Calls negotiate() on a heap copy of exactly the header's bytes, with no terminating NUL, so that
// AddressSanitizer flags any read past the end.
Format negotiate_exact(std::string_view header) {
  auto buf = std::make_unique<char[]>(header.size());
  std::memcpy(buf.get(), header.data(), header.size());
  return negotiate(std::string_view(buf.get(), header.size()));
}

TEST(ExpositionNegotiate, PrometheusHeaderGetsOpenMetrics) {
  EXPECT_EQ(negotiate_exact(kPrometheus242Accept), Format::kOpenMetrics100);
}

TEST(ExpositionNegotiate, TextWhenOpenMetricsNotAsked) {
  for (const std::string_view h : {"", "text/plain", "text/plain;version=0.0.4", "*/*", "text/*",
                                   "application/json", "application/*", ",", " , ,\t"}) {
    EXPECT_EQ(negotiate_exact(h), Format::kText004) << h;
  }
}

TEST(ExpositionNegotiate, OpenMetricsOnlyForVersion100OrUnversioned) {
  EXPECT_EQ(negotiate_exact("application/openmetrics-text"), Format::kOpenMetrics100);
  EXPECT_EQ(negotiate_exact("application/openmetrics-text;version=1.0.0"), Format::kOpenMetrics100);
  EXPECT_EQ(negotiate_exact("application/openmetrics-text;version=\"1.0.0\""), Format::kOpenMetrics100);
  EXPECT_EQ(negotiate_exact("application/openmetrics-text;version=\"1.0\\.0\""), Format::kOpenMetrics100);
  EXPECT_EQ(negotiate_exact("application/openmetrics-text;version=0.0.1"), Format::kText004);
  EXPECT_EQ(negotiate_exact("application/openmetrics-text;version=1.0"), Format::kText004);
  EXPECT_EQ(negotiate_exact("application/openmetrics-text;version=1.0.0.0"), Format::kText004);
  EXPECT_EQ(negotiate_exact("application/openmetrics-text;version=\"1.0.0\\\"\""), Format::kText004);
  EXPECT_EQ(negotiate_exact("application/openmetrics-text;version=0.0.1;q=1,text/plain;q=0.5"),
            Format::kText004);
}

TEST(ExpositionNegotiate, QualityValues) {
  EXPECT_EQ(negotiate_exact("application/openmetrics-text;q=0"), Format::kText004);
  EXPECT_EQ(negotiate_exact("application/openmetrics-text;version=1.0.0;q=0.000"), Format::kText004);
  EXPECT_EQ(negotiate_exact("application/openmetrics-text;q=0, text/plain;q=0.5"), Format::kText004);
  EXPECT_EQ(negotiate_exact("application/openmetrics-text;q=0.001"), Format::kOpenMetrics100);
  EXPECT_EQ(negotiate_exact("application/openmetrics-text;q=0.5,text/plain;q=0.5"), Format::kText004);
  EXPECT_EQ(negotiate_exact("application/openmetrics-text;q=0.6,text/plain;q=0.5"), Format::kOpenMetrics100);
  EXPECT_EQ(negotiate_exact("text/plain;q=0.9,application/openmetrics-text;q=0.8"), Format::kText004);
  EXPECT_EQ(negotiate_exact("text/plain,application/openmetrics-text"), Format::kText004);
  EXPECT_EQ(negotiate_exact("application/openmetrics-text;q=1.000,text/plain;q=0.999"),
            Format::kOpenMetrics100);
  // The best of several OpenMetrics entries counts.
  EXPECT_EQ(negotiate_exact("application/openmetrics-text;q=0.1,application/openmetrics-text;q=0.9,"
                            "text/plain;q=0.5"),
            Format::kOpenMetrics100);
}

TEST(ExpositionNegotiate, WildcardsCoverTextButMostSpecificRangeWins) {
  EXPECT_EQ(negotiate_exact("application/openmetrics-text;q=0.5,*/*"), Format::kText004);
  EXPECT_EQ(negotiate_exact("application/openmetrics-text;q=0.5,text/*"), Format::kText004);
  EXPECT_EQ(negotiate_exact("application/openmetrics-text,*/*;q=0.9"), Format::kOpenMetrics100);
  EXPECT_EQ(negotiate_exact("application/openmetrics-text;q=0.5,text/plain;q=0.1,*/*"),
            Format::kOpenMetrics100);
  EXPECT_EQ(negotiate_exact("application/openmetrics-text;q=0.5,text/plain;q=0.9,*/*;q=0.1"),
            Format::kText004);
}

TEST(ExpositionNegotiate, CaseWhitespaceAndExtraParameters) {
  EXPECT_EQ(negotiate_exact("  APPLICATION/OpenMetrics-Text ; Version=1.0.0 ; Q=0.9 ,\ttext/plain ; q=0.5  "),
            Format::kOpenMetrics100);
  EXPECT_EQ(negotiate_exact("application/openmetrics-text; version=1.0.0; charset=utf-8"),
            Format::kOpenMetrics100);
  EXPECT_EQ(negotiate_exact("application/openmetrics-text;;version=1.0.0;"), Format::kOpenMetrics100);
  EXPECT_EQ(negotiate_exact(",,application/openmetrics-text,,"), Format::kOpenMetrics100);
  // A comma inside a quoted parameter does not end the media range.
  EXPECT_EQ(negotiate_exact("application/openmetrics-text;x=\"a,text/plain\";version=1.0.0"),
            Format::kOpenMetrics100);
  EXPECT_EQ(negotiate_exact("application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
                            "application/openmetrics-text;version=0.0.1;q=0.5,"
                            "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,"
                            "text/plain;version=0.0.4;q=0.3,*/*;q=0.2"),
            Format::kOpenMetrics100);
}

TEST(ExpositionNegotiate, MalformedHeadersFallBackToText) {
  for (const std::string_view h : {
           "garbage",
           "application/openmetrics-text;q=abc",
           "application/openmetrics-text;q=1.5",
           "application/openmetrics-text;q=1.001",
           "application/openmetrics-text;q=0.5555",
           "application/openmetrics-text;q=-1",
           "application/openmetrics-text;q=\"1\"",
           "application/openmetrics-text;q=",
           "application/openmetrics-text;version",
           "application/openmetrics-text;version=",
           "application/openmetrics-text;version=\"1.0.0",
           "application/openmetrics-text;version=\"1.0.0\\",
           "application/openmetrics-text;version = 1.0.0",
           "application/openmetrics-text garbage",
           "application/openmetrics-text, garbage",
           "application/openmetrics-text,text/plain;q",
           "application/",
           "/openmetrics-text",
           "*/openmetrics-text",
           "application openmetrics-text",
           "application/openmetrics-text;q=1\xff",
           "application/openmetrics-text\xff",
           "application/openmetrics-text;x=\"\x01\"",
           ";",
           "\"",
           "\\",
       }) {
    EXPECT_EQ(negotiate_exact(h), Format::kText004) << h;
  }
  EXPECT_EQ(negotiate_exact(std::string_view("application/openmetrics-text\0", 29)), Format::kText004);
}

TEST(ExpositionNegotiate, EveryTruncationOfPrometheusHeaderIsSafe) {
  for (std::size_t n = 0; n <= kPrometheus242Accept.size(); ++n) {
    const Format f = negotiate_exact(kPrometheus242Accept.substr(0, n));
    EXPECT_TRUE(f == Format::kText004 || f == Format::kOpenMetrics100);
  }
  // Cut right after the first media range: still OpenMetrics; cut inside its version: text.
  EXPECT_EQ(negotiate_exact(kPrometheus242Accept.substr(0, 42)), Format::kOpenMetrics100);
  EXPECT_EQ(negotiate_exact(kPrometheus242Accept.substr(0, 40)), Format::kText004);
}

TEST(ExpositionNegotiate, HostileInputNeverCrashes) {
  std::mt19937 rng(1234);
  const std::string_view pieces[] = {"application", "/", "openmetrics-text", "text", "plain", "*", ";",
                                     ",",           "=", "\"",               "\\",   "q",     "0.5", "version",
                                     "1.0.0",       " ", "\t",               "\xff", std::string_view("\0", 1)};
  std::size_t openmetrics = 0;
  for (int round = 0; round < 50000; ++round) {
    std::string h;
    const std::size_t n = rng() % 16;
    for (std::size_t i = 0; i < n; ++i) h += pieces[rng() % std::size(pieces)];
    if (negotiate_exact(h) == Format::kOpenMetrics100) ++openmetrics;
    // Random bytes too.
    std::string raw(rng() % 64, '\0');
    for (auto& c : raw) c = static_cast<char>(rng());
    (void)negotiate_exact(raw);
  }
  // Not a precise number: only that some random headers do parse to OpenMetrics, so the loop above
  // exercised the accepting paths too.
  EXPECT_GT(openmetrics, 0u);
  const std::string huge = std::string(200000, ',') + "application/openmetrics-text" + std::string(1000, ' ');
  EXPECT_EQ(negotiate_exact(huge), Format::kOpenMetrics100);
}

TEST(ExpositionNegotiate, ContentTypes) {
  EXPECT_EQ(content_type(Format::kText004), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(content_type(Format::kOpenMetrics100), "application/openmetrics-text; version=1.0.0; charset=utf-8");
}

// ---------------------------------------------------------------------------------------------------
// promtool as an outside judge

bool have_promtool() { return std::system("command -v promtool >/dev/null 2>&1") == 0; }

bool in_ci() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::string_view(ci) == "true";
}

struct CommandResult {
  int exit_status = -1;
  std::string output;
};

// Feeds `input` to `promtool check metrics` on stdin, the way a scrape would be checked by hand.
CommandResult promtool_check(const std::string& input) {
  char in_path[] = "/tmp/podsight-exposition-XXXXXX";
  const int fd = mkstemp(in_path);
  if (fd < 0) return {-1, "mkstemp failed"};
  close(fd);
  const std::string out_path = std::string(in_path) + ".out";
  { std::ofstream(in_path, std::ios::binary) << input; }
  const std::string cmd =
      std::string("promtool check metrics < ") + in_path + " > " + out_path + " 2>&1";
  const int status = std::system(cmd.c_str());
  CommandResult result;
  result.exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream out(out_path, std::ios::binary);
  result.output.assign(std::istreambuf_iterator<char>(out), std::istreambuf_iterator<char>());
  std::remove(in_path);
  std::remove(out_path.c_str());
  return result;
}

#define REQUIRE_PROMTOOL()                                                          \
  do {                                                                              \
    if (!have_promtool()) {                                                         \
      if (in_ci()) FAIL() << "promtool not found on PATH, and CI=true requires it"; \
      GTEST_SKIP() << "promtool not found on PATH";                                 \
    }                                                                               \
  } while (false)

const std::vector<std::string>& hostile_values() {
  static const std::vector<std::string> values = {
      "\"quoted\"",  "back\\slash", "trailing\\",   "new\nline",  "tab\there",     "\xff\xfe\xfd",
      "\xC0\xAF",    "\xED\xA0\x80", "cut\xE2\x82", "\xF5\x80\x80\x80", "a\"},evil=\"1", "\\\"\\n",
      "\r\n",        "",            "{}=,#",        "\xC3\xA9\xE2\x82\xAC\xF0\x9D\x84\x9E", "# EOF"};
  return values;
}

std::vector<MetricFamily> hostile_scrape() {
  std::vector<MetricFamily> families;
  const auto& values = hostile_values();

  MetricFamily events = family("podsight_test_events_total",
                               "Events seen, with \\ backslash, \"quotes\"\nand a newline \xff.",
                               MetricType::Counter);
  for (std::size_t i = 0; i < values.size(); ++i) {
    events.metric.push_back(series({{"comm", values[i]}, {"index", std::to_string(i)}}));
    events.metric.back().counter.value = static_cast<double>(i) * 1.5;
  }
  families.push_back(events);

  MetricFamily level = family("podsight_test_level_ratio", "A gauge with special values.", MetricType::Gauge);
  const double specials[] = {kNaN, kInf, -kInf, -0.0, 1e300, 5e-324, 0.1};
  for (std::size_t i = 0; i < std::size(specials); ++i) {
    level.metric.push_back(series({{"pod", values[i % values.size()]}, {"index", std::to_string(i)}}));
    level.metric.back().gauge.value = specials[i];
    level.metric.back().timestamp_ms = i == 0 ? 0 : 1700000000000 + static_cast<std::int64_t>(i);
  }
  families.push_back(level);

  families.push_back(gauge("podsight_test_build_info", "Build.", {{"version", "v1\"\xff"}}, 1));

  MetricFamily lat = family("podsight_test_latency_seconds", "Latency.", MetricType::Histogram);
  lat.metric.push_back(series({{"comm", "\xff\"\n\\"}}));
  lat.metric.back().histogram.bucket = {{1, 0.001}, {4, 0.1}, {9, 1}};
  lat.metric.back().histogram.sample_count = 10;
  lat.metric.back().histogram.sample_sum = 4.2;
  lat.metric.push_back(series({{"comm", "plain"}}));
  families.push_back(lat);

  MetricFamily rtt = family("podsight_test_rtt_seconds", "RTT.", MetricType::Summary);
  rtt.metric.push_back(series({{"peer", "a\\b"}}));
  rtt.metric.back().summary.quantile = {{0.5, 0.01}, {0.99, 0.2}};
  rtt.metric.back().summary.sample_count = 100;
  rtt.metric.back().summary.sample_sum = 3;
  families.push_back(rtt);
  return families;
}

TEST(ExpositionPromtool, HostileScrapePassesCheckMetrics) {
  REQUIRE_PROMTOOL();
  const std::string scrape = text(hostile_scrape());
  ASSERT_TRUE(valid_utf8(scrape));
  const CommandResult r = promtool_check(scrape);
  EXPECT_EQ(r.exit_status, 0) << r.output << "\n--- input ---\n" << scrape;
}

TEST(ExpositionPromtool, HarnessRejectsBrokenScrape) {
  // Shows that the check above can fail: the same families with one unescaped quote and one raw
  // invalid byte, as a naive encoder would write them.
  REQUIRE_PROMTOOL();
  const std::string ok = "# HELP x_total X.\n# TYPE x_total counter\nx_total{comm=\"a\"} 1\n";
  ASSERT_EQ(promtool_check(ok).exit_status, 0) << promtool_check(ok).output;
  EXPECT_NE(promtool_check("# HELP x_total X.\n# TYPE x_total counter\nx_total{comm=\"a\"b\"} 1\n").exit_status, 0);
  EXPECT_NE(promtool_check("# HELP x_total X.\n# TYPE x_total counter\nx_total{comm=\"\xff\"} 1\n").exit_status, 0);
}

// ---------------------------------------------------------------------------------------------------
// Scale

TEST(ExpositionScale, HundredThousandSeries) {
  std::vector<MetricFamily> families;
  constexpr int kFamilies = 10;
  constexpr int kPerFamily = 10000;
  for (int f = 0; f < kFamilies; ++f) {
    MetricFamily fam = family("podsight_perf_family_" + std::to_string(f) + "_total", "Perf family.",
                              MetricType::Counter);
    fam.metric.reserve(kPerFamily);
    for (int i = 0; i < kPerFamily; ++i) {
      fam.metric.push_back(series({{"namespace", "team-" + std::to_string(i % 50)},
                                   {"pod", "frontend-7d9c8b6f5-" + std::to_string(i)},
                                   {"container", "server"},
                                   {"comm", i % 100 == 0 ? "we\"ird\xff" : "nginx"}}));
      fam.metric.back().counter.value = i * 1024.0 + (i % 3 == 0 ? 0.5 : 0);
    }
    families.push_back(std::move(fam));
  }

  // Size only: how fast this is belongs to bench/, never to an assertion here.
  std::string out;
  encode(families, Format::kText004, out);
  ASSERT_EQ(std::count(out.begin(), out.end(), '\n'), kFamilies * (kPerFamily + 2));
  EXPECT_TRUE(valid_utf8(out));
}

}  // namespace
}  // namespace podsight::metrics
