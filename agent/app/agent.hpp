// The running agent: program families, their collectors, the HTTP endpoints, and the start/stop order
// between them. main() only parses the command line and waits for signals.
#pragma once

#include "bpf/handles.hpp"
#include "bpf/probe.hpp"
#include "collectors/collector.hpp"
#include "collectors/kubernetes.hpp"
#include "collectors/self.hpp"
#include "config/config.hpp"
#include "http/server.hpp"
#include "metadata/cgroups.hpp"
#include "metadata/gc.hpp"
#include "metadata/kube_watch.hpp"
#include "metadata/pods.hpp"
#include "metadata/remote.hpp"
#include "metadata/workload.hpp"
#include "metrics/exposition.hpp"
#include "metrics/series_budget.hpp"
#include "programs/program.hpp"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <memory>
#include <mutex>
#include <ostream>
#include <string>
#include <vector>

namespace podsight::app {

struct Readiness {
  int http_status = 503;
  std::string body;  // JSON
};

class Agent {
 public:
  explicit Agent(config::Config cfg);
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Loads and attaches every enabled family. One failing never stops the others.
  void start_programs();
  // The Kubernetes pod watch and the garbage collector (background threads). After start_programs().
  void start_background();
  Status start_http();
  // HTTP first (no scrape sees half-torn-down maps), then the background threads, then every family.
  // Idempotent.
  void stop();

  // Collects every family and writes their encoding to `body` (see http::Response::stream).
  void scrape(metrics::Format format, http::BodySink& body);
  [[nodiscard]] Readiness readiness() const;
  // Preflight table for `podsight --check`; returns the process exit status.
  int check(std::ostream& out);

  [[nodiscard]] int http_port() const;
  [[nodiscard]] const std::vector<std::unique_ptr<programs::Family>>& families() const { return families_; }

 private:
  void enable_bpf_stats();
  void setup_kubernetes();
  [[nodiscard]] nlohmann::json kubernetes_readiness() const;
  // Every cluster-wide watch of the remote labels is synced (true when there are none).
  [[nodiscard]] bool remote_in_sync() const;

  config::Config cfg_;
  bpf::Features features_;
  std::unique_ptr<metadata::CgroupPaths> cgroups_;
  std::unique_ptr<metadata::PodStore> pods_;
  std::unique_ptr<metadata::PodWatcher> watcher_;  // null when Kubernetes metadata is off or failed
  metadata::SyncState kube_state_ = metadata::SyncState::kDisabled;  // when there is no watcher
  std::string kube_error_;  // why the Kubernetes configuration failed
  std::unique_ptr<metadata::WorkloadResolver> workloads_;
  // Remote labels of outbound TCP (programs.tcp.remote): the index and the cluster-wide pod and
  // service watches feeding it. Declared before families_, which use it until they stop.
  std::unique_ptr<metadata::RemoteIndex> remote_;
  std::vector<std::unique_ptr<metadata::Watcher>> remote_watchers_;
  std::vector<std::unique_ptr<programs::Family>> families_;
  std::vector<std::unique_ptr<collectors::Collector>> collectors_;
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* http_requests_ = nullptr;
  prometheus::Family<prometheus::Counter>* scrape_errors_ = nullptr;
  prometheus::Family<prometheus::Counter>* secret_reloads_ = nullptr;
  prometheus::Family<prometheus::Gauge>* tls_expiry_ = nullptr;
  std::unique_ptr<collectors::Self> self_;
  collectors::Kubernetes* kube_collector_ = nullptr;  // owned by collectors_
  std::unique_ptr<metrics::SeriesBudget> budget_;
  std::unique_ptr<metadata::GarbageCollector> gc_;
  std::unique_ptr<http::Server> http_;
  std::mutex scrape_mu_;
  bpf::UniqueFd stats_fd_;
  std::atomic<bool> programs_started_{false};
  std::atomic<bool> stopped_{false};
};

}  // namespace podsight::app
