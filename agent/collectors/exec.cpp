// exec collector: sums the per-CPU exec counts and labels them with the workload of their cgroup.
#include "collectors/exec.hpp"

#include "bpf/maps.hpp"
#include "collectors/slots.hpp"
#include "log/log.hpp"
#include "metrics/family_builder.hpp"

#include <linux/types.h>

#include <cstring>
#include <functional>
#include <string_view>
#include <unordered_map>

#include "exec.h"

namespace podsight::collectors {
namespace {

struct KeyHash {
  std::size_t operator()(const exec_key& k) const {
    return std::hash<std::string_view>{}(std::string_view(reinterpret_cast<const char*>(&k), sizeof k));
  }
};
struct KeyEq {
  bool operator()(const exec_key& a, const exec_key& b) const { return exec_key_equal(&a, &b) != 0; }
};

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
  // A key's total: its hash entry plus its slot, if it has one.
  std::unordered_map<exec_key, std::uint64_t, KeyHash, KeyEq> totals;
  auto walked = bpf::for_each_percpu_sum<exec_key, std::uint64_t>(
      fd, *ncpus, "exec_counts",
      [&](const exec_key& key, const std::uint64_t& count) { totals.emplace(key, count); });
  if (!walked) {
    log::error("scrape failed", {{"collector", "exec"}, {"error", walked.error().message()}});
    return false;
  }
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
