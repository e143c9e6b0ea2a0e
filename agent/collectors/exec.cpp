// exec collector: sums the per-CPU exec counts and labels them with the workload of their cgroup.
#include "collectors/exec.hpp"

#include "bpf/maps.hpp"
#include "collectors/slots.hpp"
#include "log/log.hpp"
#include "metrics/family_builder.hpp"

#include <linux/types.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "exec.h"

namespace podsight::collectors {
namespace {

// Every key's total, read once per scrape: a vector sorted by key, not a node per key (at 100k keys an
// unordered_map was 6 MiB of nodes and buckets, and 100k allocations, per scrape). The hash holds
// each key once, so the walk adds each key once.
class Totals {
 public:
  using Entry = std::pair<exec_key, std::uint64_t>;
  using iterator = std::vector<Entry>::iterator;

  void reserve(std::size_t n) { entries_.reserve(n); }
  void add(const exec_key& key, std::uint64_t count) { entries_.emplace_back(key, count); }
  // Before the first find().
  void sort() {
    std::sort(entries_.begin(), entries_.end(), [](const Entry& a, const Entry& b) { return less(a.first, b.first); });
  }
  iterator find(const exec_key& key) {
    const auto it = std::lower_bound(entries_.begin(), entries_.end(), key,
                                     [](const Entry& e, const exec_key& k) { return less(e.first, k); });
    return it != entries_.end() && exec_key_equal(&it->first, &key) != 0 ? it : entries_.end();
  }
  iterator begin() { return entries_.begin(); }
  iterator end() { return entries_.end(); }
  [[nodiscard]] std::size_t size() const { return entries_.size(); }

 private:
  // The key's bytes in order: the cgroup id and all 16 comm bytes, as exec_key_equal compares them.
  static bool less(const exec_key& a, const exec_key& b) { return std::memcmp(&a, &b, sizeof a) < 0; }
  std::vector<Entry> entries_;
};
static_assert(sizeof(exec_key) == sizeof(__u64) + PODSIGHT_COMM_LEN, "exec_key has no padding to compare");

struct ExecSlots {
  using Slot = exec_slot;
  static bool owned(const Slot& s) { return s.owner.cgroup_id != 0; }
  static exec_key owner(const Slot& s) { return s.owner; }
  static bool may_own(const exec_key& k) { return k.cgroup_id != 0; }
  static std::uint32_t index(const exec_key& k, std::uint32_t mask) { return exec_slot_index(&k, mask); }
  static void add(std::uint64_t& total, const Slot& s) { total += s.count; }
  static Slot given(const exec_key& k) {
    Slot s{};
    s.owner = k;
    return s;
  }
};

}  // namespace

bool Exec::collect(ScrapeContext& ctx, metrics::Families& out) {
  const int fd = program_.counts_fd();
  if (fd < 0) return true;  // family not loaded: podsight_program_state says why
  auto ncpus = bpf::possible_cpus();
  if (!ncpus) {
    log::error("scrape failed", {{"collector", "exec"}, {"error", ncpus.error().message()}});
    return false;
  }
  metrics::FamilyBuilder execs("podsight_process_execs_total",
                               "Successful execve() calls, by workload and new program name (comm).",
                               prometheus::MetricType::Counter, metadata::workload_label_names({"comm"}));
  // A key's total: its hash entry plus its slot, if it has one. Room for every entry the map can
  // hold; a mapped allocation's untouched part costs nothing.
  Totals totals;
  totals.reserve(program_.counts_capacity());
  auto walked = bpf::for_each_percpu_sum<exec_key, std::uint64_t>(
      fd, *ncpus, "exec_counts",
      [&](const exec_key& key, const std::uint64_t& count) { totals.add(key, count); });
  if (!walked) {
    log::error("scrape failed", {{"collector", "exec"}, {"error", walked.error().message()}});
    return false;
  }
  totals.sort();
  // The agent writes one owner to every CPU of a slot.
  if (auto slotted = sync_slots<ExecSlots>(program_.slots_fd(), program_.slots(),
                                           static_cast<std::size_t>(*ncpus), totals, "exec_slots");
      !slotted) {
    log::error("scrape failed", {{"collector", "exec"}, {"error", slotted.error().message()}});
    return false;
  }
  execs.expect(totals.size());
  // One resolution per cgroup per scrape, however many comms it ran.
  std::unordered_map<std::uint64_t, metadata::Workload> seen;
  for (const auto& [key, count] : totals) {
    auto it = seen.find(key.cgroup_id);
    if (it == seen.end()) it = seen.emplace(key.cgroup_id, workloads_.resolve(key.cgroup_id)).first;
    const auto& w = it->second;
    std::string_view comm(key.comm, strnlen(key.comm, sizeof key.comm));
    execs.add({w.namespace_, w.pod, w.container, w.cgroup, comm}, static_cast<double>(count));
  }
  ctx.map_entries["exec_counts"] = *walked;
  out.push_back(execs.take());
  return true;
}

}  // namespace podsight::collectors
