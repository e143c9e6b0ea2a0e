// cgroup_skb collector: sums the per-CPU packet and byte counts and labels them with the workload of
// the socket's cgroup and the direction.
#include "collectors/cgroup_skb.hpp"

#include "bpf/maps.hpp"
#include "log/log.hpp"
#include "metrics/family_builder.hpp"

#include <linux/types.h>

#include <unordered_map>

#include "cgroup_skb.h"

namespace podsight::collectors {
namespace {

std::string_view direction_name(std::uint32_t d) {
  switch (d) {
    case CGROUP_SKB_INGRESS:
      return "ingress";
    case CGROUP_SKB_EGRESS:
      return "egress";
    default:
      return {};
  }
}

}  // namespace

bool CgroupSkb::collect(ScrapeContext& ctx, metrics::Families& out) {
  const int fd = program_.counts_fd();
  if (fd < 0) return true;  // family not loaded: podsight_program_state says why
  auto ncpus = bpf::possible_cpus();
  if (!ncpus) {
    log::error("scrape failed", {{"collector", "cgroup_skb"}, {"error", ncpus.error().message()}});
    return false;
  }
  const auto labels = metadata::workload_label_names({"direction"});
  metrics::FamilyBuilder bytes("podsight_network_bytes_total",
                               "IP bytes (IP header and payload) sent (egress) or received (ingress) by the "
                               "sockets of a workload, from cgroup_skb programs at the cgroup2 root.",
                               prometheus::MetricType::Counter, labels);
  metrics::FamilyBuilder packets(
      "podsight_network_packets_total",
      "IP packets sent (egress) or received (ingress) by the sockets of a workload; a "
      "GSO/GRO packet counts as the segments it carries.",
      prometheus::MetricType::Counter, labels);
  // One resolution per cgroup per scrape, for both directions.
  std::unordered_map<std::uint64_t, metadata::Workload> seen;
  bool foreign_key = false;
  auto walked = bpf::for_each_percpu_sum<cgroup_skb_key, cgroup_skb_value>(
      fd, *ncpus, "cgroup_skb_counts", [&](const cgroup_skb_key& key, const cgroup_skb_value& v) {
        const auto dir = direction_name(key.direction);
        if (dir.empty()) {
          foreign_key = true;  // only our programs write this map: a bug, not a label value
          return;
        }
        auto it = seen.find(key.cgroup_id);
        if (it == seen.end()) it = seen.emplace(key.cgroup_id, workloads_.resolve(key.cgroup_id)).first;
        const auto& w = it->second;
        bytes.add({w.namespace_, w.pod, w.container, w.cgroup, dir}, static_cast<double>(v.bytes));
        packets.add({w.namespace_, w.pod, w.container, w.cgroup, dir}, static_cast<double>(v.packets));
      });
  if (!walked) {
    log::error("scrape failed", {{"collector", "cgroup_skb"}, {"error", walked.error().message()}});
    return false;
  }
  if (foreign_key) log::warn("cgroup_skb_counts holds a key with an unknown direction; skipped");
  ctx.map_entries["cgroup_skb_counts"] = *walked;
  out.push_back(bytes.take());
  out.push_back(packets.take());
  return true;
}

}  // namespace podsight::collectors
