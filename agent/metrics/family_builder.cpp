// Builds one metric family per scrape: sanitized label values, one series per distinct label set.
#include "metrics/family_builder.hpp"

#include "metrics/exposition.hpp"

#include <charconv>
#include <stdexcept>
#include <utility>

namespace podsight::metrics {
namespace {

[[noreturn]] void throw_arity(const std::string& family, std::size_t expected, std::size_t got) {
  throw std::invalid_argument("FamilyBuilder(" + family + "): " + std::to_string(got) +
                              " label values for " + std::to_string(expected) + " label names");
}

}  // namespace

FamilyBuilder::FamilyBuilder(std::string name, std::string help, prometheus::MetricType type,
                             std::vector<std::string> label_names)
    : label_names_(std::move(label_names)) {
  if (type != prometheus::MetricType::Counter && type != prometheus::MetricType::Gauge) {
    throw std::invalid_argument("FamilyBuilder(" + name + "): only counters and gauges can be summed");
  }
  family_.name = std::move(name);
  family_.help = std::move(help);
  family_.type = type;
}

void FamilyBuilder::add(std::initializer_list<std::string_view> label_values, double value) {
  if (label_values.size() != label_names_.size()) {
    throw_arity(family_.name, label_names_.size(), label_values.size());
  }
  std::vector<std::string> values;
  values.reserve(label_values.size());
  for (const std::string_view v : label_values) values.push_back(sanitize_utf8(v));
  add_sanitized(std::move(values), value);
}

void FamilyBuilder::add(const std::vector<std::string>& label_values, double value) {
  if (label_values.size() != label_names_.size()) {
    throw_arity(family_.name, label_names_.size(), label_values.size());
  }
  std::vector<std::string> values;
  values.reserve(label_values.size());
  for (const std::string& v : label_values) values.push_back(sanitize_utf8(v));
  add_sanitized(std::move(values), value);
}

void FamilyBuilder::add_sanitized(std::vector<std::string>&& values, double value) {
  // Each value is prefixed with its length, so no value can pose as a separator: ("a:b", "c") and
  // ("a", "b:c") give different keys whatever bytes the values hold.
  std::size_t key_size = 0;
  for (const auto& v : values) key_size += v.size() + 21;
  std::string key;
  key.reserve(key_size);
  for (const auto& v : values) {
    char len[20];
    const auto res = std::to_chars(len, len + sizeof len, v.size());
    key.append(len, res.ptr);
    key.push_back(':');
    key.append(v);
  }

  const bool counter = family_.type == prometheus::MetricType::Counter;
  if (const auto it = index_.find(key); it != index_.end()) {
    auto& series = family_.metric[it->second];
    (counter ? series.counter.value : series.gauge.value) += value;
    return;
  }

  prometheus::ClientMetric series;
  series.label.reserve(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    series.label.push_back(prometheus::ClientMetric::Label{label_names_[i], std::move(values[i])});
  }
  (counter ? series.counter.value : series.gauge.value) = value;
  family_.metric.push_back(std::move(series));
  try {
    index_.emplace(std::move(key), family_.metric.size() - 1);
  } catch (...) {
    family_.metric.pop_back();  // keep the index and the series in step
    throw;
  }
}

prometheus::MetricFamily FamilyBuilder::take() {
  prometheus::MetricFamily out = std::move(family_);
  // Name, help and type stay, so one builder can serve every scrape.
  family_ = prometheus::MetricFamily{};
  family_.name = out.name;
  family_.help = out.help;
  family_.type = out.type;
  index_.clear();
  return out;
}

}  // namespace podsight::metrics
