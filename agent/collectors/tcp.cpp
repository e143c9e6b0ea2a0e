// tcp collector: walks the open connections (one socket-storage iterator run that also folds their
// bytes; or the tcp_conns map, then the per-namespace iterator over the namespaces that hold them),
// then reads the per-CPU counters. Reading the counters last is what makes bytes of open connections
// current.
#include "collectors/tcp.hpp"

#include "bpf/maps.hpp"
#include "log/log.hpp"
#include "metrics/family_builder.hpp"

#include <linux/types.h>

#include <cstring>
#include <map>
#include <set>
#include <unordered_map>
#include <utility>

#include "tcp.h"

namespace podsight::collectors {
namespace {

const char* direction_name(std::uint8_t d) {
  switch (d) {
    case TCP_DIR_OUTBOUND:
      return "outbound";
    case TCP_DIR_INBOUND:
      return "inbound";
    default:
      return "unknown";
  }
}

}  // namespace

const metadata::Workload& Tcp::workload(std::uint64_t cgroup_id) {
  auto it = seen_.find(cgroup_id);
  if (it == seen_.end()) it = seen_.emplace(cgroup_id, workloads_.resolve(cgroup_id)).first;
  return it->second;
}

bool Tcp::collect(ScrapeContext& ctx, metrics::Families& out) {
  seen_.clear();
  const int conns_fd = program_.conns_fd();
  const int stats_fd = program_.stats_fd();
  if (conns_fd < 0 || stats_fd < 0) return true;  // family not loaded: podsight_program_state says why
  auto ncpus = bpf::possible_cpus();
  if (!ncpus) {
    log::error("scrape failed", {{"collector", "tcp"}, {"error", ncpus.error().message()}});
    return false;
  }
  bool ok = true;

  using Slot = std::pair<std::uint64_t, std::uint8_t>;  // (cgroup id, direction)
  std::map<Slot, std::uint64_t> active;
  std::map<Remote, std::uint64_t> active_remote;  // outbound, with remote labels on
  const auto method = program_.open_connections();
  if (method == programs::OpenConnections::kSkStorage) {
    auto walked = program_.walk_open_sockets([&](const tcp_open_record& r) {
      ++active[{r.cgroup_id, r.direction}];
      if (r.direction == TCP_DIR_OUTBOUND) ++active_remote[{r.cgroup_id, r.remote}];
    });
    if (walked) {
      ctx.map_entries["tcp_conns"] = *walked;
    } else {
      log::error("scrape failed", {{"collector", "tcp"}, {"error", walked.error().message()}});
      ok = false;
    }
  } else {
    std::set<std::uint32_t> netns;
    auto walked = bpf::for_each_entry(
        conns_fd,
        [&](const void* k, const void* v) {
          tcp_conn_key key;
          tcp_conn conn;
          std::memcpy(&key, k, sizeof key);
          std::memcpy(&conn, v, sizeof conn);
          ++active[{conn.cgroup_id, conn.direction}];
          if (conn.direction == TCP_DIR_OUTBOUND) ++active_remote[{conn.cgroup_id, conn.remote}];
          netns.insert(key.netns);
        },
        "tcp_conns");
    if (walked) {
      ctx.map_entries["tcp_conns"] = *walked;
    } else {
      log::error("scrape failed", {{"collector", "tcp"}, {"error", walked.error().message()}});
      ok = false;
    }
    if (auto st = program_.fold_open_connections(netns); !st) {
      log::warn("bytes of some open connections not updated",
                {{"collector", "tcp"}, {"error", st.error().message()}});
      ok = false;
    }
  }

  const auto labels = metadata::workload_label_names({"direction"});
  auto family = [&](const char* name, const char* help,
                    prometheus::MetricType type = prometheus::MetricType::Counter) {
    return metrics::FamilyBuilder(name, help, type, labels);
  };
  auto opened = family("podsight_tcp_connections_opened_total",
                       "TCP connections established, by the workload owning the socket and direction.");
  auto closed = family("podsight_tcp_connections_closed_total",
                       "Established TCP connections that closed, by workload and direction.");
  auto open_now = family("podsight_tcp_connections_active",
                         "TCP connections established and not yet closed, by workload and direction.",
                         prometheus::MetricType::Gauge);
  auto sent = family("podsight_tcp_sent_bytes_total",
                     "TCP payload bytes sent and acknowledged by the peer, open connections included.");
  auto received = family("podsight_tcp_received_bytes_total",
                         "TCP payload bytes received in order, open connections included.");
  auto retransmits =
      family("podsight_tcp_retransmits_total", "TCP segments retransmitted, by workload and direction.");
  // Always outbound: no direction label.
  metrics::FamilyBuilder failures(
      "podsight_tcp_connect_failures_total",
      "Outbound TCP connections that never became established (refused, timed out, aborted).",
      prometheus::MetricType::Counter, metadata::workload_label_names());

  auto walked_stats = bpf::for_each_percpu_sum<tcp_stats_key, tcp_stats>(
      stats_fd, *ncpus, "tcp_stats", [&](const tcp_stats_key& key, const tcp_stats& s) {
        const auto& w = workload(key.cgroup_id);
        const char* dir = direction_name(key.direction);
        const std::vector<std::string> v{w.namespace_, w.pod, w.container, w.cgroup, dir};
        opened.add(v, static_cast<double>(s.opened));
        closed.add(v, static_cast<double>(s.closed));
        sent.add(v, static_cast<double>(s.sent_bytes));
        received.add(v, static_cast<double>(s.received_bytes));
        retransmits.add(v, static_cast<double>(s.retransmits));
        if (s.connect_failures > 0 || key.direction == TCP_DIR_OUTBOUND) {
          failures.add({w.namespace_, w.pod, w.container, w.cgroup}, static_cast<double>(s.connect_failures));
        }
        // A workload that had connections shows 0 active rather than no series once they close.
        auto a = active.find({key.cgroup_id, key.direction});
        open_now.add(v, a == active.end() ? 0.0 : static_cast<double>(a->second));
        if (a != active.end()) active.erase(a);
      });
  if (walked_stats) {
    ctx.map_entries["tcp_stats"] = *walked_stats;
  } else {
    log::error("scrape failed", {{"collector", "tcp"}, {"error", walked_stats.error().message()}});
    ok = false;
  }
  for (const auto& [slot, n] : active) {
    const auto& w = workload(slot.first);
    open_now.add({w.namespace_, w.pod, w.container, w.cgroup, direction_name(slot.second)},
                 static_cast<double>(n));
  }

  // Which walk is in use, so that a dashboard can tell why bytes of open connections lag or cost.
  metrics::FamilyBuilder methods(
      "podsight_tcp_open_connections_method",
      "How the tcp family reads open connections at scrape time: 1 for the method in use.",
      prometheus::MetricType::Gauge, {"method"});
  for (auto m : {programs::OpenConnections::kSkStorage, programs::OpenConnections::kIterTcp,
                 programs::OpenConnections::kNone}) {
    methods.add({std::string(programs::to_string(m))}, m == method ? 1.0 : 0.0);
  }

  for (auto* b : {&opened, &closed, &failures, &open_now, &sent, &received, &retransmits, &methods})
    out.push_back(b->take());
  if (remote_ != nullptr && !collect_remote(ctx, active_remote, out)) ok = false;
  return ok;
}

bool Tcp::collect_remote(ScrapeContext& ctx, const std::map<Remote, std::uint64_t>& active,
                         metrics::Families& out) {
  const int fd = program_.remote_stats_fd();
  if (fd < 0) return true;
  // Endpoints gone for longer than the grace period: their labels go, and so do their counters.
  for (auto id : remote_->forget_retired(grace_, metadata::RemoteIndex::Clock::now())) forgotten_.insert(id);

  const auto labels =
      metadata::workload_label_names({"remote", "remote_namespace", "remote_pod", "remote_service"});
  auto family = [&](const char* name, const char* help,
                    prometheus::MetricType type = prometheus::MetricType::Counter) {
    return metrics::FamilyBuilder(name, help, type, labels);
  };
  auto opened = family("podsight_tcp_remote_connections_opened_total",
                       "Outbound TCP connections established, by workload and remote endpoint.");
  auto failures =
      family("podsight_tcp_remote_connect_failures_total",
             "Outbound TCP connections that never became established, by workload and remote endpoint.");
  auto open_now =
      family("podsight_tcp_remote_connections_active",
             "Outbound TCP connections established and not yet closed, by workload and remote endpoint.",
             prometheus::MetricType::Gauge);
  auto sent = family("podsight_tcp_remote_sent_bytes_total",
                     "TCP payload bytes sent on outbound connections and acknowledged, by workload and "
                     "remote endpoint.");
  auto received =
      family("podsight_tcp_remote_received_bytes_total",
             "TCP payload bytes received in order on outbound connections, by workload and remote "
             "endpoint.");
  auto retransmits =
      family("podsight_tcp_remote_retransmits_total",
             "TCP segments retransmitted on outbound connections, by workload and remote endpoint.");

  // Label values of an endpoint id; nullopt once the index forgot it.
  auto remote_labels = [&](std::uint32_t id) -> std::optional<metadata::RemoteLabels> {
    if (id == metadata::RemoteIndex::kExternalId) return metadata::RemoteLabels{};
    if (id == metadata::RemoteIndex::kLocalId)
      return metadata::RemoteLabels{metadata::RemoteKind::kLocal, {}, {}, {}};
    return remote_->labels(id);
  };
  auto values = [&](const Remote& r, const metadata::RemoteLabels& l) {
    const auto& w = workload(r.first);
    return std::vector<std::string>{
        w.namespace_, w.pod, w.container, w.cgroup, std::string(metadata::to_string(l.kind)),
        l.namespace_, l.pod, l.service};
  };
  std::vector<tcp_remote_key> gone;
  std::map<Remote, std::uint64_t> unseen = active;
  auto walked = bpf::for_each_entry(
      fd,
      [&](const void* k, const void* v) {
        tcp_remote_key key;
        tcp_remote_stats s;
        std::memcpy(&key, k, sizeof key);
        std::memcpy(&s, v, sizeof s);
        auto l = remote_labels(key.remote);
        if (!l) {
          if (forgotten_.count(key.remote) != 0) gone.push_back(key);
          return;
        }
        const Remote r{key.cgroup_id, key.remote};
        const auto vals = values(r, *l);
        opened.add(vals, static_cast<double>(s.opened));
        failures.add(vals, static_cast<double>(s.connect_failures));
        sent.add(vals, static_cast<double>(s.sent_bytes));
        received.add(vals, static_cast<double>(s.received_bytes));
        retransmits.add(vals, static_cast<double>(s.retransmits));
        auto a = unseen.find(r);
        open_now.add(vals, a == unseen.end() ? 0.0 : static_cast<double>(a->second));
        if (a != unseen.end()) unseen.erase(a);
      },
      "tcp_remote_stats");
  bool ok = true;
  if (walked) {
    ctx.map_entries["tcp_remote_stats"] = *walked;
  } else {
    log::error("scrape failed", {{"collector", "tcp"}, {"error", walked.error().message()}});
    ok = false;
  }
  // Open connections whose counter slot could not be made (map full) still show as active.
  for (const auto& [r, n] : unseen) {
    if (auto l = remote_labels(r.second)) open_now.add(values(r, *l), static_cast<double>(n));
  }
  for (const auto& key : gone) bpf_map_delete_elem(fd, &key);
  // The ids are gone for good once a complete walk found no counter left holding them.
  if (walked && gone.empty()) forgotten_.clear();
  for (auto* b : {&opened, &failures, &open_now, &sent, &received, &retransmits}) out.push_back(b->take());
  return ok;
}

}  // namespace podsight::collectors
