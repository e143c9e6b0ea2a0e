// xdp collector: sums the per-CPU counters and names each interface from the family's table, so only
// interfaces attached right now have series (a released interface's series vanish at once).
#include "collectors/xdp.hpp"

#include "bpf/maps.hpp"
#include "log/log.hpp"
#include "metrics/family_builder.hpp"

#include <linux/types.h>

#include <string_view>
#include <unordered_map>

#include "xdp.h"

namespace podsight::collectors {
namespace {

std::string_view family_label(__u8 f) {
  switch (f) {
    case XDP_FAM_IPV4:
      return "ipv4";
    case XDP_FAM_IPV6:
      return "ipv6";
    default:
      return "other";
  }
}

std::string_view protocol_label(__u8 p) {
  switch (p) {
    case XDP_PROTO_TCP:
      return "tcp";
    case XDP_PROTO_UDP:
      return "udp";
    case XDP_PROTO_ICMP:
      return "icmp";
    default:
      return "other";
  }
}

}  // namespace

bool Xdp::collect(ScrapeContext& ctx, metrics::Families& out) {
  const int fd = program_.counts_fd();
  if (fd < 0) return true;  // family not loaded: podsight_program_state says why
  auto ncpus = bpf::possible_cpus();
  if (!ncpus) {
    log::error("scrape failed", {{"collector", "xdp"}, {"error", ncpus.error().message()}});
    return false;
  }
  metrics::FamilyBuilder attached(
      "podsight_xdp_attached",
      "1 if podsight's XDP program is attached to the interface in this mode; 0 if "
      "the interface is selected but not attached (mode: another program's, or none).",
      prometheus::MetricType::Gauge, {"interface", "mode"});
  std::unordered_map<std::uint32_t, std::string> names;  // attached interfaces only
  for (const auto& i : program_.interfaces()) {
    const bool up = i.state == programs::XdpInterface::State::kAttached;
    attached.add({i.name, i.mode}, up ? 1 : 0);
    if (up) names.emplace(i.ifindex, i.name);
  }
  const std::vector<std::string> labels{"interface", "family", "protocol"};
  metrics::FamilyBuilder packets(
      "podsight_xdp_packets_total",
      "Frames received on the interface, counted by XDP before the kernel's stack.",
      prometheus::MetricType::Counter, labels);
  metrics::FamilyBuilder bytes("podsight_xdp_bytes_total",
                               "Bytes of the frames received on the interface, as XDP sees them (Ethernet "
                               "header included, no FCS).",
                               prometheus::MetricType::Counter, labels);
  auto walked = bpf::for_each_percpu_sum<xdp_key, xdp_value>(
      fd, *ncpus, "xdp_counts", [&](const xdp_key& key, const xdp_value& v) {
        auto it = names.find(key.ifindex);
        if (it == names.end()) return;  // released, its entries about to be deleted
        packets.add({it->second, family_label(key.family), protocol_label(key.protocol)},
                    static_cast<double>(v.packets));
        bytes.add({it->second, family_label(key.family), protocol_label(key.protocol)},
                  static_cast<double>(v.bytes));
      });
  out.push_back(attached.take());
  if (!walked) {
    log::error("scrape failed", {{"collector", "xdp"}, {"error", walked.error().message()}});
    return false;
  }
  ctx.map_entries["xdp_counts"] = *walked;
  out.push_back(packets.take());
  out.push_back(bytes.take());
  return true;
}

}  // namespace podsight::collectors
