// The list/watch loop. Resource versions follow client-go's reflector: the first list is served from
// the API server's watch cache (resourceVersion=0, cheap for a DaemonSet of thousands), a re-list after
// a watch expired asks for at least the last version seen, and a list that is itself too old (410)
// falls back to a consistent read (no resourceVersion).
#include "metadata/kube_watch.hpp"

#include "log/log.hpp"

#include <algorithm>
#include <optional>
#include <random>

namespace podsight::metadata {
namespace {

using Clock = std::chrono::steady_clock;

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A bounded prefix of an error body: enough for the Status message, never the whole body.
constexpr std::size_t kMaxErrorBody = 4096;

// Exponential backoff with jitter: the n-th wait is uniform in [d/2, d] with d = initial * 2^n capped.
class Backoff {
 public:
  Backoff(std::chrono::milliseconds initial, std::chrono::milliseconds max)
      : initial_(initial), max_(max), rng_(std::random_device{}()) {}
  std::chrono::milliseconds next() {
    const auto d = std::min(max_, initial_ * (std::int64_t{1} << std::min(attempt_, 20)));
    ++attempt_;
    std::uniform_int_distribution<std::int64_t> jitter(d.count() / 2, d.count());
    return std::chrono::milliseconds(jitter(rng_));
  }
  void reset() { attempt_ = 0; }

 private:
  std::chrono::milliseconds initial_;
  std::chrono::milliseconds max_;
  int attempt_ = 0;
  std::mt19937_64 rng_;
};

}  // namespace

std::string_view to_string(SyncState s) {
  switch (s) {
    case SyncState::kDisabled:
      return "disabled";
    case SyncState::kFailed:
      return "failed";
    case SyncState::kConnecting:
      return "connecting";
    case SyncState::kSynced:
      return "synced";
    case SyncState::kStale:
      return "stale";
  }
  return "unknown";
}

std::string_view to_string(WatchError e) {
  switch (e) {
    case WatchError::kCredentials:
      return "credentials";
    case WatchError::kResolve:
      return "resolve";
    case WatchError::kConnect:
      return "connect";
    case WatchError::kTls:
      return "tls";
    case WatchError::kTimeout:
      return "timeout";
    case WatchError::kProtocol:
      return "protocol";
    case WatchError::kHttp:
      return "http";
    case WatchError::kDecode:
      return "decode";
    case WatchError::kTooLarge:
      return "too_large";
    case WatchError::kTooManyPods:
      return "too_many_pods";
    case WatchError::kCount:
      break;
  }
  return "unknown";
}

Watcher::Watcher(ApiServer api, WatchOptions options, std::unique_ptr<WatchTarget> target)
    : api_(std::move(api)), options_(std::move(options)), target_(std::move(target)) {}

Watcher::~Watcher() { stop(); }

void Watcher::start() {
  if (thread_.joinable()) return;
  log::info("watching " + target_->resource(),
            {{"api_server", api_.url()}, {"source", api_.source}, {"path", target_->path()}});
  thread_ = std::thread([this] { run(); });
}

void Watcher::stop() {
  cancel_.cancel();
  if (thread_.joinable()) thread_.join();
}

Watcher::Status Watcher::status() const {
  std::lock_guard lock(mu_);
  return status_;
}

std::string Watcher::query_path() const {
  std::string p = api_.base_path + target_->path();
  return p + (p.find('?') == std::string::npos ? "?" : "&");
}

Watcher::Attempt Watcher::from_http(const HttpOutcome& o, const std::string& what) {
  Attempt a;
  a.message = what + ": " + o.message;
  switch (*o.failure) {
    case HttpFailure::kResolve:
      a.error = WatchError::kResolve;
      break;
    case HttpFailure::kConnect:
      a.error = WatchError::kConnect;
      break;
    case HttpFailure::kTls:
      a.error = WatchError::kTls;
      break;
    case HttpFailure::kTimeout:
      a.error = WatchError::kTimeout;
      break;
    default:
      a.error = WatchError::kProtocol;
      break;
  }
  return a;
}

void Watcher::failed(const Attempt& a) {
  errors_[static_cast<std::size_t>(a.error)].fetch_add(1);
  std::lock_guard lock(mu_);
  if (status_.state == SyncState::kSynced) status_.state = SyncState::kStale;
  status_.error = a.message;
  log::warn("Kubernetes API request failed", {{"reason", std::string(to_string(a.error))},
                                              {"error", a.message},
                                              {"state", std::string(to_string(status_.state))}});
}

void Watcher::set_synced() {
  std::lock_guard lock(mu_);
  if (status_.state != SyncState::kSynced) {
    log::info("in sync with the Kubernetes API", {{"resource", target_->resource()}});
  }
  status_.state = SyncState::kSynced;
  status_.error.clear();
  status_.last_sync_unix = unix_now();
}

Watcher::Listed Watcher::list_all(const std::string& resource_version) {
  Listed out;
  std::size_t page_size = std::max<std::size_t>(1, options_.page_size);
  std::string cont;
  for (;;) {
    auto creds = load_credentials(api_);
    if (!creds) {
      out.attempt.error = WatchError::kCredentials;
      out.attempt.message = creds.error().message();
      return out;
    }
    std::string target = query_path() + "limit=" + std::to_string(page_size);
    if (!cont.empty()) {
      target += "&continue=" + url_encode(cont);
    } else if (!resource_version.empty()) {
      target += "&resourceVersion=" + url_encode(resource_version);
    }
    std::vector<std::pair<std::string, std::string>> headers;
    if (!creds->bearer.empty()) headers.emplace_back("Authorization", "Bearer " + creds->bearer);
    HttpTimeouts timeouts{options_.request_timeout, options_.request_timeout, options_.request_timeout};
    std::string body;
    int status = 0;
    bool too_large = false;
    auto outcome = https_get(
        creds->target, target, headers, timeouts, cancel_,
        [&](const HttpHead& h) {
          status = h.status;
          return true;
        },
        [&](std::string_view piece) {
          const std::size_t limit = status == 200 ? options_.max_response_bytes : kMaxErrorBody;
          if (body.size() + piece.size() > limit) {
            if (status != 200) {
              body.append(piece.substr(0, limit - body.size()));
              return false;
            }
            too_large = true;
            return false;
          }
          body.append(piece);
          return true;
        });
    if (too_large) {
      // Smaller pages next time, from the start (a continue token belongs to its page size's list).
      out.attempt.error = WatchError::kTooLarge;
      out.attempt.message = target_->resource() + " list page larger than " +
                            std::to_string(options_.max_response_bytes) +
                            " bytes (limit=" + std::to_string(page_size) + ")";
      target_->discard_list();
      if (page_size == 1) return out;
      errors_[static_cast<std::size_t>(WatchError::kTooLarge)].fetch_add(1);
      log::warn("list page too large, asking for smaller pages",
                {{"resource", target_->resource()}, {"limit", page_size / 2}});
      page_size /= 2;
      cont.clear();
      out.skipped = 0;
      continue;
    }
    if (!outcome.ok() && !(outcome.failure == HttpFailure::kAborted && status != 200)) {
      out.attempt = from_http(outcome, "list " + target_->resource());
      return out;
    }
    if (status == 410) {
      out.attempt.gone = true;
      out.attempt.message = "list " + target_->resource() + ": 410 Gone: " + status_message(body);
      return out;
    }
    if (status != 200) {
      out.attempt.error = WatchError::kHttp;
      out.attempt.message =
          "list " + target_->resource() + ": HTTP " + std::to_string(status) + ": " + status_message(body);
      return out;
    }
    auto page = target_->add_page(body);
    if (!page) {
      target_->discard_list();
      out.attempt.error = WatchError::kDecode;
      out.attempt.message = page.error().message();
      return out;
    }
    body.clear();
    body.shrink_to_fit();
    out.skipped += page->skipped;
    if (page->skipped > 0) {
      log::warn(
          "objects in the list could not be decoded and are ignored",
          {{"resource", target_->resource()}, {"count", page->skipped}, {"first", page->first_skip_reason}});
    }
    out.resource_version = page->resource_version;
    if (page->continue_token.empty()) break;
    cont = std::move(page->continue_token);
  }
  out.attempt.ok = true;
  return out;
}

Result<std::size_t> Watcher::list_once() {
  auto l = list_all("0");
  const std::size_t n = target_->listed();
  target_->discard_list();
  if (!l.attempt.ok) return Error{l.attempt.message, api_.url(), 0};
  return n;
}

Watcher::Attempt Watcher::watch(std::string& resource_version, std::uint64_t& events_seen) {
  Attempt a;
  auto creds = load_credentials(api_);
  if (!creds) {
    a.error = WatchError::kCredentials;
    a.message = creds.error().message();
    return a;
  }
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  const auto lo = options_.watch_timeout_min.count();
  const auto hi = std::max(lo, static_cast<std::int64_t>(options_.watch_timeout_max.count()));
  const auto timeout_s = std::uniform_int_distribution<std::int64_t>(lo, hi)(rng);
  const std::string target =
      query_path() + "watch=1&allowWatchBookmarks=true&resourceVersion=" + url_encode(resource_version) +
      "&timeoutSeconds=" + std::to_string(timeout_s);
  std::vector<std::pair<std::string, std::string>> headers;
  if (!creds->bearer.empty()) headers.emplace_back("Authorization", "Bearer " + creds->bearer);
  // The server ends the watch after timeout_s; silence well past that means the connection is dead.
  HttpTimeouts timeouts{options_.request_timeout, std::chrono::seconds(timeout_s + 60),
                        std::chrono::milliseconds(0)};

  int status = 0;
  std::string line;
  std::string error_body;
  std::optional<Attempt> abandon;  // why the stream was abandoned, when we abandoned it
  auto handle_line = [&](std::string_view text) -> bool {
    while (!text.empty() && (text.back() == '\r' || text.back() == ' ')) text.remove_suffix(1);
    if (text.empty()) return true;
    auto ev = target_->apply_event(text);
    if (!ev) {
      abandon = Attempt{false, false, WatchError::kDecode, ev.error().message()};
      return false;
    }
    ++events_seen;
    events_.fetch_add(1);
    if (!ev->refused.empty()) {
      errors_[static_cast<std::size_t>(WatchError::kTooManyPods)].fetch_add(1);
      log::warn("store full: object ignored", {{"resource", target_->resource()}, {"object", ev->refused}});
    }
    switch (ev->type) {
      case EventType::kAdded:
      case EventType::kModified:
      case EventType::kDeleted:
      case EventType::kBookmark:
        break;
      case EventType::kError:
        if (ev->code == 410) {
          abandon = Attempt{false, true, WatchError::kHttp,
                            "watch " + target_->resource() + ": 410 Gone: " + ev->message};
        } else {
          abandon = Attempt{false, false, WatchError::kHttp,
                            "watch " + target_->resource() + ": ERROR event " + std::to_string(ev->code) +
                                " " + ev->reason + ": " + ev->message};
        }
        return false;
    }
    if (!ev->resource_version.empty()) resource_version = ev->resource_version;
    {
      // Every event, bookmarks included, proves the cache current as of now.
      std::lock_guard lock(mu_);
      status_.last_sync_unix = unix_now();
    }
    return true;
  };
  auto outcome = https_get(
      creds->target, target, headers, timeouts, cancel_,
      [&](const HttpHead& h) {
        status = h.status;
        if (status == 200) set_synced();
        return true;
      },
      [&](std::string_view piece) {
        if (status != 200) {
          error_body.append(piece.substr(0, kMaxErrorBody - std::min(kMaxErrorBody, error_body.size())));
          return error_body.size() < kMaxErrorBody;
        }
        while (!piece.empty()) {
          const auto nl = piece.find('\n');
          const std::string_view part = piece.substr(0, nl);
          if (line.size() + part.size() > options_.max_response_bytes) {
            abandon =
                Attempt{false, false, WatchError::kTooLarge,
                        "watch event larger than " + std::to_string(options_.max_response_bytes) + " bytes"};
            return false;
          }
          if (nl == std::string_view::npos) {
            line.append(part);
            return true;
          }
          bool go_on = true;
          if (line.empty()) {
            go_on = handle_line(part);
          } else {
            line.append(part);
            go_on = handle_line(line);
            line.clear();
          }
          if (!go_on) return false;
          piece.remove_prefix(nl + 1);
        }
        return true;
      });
  if (abandon) return *abandon;
  if (status != 0 && status != 200) {
    if (status == 410)
      return Attempt{false, true, WatchError::kHttp, "watch " + target_->resource() + ": 410 Gone"};
    return Attempt{false, false, WatchError::kHttp,
                   "watch " + target_->resource() + ": HTTP " + std::to_string(status) + ": " +
                       status_message(error_body)};
  }
  if (!outcome.ok()) return from_http(outcome, "watch " + target_->resource());
  // A clean end of the stream; a partial last line was cut off by the server and is dropped.
  a.ok = true;
  return a;
}

void Watcher::run() {
  Backoff backoff(options_.backoff_initial, options_.backoff_max);
  std::string resource_version;
  std::string list_version = "0";
  bool need_list = true;
  while (!cancel_.cancelled()) {
    if (need_list) {
      auto l = list_all(list_version);
      if (cancel_.cancelled()) break;
      if (l.attempt.gone && !list_version.empty()) {
        // Our version is too old for the server: the next list reads the current state.
        log::info("resource version expired, listing again", {{"error", l.attempt.message}});
        list_version.clear();
        continue;
      }
      if (l.attempt.gone) l.attempt.error = WatchError::kHttp;
      if (!l.attempt.ok) {
        failed(l.attempt);
        if (!cancel_.sleep_for(backoff.next())) break;
        continue;
      }
      if (l.skipped > 0) errors_[static_cast<std::size_t>(WatchError::kDecode)].fetch_add(l.skipped);
      const std::size_t rejected = target_->commit_list();
      if (rejected > 0) {
        errors_[static_cast<std::size_t>(WatchError::kTooManyPods)].fetch_add(rejected);
        log::warn("store full: objects ignored", {{"resource", target_->resource()}, {"count", rejected}});
      }
      resource_version = l.resource_version;
      list_version = resource_version;
      need_list = false;
      lists_.fetch_add(1);
      backoff.reset();
      set_synced();
    }
    const auto started = Clock::now();
    std::uint64_t seen = 0;
    auto w = watch(resource_version, seen);
    if (cancel_.cancelled()) break;
    watch_restarts_.fetch_add(1);
    if (seen > 0) backoff.reset();
    if (w.gone) {
      relists_.fetch_add(1);
      log::info("watch expired (410 Gone), listing again", {{"resource_version", resource_version}});
      list_version = resource_version;
      need_list = true;
      continue;
    }
    if (w.ok) {
      // Normal end (timeoutSeconds). A server that ends watches at once is not hammered either.
      if (seen == 0 && Clock::now() - started < std::chrono::seconds(1) && !cancel_.sleep_for(backoff.next()))
        break;
      continue;
    }
    failed(w);
    if (!cancel_.sleep_for(backoff.next())) break;
  }
}

NodePods::NodePods(PodStore& store, std::string node_name, LabelAllowlist labels, DecodeLimits limits)
    : store_(store), node_(std::move(node_name)), labels_(std::move(labels)), limits_(limits) {}

std::string NodePods::path() const {
  return "/api/v1/pods?fieldSelector=" + url_encode("spec.nodeName=" + node_);
}

Result<ListPage> NodePods::add_page(std::string_view body) {
  auto page = decode_pod_list(body, labels_, limits_);
  if (!page) return page.error();
  // A server that ignores the field selector (a broken proxy) must not fill the store with the
  // whole cluster.
  for (auto& p : page->pods) {
    if (p.node == node_) pods_.push_back(std::move(p));
  }
  return ListPage{std::move(page->resource_version), std::move(page->continue_token), page->skipped,
                  std::move(page->first_skip_reason)};
}

std::size_t NodePods::commit_list() {
  auto pods = std::move(pods_);
  pods_.clear();
  return store_.replace(std::move(pods), Clock::now());
}

Result<AppliedEvent> NodePods::apply_event(std::string_view line) {
  auto ev = decode_watch_event(line, labels_, limits_);
  if (!ev) return ev.error();
  AppliedEvent out{
      ev->type, std::move(ev->resource_version), ev->code, std::move(ev->reason), std::move(ev->message), {}};
  switch (ev->type) {
    case EventType::kAdded:
    case EventType::kModified:
      if (ev->pod.node == node_) {
        std::string uid = ev->pod.uid;
        if (!store_.upsert(std::move(ev->pod))) out.refused = "pod " + uid + " (kubernetes.max_pods)";
      }
      break;
    case EventType::kDeleted:
      store_.remove(ev->pod.uid, Clock::now());
      break;
    case EventType::kBookmark:
    case EventType::kError:
      break;
  }
  return out;
}

PodWatcher::PodWatcher(ApiServer api, WatchOptions options, PodStore& store)
    : Watcher(api, options,
              std::make_unique<NodePods>(store, options.node_name, options.labels, options.limits)),
      store_(store) {}

}  // namespace podsight::metadata
