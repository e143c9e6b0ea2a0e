// exec collector: sums the per-CPU exec counts and labels them with the workload of their cgroup.
#include "collectors/exec.hpp"

#include "bpf/maps.hpp"
#include "collectors/slots.hpp"
#include "log/log.hpp"
#include "metrics/family_builder.hpp"

#include <linux/types.h>

#include <cstdint>
#include <cstring>
#include <string_view>
#include <unordered_map>

#include "exec.h"

namespace podsight::collectors {
namespace {

struct ExecSlots {
  using Slot = exec_slot;
  using Key = exec_key;
  using Value = std::uint64_t;
  static bool owned(const Slot& s) { return s.owner.cgroup_id != 0; }
  static Key owner(const Slot& s) { return s.owner; }
  static bool same(const Key& a, const Key& b) { return exec_key_equal(&a, &b) != 0; }
  static bool may_own(const Key& k) { return k.cgroup_id != 0; }
  static std::uint32_t index(const Key& k, std::uint32_t mask) { return exec_slot_index(&k, mask); }
  static Value counts(const Slot& s) { return s.count; }
  static void add(Value& total, Value more) { total += more; }
  static Slot given(const Key& k) {
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
  // A key's total is its hash entry plus its slot, if it has one. The slots are read first (at most
  // 1024), so that each hash entry becomes its series as the walk reaches it.
  SlotTable<ExecSlots> slots;
  if (auto read = slots.read(program_.slots_fd(), program_.slots(), static_cast<std::size_t>(*ncpus), "exec_slots");
      !read) {
    log::error("scrape failed", {{"collector", "exec"}, {"error", read.error().message()}});
    return false;
  }
  // As many series as the last scrape had, so that a big family's blocks are allocated once.
  execs.expect(last_entries_);
  // One resolution per cgroup per scrape, however many comms it ran.
  std::unordered_map<std::uint64_t, metadata::Workload> seen;
  auto walked = bpf::for_each_percpu_sum<exec_key, std::uint64_t>(
      fd, *ncpus, "exec_counts", [&](const exec_key& key, const std::uint64_t& hashed) {
        std::uint64_t count = hashed;
        slots.add(key, count);
        auto it = seen.find(key.cgroup_id);
        if (it == seen.end()) it = seen.emplace(key.cgroup_id, workloads_.resolve(key.cgroup_id)).first;
        const auto& w = it->second;
        std::string_view comm(key.comm, strnlen(key.comm, sizeof key.comm));
        execs.add({w.namespace_, w.pod, w.container, w.cgroup, comm}, static_cast<double>(count));
      });
  if (!walked) {
    log::error("scrape failed", {{"collector", "exec"}, {"error", walked.error().message()}});
    return false;
  }
  // The agent writes one owner to every CPU of a slot.
  if (auto written = slots.write(); !written) {
    log::error("scrape failed", {{"collector", "exec"}, {"error", written.error().message()}});
    return false;
  }
  last_entries_ = *walked;
  ctx.map_entries["exec_counts"] = *walked;
  out.push_back(execs.take());
  return true;
}

}  // namespace podsight::collectors
