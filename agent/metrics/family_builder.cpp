// Builds one metric family per scrape: sanitized label values, one series per distinct label set.
#include "metrics/family_builder.hpp"

#include "metrics/exposition.hpp"

#include <algorithm>
#include <cstring>
#include <functional>
#include <limits>
#include <stdexcept>
#include <utility>

namespace podsight::metrics {
namespace {

[[noreturn]] void throw_arity(const std::string& family, std::size_t expected, std::size_t got) {
  throw std::invalid_argument("FamilyBuilder(" + family + "): " + std::to_string(got) + " label values for " +
                              std::to_string(expected) + " label names");
}

constexpr std::size_t kMinSlots = 16;
// How far past the blocks kept the label buffer is written ahead of need, at most.
constexpr std::size_t kMaxZeroedAhead = std::size_t{64} << 10;

// 32 bits of the block's hash: where its slot chain starts and, kept in the slot, a tag that spares
// most comparisons of whole blocks and lets the index grow without hashing any block again.
std::uint32_t hash_of(std::string_view block) {
  return static_cast<std::uint32_t>(std::hash<std::string_view>{}(block));
}

std::uint32_t hash_in(std::uint64_t slot) { return static_cast<std::uint32_t>(slot >> 32); }

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
  add_values(label_values, value);
}

void FamilyBuilder::add(const std::vector<std::string>& label_values, double value) {
  if (label_values.size() != label_names_.size()) {
    throw_arity(family_.name, label_names_.size(), label_values.size());
  }
  add_values(label_values, value);
}

template <typename Values>
void FamilyBuilder::add_values(const Values& values, double value) {
  // The block is written after the blocks already kept; if it turns out to be one of them, it is
  // simply not kept. Label values are sanitized and escaped in one pass (write_label_value), and
  // since that is one-to-one, equal blocks are exactly equal sanitized label sets.
  std::string& labels = family_.labels;
  std::size_t room = 2;
  std::size_t i = 0;
  for (const auto& v : values)
    room += label_names_[i++].size() + max_label_value_size(std::string_view(v).size()) + 4;
  if (labels.size() - used_ < room) {
    // The capacity grows geometrically, but only what the next blocks need is written (resize
    // zero-fills): the untouched rest of a big family's buffer, mapped by the allocator, never
    // becomes resident. Growing the size along with the capacity kept up to twice the label
    // blocks resident through the encoding (16 MiB for the 9 MiB of 100k exec series).
    const std::size_t want = used_ + room + std::min(used_, kMaxZeroedAhead);
    if (labels.capacity() < want) {
      std::size_t capacity = std::max(2 * labels.capacity(), want);
      // Room for the series still expected at 1.5 times the average block so far: a big family's
      // buffer is allocated once instead of doubled and copied, which held the old and the new copy
      // at once.
      const std::size_t kept = family_.series.size();
      if (expected_ > kept && kept > 0) {
        const std::size_t average = used_ / kept + 1;
        capacity = std::max(capacity, want + (expected_ - kept) * (average + average / 2));
      }
      labels.reserve(capacity);
    }
    labels.resize(want);
  }

  char* const start = labels.data() + used_;
  char* d = start;
  if (!label_names_.empty()) {
    *d++ = '{';
    i = 0;
    for (const auto& v : values) {
      if (i != 0) *d++ = ',';
      const std::string& n = label_names_[i++];
      std::memcpy(d, n.data(), n.size());
      d += n.size();
      *d++ = '=';
      *d++ = '"';
      d = write_label_value(d, v);
      *d++ = '"';
    }
    *d++ = '}';
  }
  const std::string_view block(start, static_cast<std::size_t>(d - start));
  const std::uint32_t hash = hash_of(block);
  if (const std::int64_t found = find(block, hash); found >= 0) {
    family_.series[static_cast<std::size_t>(found)].value += value;
    return;
  }
  if (used_ + block.size() > std::numeric_limits<std::uint32_t>::max() ||
      family_.series.size() >= std::numeric_limits<std::uint32_t>::max() - 1) {
    throw std::length_error("FamilyBuilder(" + family_.name + "): too many series");
  }
  const auto index = static_cast<std::uint32_t>(family_.series.size());
  family_.series.push_back(
      {static_cast<std::uint32_t>(used_), static_cast<std::uint32_t>(block.size()), value});
  used_ += block.size();
  if (2 * family_.series.size() > slots_.size()) grow_slots(family_.series.size());
  insert_slot((static_cast<std::uint64_t>(hash) << 32) | (index + 1));
}

void FamilyBuilder::expect(std::size_t series) {
  expected_ = series;
  family_.series.reserve(series + 1);  // and the series budget's overflow series, if it adds one
  if (2 * series > slots_.size()) grow_slots(series);
}

std::int64_t FamilyBuilder::find(std::string_view block, std::uint32_t hash) const {
  if (slots_.empty()) return -1;
  const std::size_t mask = slots_.size() - 1;
  for (std::size_t at = hash & mask;; at = (at + 1) & mask) {
    const std::uint64_t slot = slots_[at];
    if (slot == 0) return -1;
    if (hash_in(slot) != hash) continue;
    const auto index = static_cast<std::uint32_t>(slot) - 1;
    if (family_.label_block(family_.series[index]) == block) return index;
  }
}

void FamilyBuilder::insert_slot(std::uint64_t slot) {
  const std::size_t mask = slots_.size() - 1;
  std::size_t at = hash_in(slot) & mask;
  while (slots_[at] != 0) at = (at + 1) & mask;
  slots_[at] = slot;
}

void FamilyBuilder::grow_slots(std::size_t series) {
  // At most half full, so probes stay short; a power of two, so the mask picks the start.
  std::size_t n = std::max(kMinSlots, slots_.size());
  while (n < 2 * std::max(series, family_.series.size())) n *= 2;
  std::vector<std::uint64_t> old(n, 0);
  old.swap(slots_);
  for (const std::uint64_t slot : old) {
    if (slot != 0) insert_slot(slot);
  }
}

Family FamilyBuilder::take() {
  family_.labels.resize(used_);
  Family out = std::move(family_);
  // Name, help and type stay, so one builder can serve every scrape.
  family_ = Family{};
  family_.name = out.name;
  family_.help = out.help;
  family_.type = out.type;
  used_ = 0;
  expected_ = 0;
  slots_.clear();
  slots_.shrink_to_fit();
  return out;
}

std::vector<prometheus::ClientMetric::Label> parse_label_block(std::string_view block) {
  std::vector<prometheus::ClientMetric::Label> labels;
  if (block.empty()) return labels;
  const auto bad = [&block]() {
    return std::invalid_argument("not a label block: " + std::string(block.substr(0, 64)));
  };
  if (block.front() != '{' || block.back() != '}') throw bad();
  std::size_t i = 1;
  while (i < block.size() - 1) {
    const std::size_t eq = block.find('=', i);
    if (eq == std::string_view::npos || eq + 1 >= block.size() || block[eq + 1] != '"') throw bad();
    prometheus::ClientMetric::Label l;
    l.name = std::string(block.substr(i, eq - i));
    for (i = eq + 2; i < block.size() && block[i] != '"'; ++i) {
      if (block[i] != '\\') {
        l.value.push_back(block[i]);
        continue;
      }
      if (++i >= block.size()) throw bad();
      l.value.push_back(block[i] == 'n' ? '\n' : block[i]);  // the escapes: \\, \", \n
    }
    if (i >= block.size()) throw bad();
    labels.push_back(std::move(l));
    ++i;  // closing quote
    if (block[i] == ',') ++i;
  }
  return labels;
}

}  // namespace podsight::metrics
