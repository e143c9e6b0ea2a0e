// Keeps a local copy of Kubernetes objects in step with the API: list them (paged), then watch from the
// list's resourceVersion with bookmarks; re-list when the API says 410 Gone; exponential backoff with
// jitter on errors. One background thread, woken and joined by stop() at once. What is listed and where
// it goes is a WatchTarget: this node's pods into the PodStore (PodWatcher), or the cluster's pods and
// services into the remote-address index.
#pragma once

#include "metadata/kube_config.hpp"
#include "metadata/kube_http.hpp"
#include "metadata/pod_json.hpp"
#include "metadata/pods.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

namespace podsight::metadata {

struct WatchOptions {
  std::string node_name;
  LabelAllowlist labels;
  std::size_t page_size = 500;
  std::size_t max_response_bytes = 32u << 20;        // one list page, or one watch event
  std::chrono::milliseconds request_timeout{30000};  // connecting, and a whole list request
  // The server ends each watch after a random timeoutSeconds in this range (as client-go does), so
  // that watches of a whole DaemonSet do not all restart at once.
  std::chrono::seconds watch_timeout_min{300};
  std::chrono::seconds watch_timeout_max{600};
  std::chrono::milliseconds backoff_initial{500};
  std::chrono::milliseconds backoff_max{30000};
  DecodeLimits limits;
};

// disabled: not configured; failed: the configuration cannot work (no credentials, bad kubeconfig);
// connecting: no list has completed yet; synced: the cache follows the API; stale: it did, but the
// last request failed and we are retrying (labels are served from what we know).
enum class SyncState { kDisabled, kFailed, kConnecting, kSynced, kStale };
std::string_view to_string(SyncState s);
inline constexpr std::array<SyncState, 5> kSyncStates = {
    SyncState::kDisabled, SyncState::kFailed, SyncState::kConnecting, SyncState::kSynced, SyncState::kStale};

// Why a request failed, for podsight_kubernetes_errors_total{reason}.
enum class WatchError {
  kCredentials,  // token or CA file unreadable
  kResolve,
  kConnect,
  kTls,
  kTimeout,
  kProtocol,
  kHttp,         // a status other than 200 and 410
  kDecode,       // malformed JSON, wrong types, unknown event type
  kTooLarge,     // a list page or an event over max_response_bytes
  kTooManyPods,  // the store is full (kubernetes.max_pods)
  kCount,
};
std::string_view to_string(WatchError e);

// One list page as a WatchTarget took it.
struct ListPage {
  std::string resource_version;
  std::string continue_token;
  std::size_t skipped = 0;  // items that were not valid objects
  std::string first_skip_reason;
};

// One watch event as a WatchTarget applied it.
struct AppliedEvent {
  EventType type = EventType::kError;
  std::string resource_version;  // all but kError
  int code = 0;                  // kError: the metav1.Status (410 when the resource version expired)
  std::string reason;
  std::string message;
  std::string refused;  // non-empty: the object did not fit (its name, for the log)
};

// What a Watcher lists and watches, and where the objects go. Called from the watcher's thread only.
class WatchTarget {
 public:
  virtual ~WatchTarget() = default;
  [[nodiscard]] virtual std::string resource() const = 0;  // "pods", for messages
  // The collection's path and query, without the list or watch parameters: "/api/v1/services",
  // "/api/v1/pods?fieldSelector=...".
  [[nodiscard]] virtual std::string path() const = 0;
  // Decodes one list page and keeps its objects until commit_list(); an error rejects the page.
  virtual Result<ListPage> add_page(std::string_view body) = 0;
  [[nodiscard]] virtual std::size_t listed() const = 0;  // objects kept from the pages so far
  virtual void discard_list() = 0;
  // The list is complete: its objects replace what was known. Returns how many did not fit.
  virtual std::size_t commit_list() = 0;
  // Decodes and applies one line of a watch stream.
  virtual Result<AppliedEvent> apply_event(std::string_view line) = 0;
};

class Watcher {
 public:
  Watcher(ApiServer api, WatchOptions options, std::unique_ptr<WatchTarget> target);
  virtual ~Watcher();
  Watcher(const Watcher&) = delete;
  Watcher& operator=(const Watcher&) = delete;

  void start();
  void stop();  // wakes the thread wherever it waits and joins it; idempotent

  // One full list without touching the target's store (for `podsight --check`): the object count.
  Result<std::size_t> list_once();

  struct Status {
    SyncState state = SyncState::kConnecting;
    std::string error;                // the last failure, cleared by the next success
    std::int64_t last_sync_unix = 0;  // the last list, watch start or watch event (Unix time)
  };
  [[nodiscard]] Status status() const;
  [[nodiscard]] const ApiServer& api() const { return api_; }
  [[nodiscard]] const WatchOptions& options() const { return options_; }

  [[nodiscard]] std::uint64_t lists() const { return lists_.load(); }
  [[nodiscard]] std::uint64_t relists() const { return relists_.load(); }  // after 410 Gone
  [[nodiscard]] std::uint64_t watch_restarts() const { return watch_restarts_.load(); }
  [[nodiscard]] std::uint64_t events() const { return events_.load(); }
  [[nodiscard]] std::uint64_t errors(WatchError e) const {
    return errors_[static_cast<std::size_t>(e)].load();
  }
  [[nodiscard]] std::string resource() const { return target_->resource(); }

 private:
  struct Attempt {
    bool ok = false;
    bool gone = false;  // 410: the resource version is too old
    WatchError error = WatchError::kProtocol;
    std::string message;
  };
  struct Listed {
    Attempt attempt;
    std::string resource_version;
    std::size_t skipped = 0;
  };

  void run();
  Listed list_all(const std::string& resource_version);
  Attempt watch(std::string& resource_version, std::uint64_t& events_seen);
  void failed(const Attempt& a);
  void set_synced();
  // The target's path with the separator before the next query parameter ('?' or '&').
  [[nodiscard]] std::string query_path() const;
  static Attempt from_http(const HttpOutcome& o, const std::string& what);

  ApiServer api_;
  WatchOptions options_;
  std::unique_ptr<WatchTarget> target_;
  Canceller cancel_;
  std::thread thread_;
  mutable std::mutex mu_;
  Status status_;
  std::atomic<std::uint64_t> lists_{0};
  std::atomic<std::uint64_t> relists_{0};
  std::atomic<std::uint64_t> watch_restarts_{0};
  std::atomic<std::uint64_t> events_{0};
  std::array<std::atomic<std::uint64_t>, static_cast<std::size_t>(WatchError::kCount)> errors_{};
};

// This node's pods (fieldSelector spec.nodeName) into a PodStore.
class NodePods final : public WatchTarget {
 public:
  NodePods(PodStore& store, std::string node_name, LabelAllowlist labels, DecodeLimits limits);
  [[nodiscard]] std::string resource() const override { return "pods"; }
  [[nodiscard]] std::string path() const override;
  Result<ListPage> add_page(std::string_view body) override;
  [[nodiscard]] std::size_t listed() const override { return pods_.size(); }
  void discard_list() override { pods_.clear(); }
  std::size_t commit_list() override;
  Result<AppliedEvent> apply_event(std::string_view line) override;

 private:
  PodStore& store_;
  std::string node_;
  LabelAllowlist labels_;
  DecodeLimits limits_;
  std::vector<Pod> pods_;  // the list being read
};

// The watcher of this node's pods.
class PodWatcher final : public Watcher {
 public:
  PodWatcher(ApiServer api, WatchOptions options, PodStore& store);
  [[nodiscard]] const PodStore& store() const { return store_; }

 private:
  PodStore& store_;
};

}  // namespace podsight::metadata
