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
  }
  return {};
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
  auto walked = bpf::for_each_percpu_sum<cgroup_skb_key, cgroup_skb_value>(
      fd, *ncpus, "cgroup_skb_counts", [&](const cgroup_skb_key& key, const cgroup_skb_value& v) {
        auto it = seen.find(key.cgroup_id);
        if (it == seen.end()) it = seen.emplace(key.cgroup_id, workloads_.resolve(key.cgroup_id)).first;
        const auto& w = it->second;
        for (const std::uint32_t d : {CGROUP_SKB_INGRESS, CGROUP_SKB_EGRESS}) {
          // A cgroup's entry holds both directions; one it never used has no series.
          const cgroup_skb_counts& c = v.dir[d];
          if (c.packets == 0) continue;
          const auto dir = direction_name(d);
          bytes.add({w.namespace_, w.pod, w.container, w.cgroup, dir}, static_cast<double>(c.bytes));
          packets.add({w.namespace_, w.pod, w.container, w.cgroup, dir}, static_cast<double>(c.packets));
        }
      });
  if (!walked) {
    log::error("scrape failed", {{"collector", "cgroup_skb"}, {"error", walked.error().message()}});
    return false;
  }
  ctx.map_entries["cgroup_skb_counts"] = *walked;
  out.push_back(bytes.take());
  out.push_back(packets.take());
  return true;
}

}  // namespace podsight::collectors
