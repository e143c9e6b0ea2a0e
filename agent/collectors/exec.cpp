// exec collector: sums the per-CPU exec counts and labels them with the workload of their cgroup.
#include "collectors/exec.hpp"

#include "bpf/maps.hpp"
#include "log/log.hpp"
#include "metrics/family_builder.hpp"

#include <linux/types.h>

#include <cstring>
#include <unordered_map>

#include "exec.h"

namespace podsight::collectors {

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
  // One resolution per cgroup per scrape, however many comms it ran.
  std::unordered_map<std::uint64_t, metadata::Workload> seen;
  auto walked = bpf::for_each_percpu_sum<exec_key, std::uint64_t>(
      fd, *ncpus, "exec_counts", [&](const exec_key& key, const std::uint64_t& count) {
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
  ctx.map_entries["exec_counts"] = *walked;
  out.push_back(execs.take());
  return true;
}

}  // namespace podsight::collectors
