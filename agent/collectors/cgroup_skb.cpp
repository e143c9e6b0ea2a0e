// cgroup_skb collector: sums the per-CPU packet and byte counts and labels them with the workload of
// the socket's cgroup and the direction.
#include "collectors/cgroup_skb.hpp"

#include "bpf/maps.hpp"
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

Status CgroupSkb::add_slots(int ncpus, std::unordered_map<std::uint64_t, cgroup_skb_value>& totals) {
  const int fd = program_.slots_fd();
  const std::uint32_t nslots = program_.slots();
  if (fd < 0 || nslots == 0) return {};
  const std::uint32_t mask = nslots - 1;
  std::vector<cgroup_skb_slot> cpus(static_cast<std::size_t>(ncpus));
  std::vector<std::uint32_t> to_free;
  std::vector<bool> free(nslots, false);
  // One batch lookup for every slot (key-by-key where the kernel has no batch ops for arrays).
  auto read = bpf::for_each_entry(
      fd,
      [&](const void* key, const void* value) {
        std::uint32_t idx = 0;
        std::memcpy(&idx, key, sizeof idx);
        if (idx >= nslots) return;
        std::memcpy(cpus.data(), value, cpus.size() * sizeof(cgroup_skb_slot));
        bool owned = false;
        for (const auto& s : cpus) {
          if (s.cgroup_id == 0) continue;
          owned = true;
          // The agent writes one owner to every CPU; a slot whose owner left the hash (garbage
          // collection of a removed cgroup) is freed, and its counts go with that cgroup's series.
          auto it = totals.find(s.cgroup_id);
          if (it == totals.end()) {
            if (to_free.empty() || to_free.back() != idx) to_free.push_back(idx);
            continue;
          }
          for (const std::uint32_t d : {CGROUP_SKB_INGRESS, CGROUP_SKB_EGRESS}) {
            it->second.dir[d].packets += s.counts.dir[d].packets;
            it->second.dir[d].bytes += s.counts.dir[d].bytes;
          }
        }
        free[idx] = !owned;
      },
      "cgroup_skb_slots");
  if (!read) return read.error();
  // A slot is given only if it was free when read above, so one freed now is given at the next scrape
  // at the earliest: a program that read the old owner just before the free has long finished, and
  // whatever it added is overwritten by the zeroed counts the new owner starts from.
  std::fill(cpus.begin(), cpus.end(), cgroup_skb_slot{});
  for (const std::uint32_t idx : to_free) {
    if (bpf_map_update_elem(fd, &idx, cpus.data(), BPF_EXIST) != 0) {
      return errno_error("free slot", "cgroup_skb_slots");
    }
  }
  for (const auto& [cgroup_id, v] : totals) {
    const auto idx = static_cast<std::uint32_t>(cgroup_id & mask);
    if (cgroup_id == 0 || !free[idx]) continue;
    for (auto& s : cpus) s.cgroup_id = cgroup_id;
    if (bpf_map_update_elem(fd, &idx, cpus.data(), BPF_EXIST) != 0) {
      return errno_error("give slot", "cgroup_skb_slots");
    }
    free[idx] = false;
  }
  return {};
}

}  // namespace podsight::collectors
