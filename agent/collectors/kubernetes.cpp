// podsight_pod_info and podsight_kubernetes_* from the pod store and the watcher's counters.
#include "collectors/kubernetes.hpp"

#include "metrics/exposition.hpp"
#include "metrics/family_builder.hpp"

#include <algorithm>
#include <map>
#include <tuple>

namespace podsight::collectors {

using prometheus::MetricType;

std::string pod_label_name(const std::string& key) {
  std::string out = "label_";
  for (char c : key) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    out += ok ? c : '_';
  }
  return out;
}

Kubernetes::Kubernetes(const metadata::PodStore& pods, const metadata::PodWatcher* watcher,
                       metadata::SyncState state, std::vector<std::string> pod_labels)
    : pods_(pods), watcher_(watcher), fixed_state_(state) {
  all_labels_ = std::find(pod_labels.begin(), pod_labels.end(), "*") != pod_labels.end();
  if (!all_labels_) {
    std::sort(pod_labels.begin(), pod_labels.end());
    pod_labels.erase(std::unique(pod_labels.begin(), pod_labels.end()), pod_labels.end());
    label_keys_ = std::move(pod_labels);
  }
}

metadata::SyncState Kubernetes::state() const {
  return watcher_ != nullptr ? watcher_->status().state : fixed_state_;
}

bool Kubernetes::collect(ScrapeContext&, metrics::Families& out) {
  if (watcher_ == nullptr) return true;
  prometheus::MetricFamily fam;
  fam.name = "podsight_pod_info";
  fam.help = "Pods of this node as the Kubernetes API describes them; always 1. Join on namespace and pod.";
  fam.type = MetricType::Gauge;
  auto pods = pods_.snapshot();
  // Stable output order: by namespace, then name.
  std::sort(pods.begin(), pods.end(), [](const auto& a, const auto& b) {
    return std::tie(a->namespace_, a->name, a->uid) < std::tie(b->namespace_, b->name, b->uid);
  });
  for (const auto& p : pods) {
    prometheus::ClientMetric m;
    auto add = [&](std::string name, std::string_view value) {
      m.label.push_back({std::move(name), metrics::sanitize_utf8(value)});
    };
    add("namespace", p->namespace_);
    add("pod", p->name);
    add("uid", p->uid);
    add("node", p->node);
    add("pod_ip", p->pod_ip);
    add("host_network", p->host_network ? "true" : "false");
    add("qos_class", p->qos_class);
    add("created_by_kind", p->owner_kind);
    add("created_by_name", p->owner_name);
    // Labels in name order; two keys that sanitize to one name: the first key (in key order) wins.
    std::map<std::string, std::string_view> labels;
    if (all_labels_) {
      for (const auto& [k, v] : p->labels) labels.try_emplace(pod_label_name(k), v);
    } else {
      for (const auto& k : label_keys_) {
        auto it = std::lower_bound(p->labels.begin(), p->labels.end(), k,
                                   [](const auto& e, const std::string& key) { return e.first < key; });
        const std::string_view v =
            it != p->labels.end() && it->first == k ? std::string_view(it->second) : "";
        labels.try_emplace(pod_label_name(k), v);
      }
    }
    for (const auto& [name, value] : labels) add(name, value);
    m.gauge.value = 1;
    fam.metric.push_back(std::move(m));
  }
  out.push_back(metrics::Family::from(std::move(fam)));
  return true;
}

void Kubernetes::collect_self(metrics::Families& out) const {
  const auto current = state();
  metrics::FamilyBuilder state_f("podsight_kubernetes_sync_state",
                                 "Pod metadata sync with the Kubernetes API, one series per state, 1 for the "
                                 "current one (disabled, failed, connecting, synced, stale).",
                                 MetricType::Gauge, {"state"});
  for (auto s : metadata::kSyncStates) state_f.add({metadata::to_string(s)}, s == current ? 1 : 0);
  out.push_back(state_f.take());
  if (watcher_ == nullptr) return;

  auto single = [&](const char* name, const char* help, MetricType type, double v) {
    metrics::FamilyBuilder b(name, help, type, {});
    b.add(std::vector<std::string>{}, v);
    out.push_back(b.take());
  };
  single("podsight_kubernetes_pods",
         "Pods of this node known from the Kubernetes API (deleted ones excluded).", MetricType::Gauge,
         static_cast<double>(pods_.live()));
  single("podsight_kubernetes_lists_total",
         "Complete pod lists read (the first one, and re-lists after 410 Gone).", MetricType::Counter,
         static_cast<double>(watcher_->lists()));
  single("podsight_kubernetes_watch_restarts_total",
         "Pod watches that ended and were started again (server timeouts, errors, 410 Gone).",
         MetricType::Counter, static_cast<double>(watcher_->watch_restarts()));
  single("podsight_kubernetes_watch_events_total",
         "Watch events applied (added, modified, deleted, bookmarks).", MetricType::Counter,
         static_cast<double>(watcher_->events()));
  single("podsight_kubernetes_last_sync_timestamp_seconds",
         "When the pod cache was last known in sync: a list, a watch start or a watch event (Unix time).",
         MetricType::Gauge, static_cast<double>(watcher_->status().last_sync_unix));
  metrics::FamilyBuilder errors("podsight_kubernetes_errors_total",
                                "Failed Kubernetes API requests and rejected data, by reason.",
                                MetricType::Counter, {"reason"});
  for (std::size_t i = 0; i < static_cast<std::size_t>(metadata::WatchError::kCount); ++i) {
    const auto e = static_cast<metadata::WatchError>(i);
    errors.add({metadata::to_string(e)}, static_cast<double>(watcher_->errors(e)));
  }
  out.push_back(errors.take());
}

}  // namespace podsight::collectors
