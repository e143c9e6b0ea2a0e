// cgroup_skb collector: sums the per-CPU packet and byte counts and labels them with the workload of
// the socket's cgroup and the direction.
#include "collectors/cgroup_skb.hpp"

#include "bpf/maps.hpp"
#include "collectors/slots.hpp"
#include "log/log.hpp"
#include "metrics/family_builder.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <unordered_map>
#include <vector>

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
  // A cgroup's totals: its hash entry plus its slot, if it has one.
  std::unordered_map<std::uint64_t, cgroup_skb_value> totals;
  auto walked = bpf::for_each_percpu_sum<cgroup_skb_key, cgroup_skb_value>(
      fd, *ncpus, "cgroup_skb_counts",
      [&](const cgroup_skb_key& key, const cgroup_skb_value& v) { totals.emplace(key.cgroup_id, v); });
  if (!walked) {
    log::error("scrape failed", {{"collector", "cgroup_skb"}, {"error", walked.error().message()}});
    return false;
  }
  ctx.map_entries["cgroup_skb_counts"] = *walked;
  if (auto slotted = add_slots(*ncpus, totals); !slotted) {
    log::error("scrape failed", {{"collector", "cgroup_skb"}, {"error", slotted.error().message()}});
    return false;
  }
  bytes.expect(2 * totals.size());  // both directions of every cgroup, at most
  packets.expect(2 * totals.size());
  for (const auto& [cgroup_id, v] : totals) {
    const auto w = workloads_.resolve(cgroup_id);
    for (const std::uint32_t d : {CGROUP_SKB_INGRESS, CGROUP_SKB_EGRESS}) {
      // A cgroup's entry holds both directions; one it never used has no series.
      const cgroup_skb_counts& c = v.dir[d];
      if (c.packets == 0) continue;
      const auto dir = direction_name(d);
      bytes.add({w.namespace_, w.pod, w.container, w.cgroup, dir}, static_cast<double>(c.bytes));
      packets.add({w.namespace_, w.pod, w.container, w.cgroup, dir}, static_cast<double>(c.packets));
    }
  }
  out.push_back(bytes.take());
  out.push_back(packets.take());
  return true;
}

namespace {

struct SkbSlots {
  using Slot = cgroup_skb_slot;
  static bool owned(const Slot& s) { return s.cgroup_id != 0; }
  static std::uint64_t owner(const Slot& s) { return s.cgroup_id; }
  static bool may_own(std::uint64_t cgroup_id) { return cgroup_id != 0; }
  static std::uint32_t index(std::uint64_t cgroup_id, std::uint32_t mask) {
    return static_cast<std::uint32_t>(cgroup_id & mask);
  }
  static void add(cgroup_skb_value& total, const Slot& s) {
    for (const std::uint32_t d : {CGROUP_SKB_INGRESS, CGROUP_SKB_EGRESS}) {
      total.dir[d].packets += s.counts.dir[d].packets;
      total.dir[d].bytes += s.counts.dir[d].bytes;
    }
  }
  static Slot given(std::uint64_t cgroup_id) {
    Slot s{};
    s.cgroup_id = cgroup_id;
    return s;
  }
};

}  // namespace

Status CgroupSkb::add_slots(int ncpus, std::unordered_map<std::uint64_t, cgroup_skb_value>& totals) {
  // The agent writes one owner to every CPU of a slot.
  return sync_slots<SkbSlots>(program_.slots_fd(), program_.slots(), static_cast<std::size_t>(ncpus), totals,
                              "cgroup_skb_slots");
}

}  // namespace podsight::collectors
