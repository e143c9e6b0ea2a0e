// podsight_kubernetes_remote_* from the remote-address index and its watches.
#include "collectors/remote.hpp"

#include "metrics/family_builder.hpp"

namespace podsight::collectors {

using prometheus::MetricType;

bool RemoteEndpoints::collect(ScrapeContext&, metrics::Families& out) {
  const auto c = index_.counts();
  metrics::FamilyBuilder addresses("podsight_kubernetes_remote_addresses",
                                   "Addresses the remote labels of outbound TCP metrics can name, by kind of "
                                   "owner (pod, service, node).",
                                   MetricType::Gauge, {"remote"});
  addresses.add({"pod"}, static_cast<double>(c.pod));
  addresses.add({"service"}, static_cast<double>(c.service));
  addresses.add({"node"}, static_cast<double>(c.node));
  out.push_back(addresses.take());
  metrics::FamilyBuilder refused("podsight_kubernetes_remote_addresses_refused_total",
                                 "Addresses not indexed because programs.tcp.remote.max_addresses were known "
                                 "already; connections to them are labelled external.",
                                 MetricType::Counter, {});
  refused.add(std::vector<std::string>{}, static_cast<double>(c.refused));
  out.push_back(refused.take());

  metrics::FamilyBuilder state(
      "podsight_kubernetes_remote_sync_state",
      "Cluster-wide watches for remote labels, one series per resource and state, 1 for "
      "the current one.",
      MetricType::Gauge, {"resource", "state"});
  metrics::FamilyBuilder errors(
      "podsight_kubernetes_remote_errors_total",
      "Failed requests and rejected data of the cluster-wide watches, by resource and "
      "reason.",
      MetricType::Counter, {"resource", "reason"});
  for (const auto* w : watchers_) {
    const auto current = w->status().state;
    for (auto s : metadata::kSyncStates)
      state.add({w->resource(), metadata::to_string(s)}, s == current ? 1 : 0);
    for (std::size_t i = 0; i < static_cast<std::size_t>(metadata::WatchError::kCount); ++i) {
      const auto e = static_cast<metadata::WatchError>(i);
      errors.add({w->resource(), metadata::to_string(e)}, static_cast<double>(w->errors(e)));
    }
  }
  out.push_back(state.take());
  out.push_back(errors.take());
  return true;
}

}  // namespace podsight::collectors
