// Fuzzes the exposition encoder: families built from arbitrary bytes (label values, HELP, values,
// timestamps) through FamilyBuilder, and raw histograms and summaries, are encoded in both formats. The
// output must pass the strict reader and read back as exactly what went in: every series once, label
// values and HELP as sanitize_utf8 made them, values and timestamps bit for bit.
#include "fuzz/strict_exposition.hpp"
#include "metrics/exposition.hpp"
#include "metrics/family_builder.hpp"

#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace {

using podsight::metrics::FamilyBuilder;
using podsight::metrics::Format;
using podsight::metrics::sanitize_utf8;
using prometheus::ClientMetric;
using prometheus::MetricType;

struct ExpectedSeries {
  std::vector<std::string> label_values;  // sanitized
  double value = 0;
  std::int64_t timestamp_ms = 0;
};

[[noreturn]] void fail(const char* what, const std::string& text, const std::string& detail) {
  std::fprintf(stderr, "exposition fuzz: %s: %s\n---- output ----\n%s\n----\n", what, detail.c_str(),
               text.c_str());
  std::abort();
}

bool same_double(double a, double b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  return std::memcmp(&a, &b, sizeof a) == 0;
}

// A name the fuzzer shapes but that is always valid and unique: the encoder's contract is that names
// are ours. `stem` keeps families apart whatever the suffix.
std::string metric_name(FuzzedDataProvider& in, std::size_t index, const char* suffix) {
  static constexpr char kChars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_:";
  std::string name = "f" + std::to_string(index) + "_";
  const auto extra = in.ConsumeIntegralInRange<std::size_t>(0, 8);
  for (std::size_t i = 0; i < extra; ++i)
    name += kChars[in.ConsumeIntegralInRange<std::size_t>(0, sizeof kChars - 2)];
  // The family name must not end in a suffix its samples could carry, so close it with a letter.
  return name + "x" + suffix;
}

std::vector<std::string> label_names(FuzzedDataProvider& in) {
  static const char* const kNames[] = {"namespace", "pod", "container", "cgroup", "comm",
                                       "a",         "B_2", "x9",        "_u"};
  std::vector<std::string> names;
  const auto n = in.ConsumeIntegralInRange<std::size_t>(0, 4);
  for (std::size_t i = 0; i < n; ++i) {
    std::string candidate = kNames[in.ConsumeIntegralInRange<std::size_t>(0, std::size(kNames) - 1)];
    if (std::find(names.begin(), names.end(), candidate) == names.end()) names.push_back(candidate);
  }
  return names;
}

double any_double(FuzzedDataProvider& in) {
  switch (in.ConsumeIntegralInRange(0, 3)) {
    case 0:
      return static_cast<double>(in.ConsumeIntegral<std::uint64_t>());
    case 1:
      return static_cast<double>(in.ConsumeIntegralInRange<std::int64_t>(-1000000, 1000000));
    default:
      return in.ConsumeFloatingPoint<double>();
  }
}

std::string key_of(const std::vector<std::string>& values) {
  std::string key;
  for (const auto& v : values) key += std::to_string(v.size()) + ":" + v;
  return key;
}

// One family: what goes to the encoder, and what must come out.
struct Case {
  podsight::metrics::Family family;  // FamilyBuilder's rendered series, or prometheus-cpp's in .metric
  std::vector<ExpectedSeries> expected;
  std::vector<std::string> label_names;
};

Case built_family(FuzzedDataProvider& in, std::size_t index, MetricType type, bool info) {
  Case c;
  const std::string name = metric_name(in, index,
                                       type == MetricType::Counter ? "_total"
                                       : info                      ? "_info"
                                                                   : "");
  const std::string help = in.ConsumeRandomLengthString(64);
  c.label_names = label_names(in);
  FamilyBuilder builder(name, help, type, c.label_names);
  std::map<std::string, std::size_t> index_of;
  const auto samples = in.ConsumeIntegralInRange<std::size_t>(0, 8);
  for (std::size_t s = 0; s < samples; ++s) {
    std::vector<std::string> raw;
    for (std::size_t l = 0; l < c.label_names.size(); ++l) raw.push_back(in.ConsumeRandomLengthString(24));
    double value = any_double(in);
    // A counter counts: its contract is a non-negative number (OpenMetrics forbids anything else).
    if (type == MetricType::Counter && (std::isnan(value) || value < 0))
      value = std::isnan(value) ? 0 : -value;
    builder.add(raw, value);
    std::vector<std::string> clean;
    for (const auto& r : raw) clean.push_back(sanitize_utf8(r));
    const auto [it, fresh] = index_of.emplace(key_of(clean), c.expected.size());
    if (fresh) {
      c.expected.push_back({clean, value, 0});
    } else {
      c.expected[it->second].value += value;
    }
  }
  c.family = builder.take();
  return c;
}

// Histograms and summaries do not go through FamilyBuilder; their contract is a well-formed
// distribution (ascending bounds, cumulative counts) with unique label sets.
Case raw_family(FuzzedDataProvider& in, std::size_t index, MetricType type) {
  Case c;
  c.family.name = metric_name(in, index, "");
  c.family.help = in.ConsumeRandomLengthString(32);
  c.family.type = type;
  c.label_names = label_names(in);
  std::set<std::string> seen;
  const auto series = in.ConsumeIntegralInRange<std::size_t>(0, 3);
  for (std::size_t s = 0; s < series; ++s) {
    ClientMetric m;
    std::vector<std::string> clean;
    for (const auto& n : c.label_names) {
      std::string raw = in.ConsumeRandomLengthString(16);
      clean.push_back(sanitize_utf8(raw));
      m.label.push_back({n, raw});
    }
    if (!seen.insert(key_of(clean)).second) continue;
    if (in.ConsumeBool()) m.timestamp_ms = in.ConsumeIntegral<std::int64_t>();
    if (type == MetricType::Histogram) {
      std::vector<double> bounds;
      const auto nb = in.ConsumeIntegralInRange<std::size_t>(0, 6);
      for (std::size_t b = 0; b < nb; ++b) {
        const double d = in.ConsumeFloatingPoint<double>();
        if (std::isfinite(d)) bounds.push_back(d);
      }
      std::sort(bounds.begin(), bounds.end());
      bounds.erase(std::unique(bounds.begin(), bounds.end()), bounds.end());
      std::uint64_t cumulative = 0;
      for (double b : bounds) {
        cumulative += in.ConsumeIntegralInRange<std::uint64_t>(0, 1000);
        m.histogram.bucket.push_back({cumulative, b});
      }
      m.histogram.sample_count = cumulative + in.ConsumeIntegralInRange<std::uint64_t>(0, 1000);
      if (in.ConsumeBool()) m.histogram.bucket.push_back({m.histogram.sample_count, HUGE_VAL});
      m.histogram.sample_sum = static_cast<double>(in.ConsumeIntegralInRange<std::int64_t>(0, 1 << 30));
    } else {
      std::vector<double> qs;
      const auto nq = in.ConsumeIntegralInRange<std::size_t>(0, 4);
      for (std::size_t q = 0; q < nq; ++q) qs.push_back(in.ConsumeProbability<double>());
      std::sort(qs.begin(), qs.end());
      qs.erase(std::unique(qs.begin(), qs.end()), qs.end());
      for (double q : qs) m.summary.quantile.push_back({q, any_double(in)});
      m.summary.sample_count = in.ConsumeIntegral<std::uint32_t>();
      m.summary.sample_sum = any_double(in);
    }
    c.expected.push_back({clean, 0, m.timestamp_ms});
    c.family.metric.push_back(std::move(m));
  }
  return c;
}

std::vector<std::string> values_of(const podsight::testing::ParsedSample& s,
                                   const std::vector<std::string>& names, const std::string& text) {
  std::vector<std::string> out;
  for (const auto& n : names) {
    auto it = std::find_if(s.labels.begin(), s.labels.end(), [&](const auto& l) { return l.first == n; });
    if (it == s.labels.end()) fail("label missing", text, s.name + " lacks " + n);
    out.push_back(it->second);
  }
  return out;
}

void check(const std::vector<Case>& cases, Format format, const std::string& text) {
  const bool om = format == Format::kOpenMetrics100;
  const auto parsed = podsight::testing::parse_exposition_strictly(text, om);
  if (!parsed.ok()) fail(om ? "invalid OpenMetrics" : "invalid text 0.0.4", text, parsed.error);
  std::size_t f = 0;
  for (const auto& c : cases) {
    if (c.family.size() == 0) continue;  // the encoder drops families without series
    if (f >= parsed.families.size()) fail("family missing", text, c.family.name);
    const auto& p = parsed.families[f++];
    std::string want_name = c.family.name;
    if (om && c.family.type == MetricType::Counter) want_name.resize(want_name.size() - 6);
    if (om && p.type == "info") want_name.resize(want_name.size() - 5);
    if (p.name != want_name) fail("family name", text, p.name + " != " + want_name);
    const std::string help = sanitize_utf8(c.family.help);
    if (help.empty() ? p.help.has_value() : p.help != help) fail("HELP", text, p.name);
    if (c.family.type == MetricType::Counter || c.family.type == MetricType::Gauge) {
      if (p.samples.size() != c.expected.size()) fail("series count", text, p.name);
      for (std::size_t s = 0; s < c.expected.size(); ++s) {
        const auto& e = c.expected[s];
        const auto& got = p.samples[s];
        if (values_of(got, c.label_names, text) != e.label_values) fail("label values", text, got.name);
        if (got.labels.size() != c.label_names.size()) fail("extra labels", text, got.name);
        const double want = p.type == "info" ? 1.0 : e.value;
        if (!same_double(got.value, want)) fail("value", text, got.name);
        if (got.timestamp_ms) fail("timestamp", text, got.name);
      }
      continue;
    }
    // Histograms and summaries: each series' samples carry its labels and timestamp.
    for (const auto& got : p.samples) {
      const auto values = values_of(got, c.label_names, text);
      auto it = std::find_if(c.expected.begin(), c.expected.end(),
                             [&](const auto& e) { return e.label_values == values; });
      if (it == c.expected.end()) fail("unknown series", text, got.name);
      const std::optional<std::int64_t> ts =
          it->timestamp_ms == 0 ? std::nullopt : std::optional(it->timestamp_ms);
      if (got.timestamp_ms != ts) fail("timestamp", text, got.name);
    }
  }
  if (f != parsed.families.size()) fail("extra family", text, parsed.families[f].name);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  std::vector<Case> cases;
  const auto families = in.ConsumeIntegralInRange<std::size_t>(0, 6);
  for (std::size_t i = 0; i < families; ++i) {
    switch (in.ConsumeIntegralInRange(0, 4)) {
      case 0:
        cases.push_back(built_family(in, i, MetricType::Counter, false));
        break;
      case 1:
        cases.push_back(built_family(in, i, MetricType::Gauge, false));
        break;
      case 2:
        cases.push_back(built_family(in, i, MetricType::Gauge, true));
        break;
      case 3:
        cases.push_back(raw_family(in, i, MetricType::Histogram));
        break;
      default:
        cases.push_back(raw_family(in, i, MetricType::Summary));
        break;
    }
  }
  podsight::metrics::Families input;
  for (const auto& c : cases) input.push_back(c.family);
  for (Format format : {Format::kText004, Format::kOpenMetrics100}) {
    // encode() appends: what was in the string before must stay as it was.
    std::string out = "prefix";
    podsight::metrics::encode(input, format, out);
    if (out.rfind("prefix", 0) != 0) fail("prefix overwritten", out, "");
    check(cases, format, out.substr(6));
  }
  return 0;
}
