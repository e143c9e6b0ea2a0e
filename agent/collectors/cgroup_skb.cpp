// cgroup_skb collector: sums the per-CPU packet and byte counts and labels them with the workload of
// the socket's cgroup and the direction.
#include "collectors/cgroup_skb.hpp"

#include "bpf/maps.hpp"
#include "collectors/slots.hpp"
#include "log/log.hpp"
#include "metrics/family_builder.hpp"

#include <linux/types.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

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

struct SkbSlots {
  using Slot = cgroup_skb_slot;
  using Key = std::uint64_t;  // cgroup id
  using Value = cgroup_skb_value;
  static bool owned(const Slot& s) { return s.cgroup_id != 0; }
  static Key owner(const Slot& s) { return s.cgroup_id; }
  static bool same(Key a, Key b) { return a == b; }
  static bool may_own(Key cgroup_id) { return cgroup_id != 0; }
  static std::uint32_t index(Key cgroup_id, std::uint32_t mask) { return static_cast<std::uint32_t>(cgroup_id & mask); }
  static Value counts(const Slot& s) { return s.counts; }
  static void add(Value& total, const Value& more) {
    for (const std::uint32_t d : {CGROUP_SKB_INGRESS, CGROUP_SKB_EGRESS}) {
      total.dir[d].packets += more.dir[d].packets;
      total.dir[d].bytes += more.dir[d].bytes;
    }
  }
  static Slot given(Key cgroup_id) {
    Slot s{};
    s.cgroup_id = cgroup_id;
    return s;
  }
};

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
  // A cgroup's totals are its hash entry plus its slot, if it has one. The slots are read first (at
  // most 1024), so that each hash entry becomes its series as the walk reaches it.
  SlotTable<SkbSlots> slots;
  if (auto read = slots.read(program_.slots_fd(), program_.slots(), static_cast<std::size_t>(*ncpus),
                             "cgroup_skb_slots");
      !read) {
    log::error("scrape failed", {{"collector", "cgroup_skb"}, {"error", read.error().message()}});
    return false;
  }
  bytes.expect(2 * last_entries_);  // both directions of every cgroup, at most
  packets.expect(2 * last_entries_);
  auto walked = bpf::for_each_percpu_sum<cgroup_skb_key, cgroup_skb_value>(
      fd, *ncpus, "cgroup_skb_counts", [&](const cgroup_skb_key& key, const cgroup_skb_value& hashed) {
        cgroup_skb_value v = hashed;
        slots.add(key.cgroup_id, v);
        const auto w = workloads_.resolve(key.cgroup_id);
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
  // The agent writes one owner to every CPU of a slot.
  if (auto written = slots.write(); !written) {
    log::error("scrape failed", {{"collector", "cgroup_skb"}, {"error", written.error().message()}});
    return false;
  }
  last_entries_ = *walked;
  ctx.map_entries["cgroup_skb_counts"] = *walked;
  out.push_back(bytes.take());
  out.push_back(packets.take());
  return true;
}

}  // namespace podsight::collectors
