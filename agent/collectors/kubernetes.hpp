// Kubernetes metadata as metrics: podsight_pod_info (one series per pod of the node, the join metric,
// with allowlisted pod labels copied on as label_<name>, the kube-state-metrics convention), and the
// podsight_kubernetes_* self-metrics that say whether pod labels are current.
#pragma once

#include "collectors/collector.hpp"
#include "metadata/kube_watch.hpp"
#include "metadata/pods.hpp"

#include <string>
#include <vector>

namespace podsight::collectors {

// "label_" + the key with every character outside [a-zA-Z0-9_] replaced by '_'.
std::string pod_label_name(const std::string& key);

class Kubernetes final : public Collector {
 public:
  // `watcher` null: metadata is off or its configuration failed (`state` says which).
  Kubernetes(const metadata::PodStore& pods, const metadata::PodWatcher* watcher, metadata::SyncState state,
             std::vector<std::string> pod_labels);
  [[nodiscard]] std::string_view name() const override { return "kubernetes"; }
  // podsight_pod_info.
  bool collect(ScrapeContext& ctx, metrics::Families& out) override;
  // podsight_kubernetes_*: not subject to the series budget (a fixed, small set).
  void collect_self(metrics::Families& out) const;

  [[nodiscard]] metadata::SyncState state() const;

 private:
  const metadata::PodStore& pods_;
  const metadata::PodWatcher* watcher_;
  metadata::SyncState fixed_state_;
  std::vector<std::string> label_keys_;  // explicit allowlist, sorted; empty with "*"
  bool all_labels_ = false;
};

}  // namespace podsight::collectors
