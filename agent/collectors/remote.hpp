// Self-metrics of the opt-in remote labels of outbound TCP: how many pod, service and node addresses
// the index knows, how many it refused, and whether the cluster-wide pod and service watches are in
// sync (podsight_kubernetes_remote_*).
#pragma once

#include "collectors/collector.hpp"
#include "metadata/kube_watch.hpp"
#include "metadata/remote.hpp"

#include <vector>

namespace podsight::collectors {

class RemoteEndpoints final : public Collector {
 public:
  // `watchers`: the cluster-wide watches feeding `index` (none when Kubernetes metadata is off).
  RemoteEndpoints(const metadata::RemoteIndex& index, std::vector<const metadata::Watcher*> watchers)
      : index_(index), watchers_(std::move(watchers)) {}
  [[nodiscard]] std::string_view name() const override { return "remote_endpoints"; }
  bool collect(ScrapeContext& ctx, metrics::Families& out) override;

 private:
  const metadata::RemoteIndex& index_;
  std::vector<const metadata::Watcher*> watchers_;
};

}  // namespace podsight::collectors
