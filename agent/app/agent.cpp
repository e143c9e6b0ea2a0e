// Agent wiring: families + collectors + HTTP endpoints, scrape, readiness and preflight.
#include "app/agent.hpp"

#include "app/families.hpp"
#include "collectors/remote.hpp"
#include "log/log.hpp"
#include "metadata/remote_watch.hpp"
#include "podsight/version.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <malloc.h>
#include <sys/stat.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iomanip>

namespace podsight::app {
namespace {

constexpr int kMinKernelMajor = 5;
constexpr int kMinKernelMinor = 8;  // bpf_link for tracepoints, BPF_ENABLE_STATS, batch map ops
// Scrapes of at least this many series hand their freed memory back to the kernel (Agent::scrape).
constexpr std::size_t kTrimAfterSeries = 10000;

bool is_dir(const std::string& p) {
  struct stat st {};
  return !p.empty() && ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

const char* kLandingPage = R"(<!doctype html>
<html><head><meta charset="utf-8"><title>podsight</title></head>
<body><h1>podsight</h1>
<p>eBPF node agent for Kubernetes.</p>
<ul>
<li><a href="metrics">/metrics</a> Prometheus metrics</li>
<li><a href="healthz">/healthz</a> liveness</li>
<li><a href="readyz">/readyz</a> readiness, with the state of every program family</li>
</ul></body></html>
)";

}  // namespace

Agent::Agent(config::Config cfg) : cfg_(std::move(cfg)), registry_(std::make_shared<prometheus::Registry>()) {
  std::string root = cfg_.cgroup_root.empty() ? features_.mounts().cgroup2 : cfg_.cgroup_root;
  cgroups_ = std::make_unique<metadata::CgroupPaths>(root);
  pods_ = std::make_unique<metadata::PodStore>(static_cast<std::size_t>(cfg_.kubernetes.max_pods));
  if (cfg_.programs.tcp.enabled && cfg_.programs.tcp.remote.enabled) {
    remote_ = std::make_unique<metadata::RemoteIndex>(cfg_.programs.tcp.remote.max_addresses);
  }
  setup_kubernetes();
  workloads_ = std::make_unique<metadata::WorkloadResolver>(*cgroups_, pods_.get());
  std::vector<const programs::Family*> fams;
  for (auto& part : make_families(cfg_, *workloads_, remote_.get())) {
    fams.push_back(part.program.get());
    families_.push_back(std::move(part.program));
    collectors_.push_back(std::move(part.collector));
  }
  {
    auto k = std::make_unique<collectors::Kubernetes>(*pods_, watcher_.get(), kube_state_,
                                                      cfg_.kubernetes.pod_labels);
    kube_collector_ = k.get();
    collectors_.push_back(std::move(k));
  }
  if (remote_) {
    std::vector<const metadata::Watcher*> watchers;
    for (const auto& w : remote_watchers_) watchers.push_back(w.get());
    collectors_.push_back(std::make_unique<collectors::RemoteEndpoints>(*remote_, std::move(watchers)));
  }
  metrics::BudgetOptions budget;
  budget.max_series = static_cast<std::size_t>(cfg_.cardinality.max_series);
  for (const auto& [family, limit] : cfg_.cardinality.family_max_series) {
    budget.family_max_series[family] = static_cast<std::size_t>(limit);
  }
  budget.drop_labels.insert(cfg_.cardinality.drop_labels.begin(), cfg_.cardinality.drop_labels.end());
  for (const auto& [label, bytes] : cfg_.cardinality.label_max_bytes) {
    budget.label_max_bytes[label] = static_cast<std::size_t>(bytes);
  }
  budget_ = std::make_unique<metrics::SeriesBudget>(std::move(budget));
  metadata::GcOptions gc;
  gc.grace = std::chrono::seconds(cfg_.gc.grace_period_seconds);
  gc.interval = std::chrono::seconds(cfg_.gc.interval_seconds);
  gc.max_deletes_per_pass = static_cast<std::size_t>(cfg_.gc.max_deletes_per_pass);
  gc_ = std::make_unique<metadata::GarbageCollector>(gc, fams, *cgroups_, pods_.get());
  http_requests_ = &prometheus::BuildCounter()
                        .Name("podsight_http_requests_total")
                        .Help("HTTP requests answered by the agent, by route and status code.")
                        .Register(*registry_);
  scrape_errors_ = &prometheus::BuildCounter()
                        .Name("podsight_scrape_errors_total")
                        .Help("Scrapes in which a collector could not read all of its maps.")
                        .Register(*registry_);
  secret_reloads_ =
      &prometheus::BuildCounter()
           .Name("podsight_http_secret_reloads_total")
           .Help("TLS certificate and HTTP credential files re-read after they changed on disk.")
           .Register(*registry_);
  tls_expiry_ = &prometheus::BuildGauge()
                     .Name("podsight_http_tls_certificate_expiry_timestamp_seconds")
                     .Help("notAfter of the TLS certificate /metrics is served with, as a Unix time.")
                     .Register(*registry_);
  self_ = std::make_unique<collectors::Self>(std::move(fams), features_, registry_, [this] {
    if (stats_fd_) return true;
    auto s = bpf::read_file("/proc/sys/kernel/bpf_stats_enabled");
    return s && !s->empty() && (*s)[0] == '1';
  });
}

Agent::~Agent() { stop(); }

void Agent::setup_kubernetes() {
  const auto& k = cfg_.kubernetes;
  std::string source = k.source;
  if (source == "auto") {
    const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
    if (host != nullptr && *host != '\0') {
      source = "in_cluster";
    } else if (!k.kubeconfig.empty()) {
      source = "kubeconfig";
    } else {
      log::info(
          "Kubernetes metadata off: not in a pod (KUBERNETES_SERVICE_HOST unset) and no "
          "kubernetes.kubeconfig");
      return;
    }
  }
  if (source == "off") return;
  auto api = source == "in_cluster" ? metadata::in_cluster({k.token_file, k.ca_file},
                                                           [](const char* n) { return std::getenv(n); })
                                    : metadata::from_kubeconfig(k.kubeconfig, k.context);
  std::string node = k.node_name;
  if (node.empty()) {
    const char* env = std::getenv("NODE_NAME");
    if (env != nullptr) node = env;
  }
  if (node.empty()) {
    // kubelet's default node name is the host name, lower-cased; set NODE_NAME from the downward API
    // (spec.nodeName) where the two differ.
    char host[256] = {};
    if (::gethostname(host, sizeof host - 1) == 0) node = host;
    std::transform(node.begin(), node.end(), node.begin(), [](unsigned char c) { return std::tolower(c); });
    log::warn("NODE_NAME not set: using the host name as the node name", {{"node", node}});
  }
  if (!api || node.empty()) {
    kube_state_ = metadata::SyncState::kFailed;
    kube_error_ = !api ? api.error().message() : "no node name (kubernetes.node_name, NODE_NAME, host name)";
    log::error("Kubernetes metadata configuration failed", {{"error", kube_error_}});
    return;
  }
  metadata::WatchOptions opts;
  opts.node_name = node;
  opts.labels.names = k.pod_labels;
  opts.page_size = static_cast<std::size_t>(k.list_page_size);
  opts.max_response_bytes = static_cast<std::size_t>(k.max_response_bytes);
  opts.request_timeout = std::chrono::seconds(k.request_timeout_seconds);
  if (remote_) {
    // The whole cluster's pods and services: every node's agent lists and watches them (opt-in, see
    // docs/configuration.md for the cost).
    metadata::WatchOptions ropts = opts;
    ropts.node_name.clear();
    remote_watchers_.push_back(std::make_unique<metadata::Watcher>(
        *api, ropts, std::make_unique<metadata::ClusterPods>(*remote_, ropts.limits)));
    remote_watchers_.push_back(std::make_unique<metadata::Watcher>(
        *api, ropts, std::make_unique<metadata::Services>(*remote_, ropts.limits)));
  }
  watcher_ = std::make_unique<metadata::PodWatcher>(std::move(*api), std::move(opts), *pods_);
}

void Agent::start_background() {
  if (watcher_) watcher_->start();
  for (auto& w : remote_watchers_) w->start();
  gc_->start();
}

void Agent::enable_bpf_stats() {
  if (!cfg_.bpf_stats || stats_fd_) return;
  // BPF_ENABLE_STATS keeps run-time stats on only while we hold the fd: nothing is left switched on
  // after the agent exits, unlike writing the sysctl.
  int fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
  if (fd < 0) {
    log::warn("cannot enable BPF run-time statistics", {{"error", errno_error("BPF_ENABLE_STATS").message()}});
    return;
  }
  stats_fd_.reset(fd);
  log::info("BPF run-time statistics enabled");
}

void Agent::start_programs() {
  log::info("starting", {{"version", kVersion},
                         {"revision", kRevision},
                         {"kernel", features_.kernel_release()},
                         {"cgroup_root", cgroups_->root()}});
  if (!features_.memcg_accounting()) {
    log::warn("kernel does not charge BPF memory to cgroups; RLIMIT_MEMLOCK may limit map sizes",
              {{"kernel", features_.kernel_release()}});
  }
  enable_bpf_stats();
  programs::Context ctx{features_, cfg_};
  for (auto& f : families_) f->start(ctx);
  // Probing is over: the kernel's BTF would otherwise stay resident for the agent's lifetime, a
  // third of its idle memory.
  features_.release_btf();
  programs_started_ = true;
}

Status Agent::start_http() {
  http_ = std::make_unique<http::Server>(cfg_.http);
  http_->route("/metrics", [this](const httplib::Request& req) {
    const auto format = metrics::negotiate(req.get_header_value("Accept"));
    http::Response res{200, std::string(metrics::content_type(format)), {}};
    res.stream = [this, format](http::BodySink& body) { scrape(format, body); };
    return res;
  });
  // Probes stay public: a kubelet probe can only present a secret written into the pod spec. They tell
  // whether the agent runs and which families work, never workload data.
  http_->route(
      "/healthz",
      [](const httplib::Request&) {
        return http::Response{200, "text/plain; charset=utf-8", "ok\n"};
      },
      http::Access::kPublic);
  http_->route(
      "/readyz",
      [this](const httplib::Request&) {
        auto r = readiness();
        return http::Response{r.http_status, "application/json", r.body};
      },
      http::Access::kPublic);
  http_->route("/", [](const httplib::Request&) {
    return http::Response{200, "text/html; charset=utf-8", kLandingPage};
  });
  http_->on_request([this](const http::RequestEvent& e) {
    http_requests_->Add({{"path", std::string(e.path)}, {"code", std::to_string(e.status)}}).Increment();
  });
  http_->on_reload([this](const http::SecretReload& e) {
    secret_reloads_->Add({{"secret", e.secret}, {"result", e.ok ? "success" : "failure"}}).Increment();
  });
  auto st = http_->start();
  if (!st) return st;
  if (cfg_.http.tls.enabled()) {
    tls_expiry_->Add({}).Set(static_cast<double>(http_->tls_certificate_not_after()));
  } else if (cfg_.http.auth.enabled()) {
    log::warn("http.auth is set without http.tls: credentials cross the network in clear text");
  }
  log::info("serving HTTP", {{"listen", cfg_.http.listen},
                             {"port", http_->port()},
                             {"tls", cfg_.http.tls.enabled()},
                             {"auth", cfg_.http.auth.enabled()}});
  return {};
}

void Agent::stop() {
  if (stopped_.exchange(true)) return;
  if (http_) http_->stop();
  gc_->stop();  // before the families: it walks their maps
  if (watcher_) watcher_->stop();
  for (auto& w : remote_watchers_) w->stop();
  for (auto& f : families_) f->stop();
  stats_fd_.reset();
}

int Agent::http_port() const { return http_ ? http_->port() : -1; }

void Agent::scrape(metrics::Format format, http::BodySink& body) {
  // One scrape at a time, encoding included: collectors and the cgroup cache need no locking of
  // their own, concurrent scrapers (Prometheus HA pairs) cost one map walk each rather than
  // contending, and only one scrape's families and text are being built at any time (with 100k
  // series, four concurrent scrapers otherwise took the agent to 150 MiB).
  std::lock_guard lock(scrape_mu_);
  metrics::Families families;
  {
    const auto t0 = std::chrono::steady_clock::now();
    collectors::ScrapeContext ctx;
    for (auto& c : collectors_) {
      const std::size_t first = families.size();
      bool ok = false;
      try {
        ok = c->collect(ctx, families);
      } catch (const std::exception& e) {
        log::error("collector threw", {{"collector", std::string(c->name())}, {"error", e.what()}});
      }
      if (!ok) scrape_errors_->Add({{"collector", std::string(c->name())}}).Increment();
      // Every family a collector makes is under the series budget; a collector that could not read
      // everything releases nothing (its missing series may still exist).
      for (std::size_t i = first; i < families.size(); ++i) budget_->apply(families[i], ok);
    }
    ctx.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (http_ && cfg_.http.tls.enabled()) {
      tls_expiry_->Add({}).Set(static_cast<double>(http_->tls_certificate_not_after()));
    }
    if (!self_->collect(ctx, families)) scrape_errors_->Add({{"collector", "self"}}).Increment();
    budget_->collect(families);
    kube_collector_->collect_self(families);
    gc_->collect(families);
  }
  // Written in pieces: a gzip scrape (what Prometheus asks for) is compressed as it comes and never
  // holds its whole text, 12 MiB at 100k series.
  body.expect(metrics::encoded_size_estimate(families));
  metrics::encode(families, format, [&body](std::string_view piece) { body.write(piece); });
  std::size_t series = 0;
  for (const auto& f : families) series += f.size();
  families = {};
  // A big scrape makes many small allocations (a node per aggregated key, the series budget's
  // lookups) in the malloc arena of whichever HTTP worker serves it. glibc keeps an arena's freed
  // pages resident, so every worker would hold on to the biggest scrape it ever served: four workers
  // kept ~28 MiB after 100k-series scrapes. Handing the free pages back costs ~0.5-1 ms there, but
  // ~0.1 ms on a scrape of a few hundred series that leaves little behind, hence the threshold.
  if (series >= kTrimAfterSeries) malloc_trim(0);
}

Readiness Agent::readiness() const {
  nlohmann::json fams = nlohmann::json::array();
  bool any_failed = false;
  bool any_degraded = false;
  bool any_up = false;
  for (const auto& f : families_) {
    auto st = f->status();
    any_failed |= st.state == programs::State::kFailed;
    any_degraded |= st.state == programs::State::kDegraded;
    any_up |= st.state == programs::State::kAttached || st.state == programs::State::kDegraded;
    fams.push_back({{"name", std::string(f->name())},
                    {"state", std::string(programs::to_string(st.state))},
                    {"variant", st.variant},
                    {"error", st.error}});
  }
  const auto kube = kube_collector_->state();
  std::string status = "ready";
  int code = 200;
  if (!programs_started_ || stopped_) {
    status = "not_ready";
    code = 503;
  } else if (any_failed || !any_up || kube == metadata::SyncState::kFailed) {
    // A family the config asked for is not working, or Kubernetes metadata cannot work as configured:
    // hold a rolling update here rather than spread it.
    status = "not_ready";
    code = 503;
  } else if (any_degraded || kube == metadata::SyncState::kConnecting ||
             kube == metadata::SyncState::kStale || !remote_in_sync()) {
    // An unreachable or slow API server is the cluster's problem, not this node's: metrics are served
    // with the labels we know, and every agent of the DaemonSet going unready would help nobody.
    status = "degraded";
  }
  nlohmann::json body{{"status", status}, {"families", fams}, {"kubernetes", kubernetes_readiness()}};
  return {code, body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n"};
}

bool Agent::remote_in_sync() const {
  for (const auto& w : remote_watchers_) {
    if (w->status().state != metadata::SyncState::kSynced) return false;
  }
  return true;
}

nlohmann::json Agent::kubernetes_readiness() const {
  nlohmann::json k{{"state", std::string(metadata::to_string(kube_collector_->state()))}};
  if (remote_) {
    // Remote labels: whether the cluster-wide watches are current (a failing one degrades readiness:
    // missing RBAC on services shows here).
    nlohmann::json r = nlohmann::json::object();
    for (const auto& w : remote_watchers_) {
      const auto st = w->status();
      r[w->resource()] = {{"state", std::string(metadata::to_string(st.state))}, {"error", st.error}};
    }
    const auto c = remote_->counts();
    r["addresses"] = c.pod + c.service + c.node;
    k["remote"] = r;
  }
  if (!watcher_) {
    k["error"] = kube_error_;
    return k;
  }
  const auto st = watcher_->status();
  k["source"] = watcher_->api().source;
  k["api_server"] = watcher_->api().url();
  k["node"] = watcher_->options().node_name;
  k["pods"] = pods_->live();
  k["last_sync_unix"] = st.last_sync_unix;
  k["error"] = st.error;
  return k;
}

int Agent::check(std::ostream& out) {
  struct Row {
    std::string check;
    bool ok;
    std::string detail;
  };
  std::vector<Row> rows;
  auto [major, minor] = features_.kernel_version();
  bool kernel_ok = major > kMinKernelMajor || (major == kMinKernelMajor && minor >= kMinKernelMinor);
  rows.push_back({"kernel", kernel_ok,
                  features_.kernel_release() + " (needs >= " + std::to_string(kMinKernelMajor) + "." +
                      std::to_string(kMinKernelMinor) + ")"});
  rows.push_back({"btf", features_.has_vmlinux_btf(),
                  features_.has_vmlinux_btf() ? "/sys/kernel/btf/vmlinux" : "no vmlinux BTF: CO-RE cannot relocate"});
  const auto& m = features_.mounts();
  // Informational: podsight pins nothing, so the chart does not mount bpffs into the pod.
  rows.push_back(
      {"bpffs", true, m.bpffs.empty() ? "not mounted (not needed: podsight pins nothing)" : m.bpffs});
  // Informational too: tracepoints are attached as tp_btf or raw tracepoints, found by name.
  rows.push_back({"tracefs", true,
                  m.tracefs.empty() ? "not mounted (not needed: tracepoints attach as tp_btf or raw tracepoints)"
                                    : m.tracefs});
  const std::string& cg = cgroups_->root();
  rows.push_back({"cgroup2", is_dir(cg), cg.empty() ? "no cgroup2 mount found" : cg});
  rows.push_back({"memlock", true,
                  features_.memcg_accounting() ? "BPF memory charged to the cgroup (kernel >= 5.11)"
                                               : "RLIMIT_MEMLOCK applies (kernel < 5.11)"});
  if (watcher_) {
    auto pods = watcher_->list_once();
    rows.push_back({"kubernetes", pods.ok(),
                    pods ? std::to_string(*pods) + " pods on node " + watcher_->options().node_name +
                               " from " + watcher_->api().url()
                         : pods.error().message()});
  } else {
    rows.push_back({"kubernetes", kube_state_ != metadata::SyncState::kFailed,
                    kube_state_ == metadata::SyncState::kFailed ? kube_error_ : "off"});
  }
  // What variants the kernel allows, for the record (the kernel matrix reads these rows): families
  // fall back to tracepoints without them, so neither fails the check.
  rows.push_back({"kprobes", true, features_.has_kprobes() ? "available" : "not available: kprobe variants unused"});
  rows.push_back({"fentry", true,
                  features_.can_load_fentry("vfs_read") ? "available" : "not available: fentry variants unused"});
  start_programs();
  for (const auto& f : families_) {
    auto st = f->status();
    std::string detail(programs::to_string(st.state));
    if (!st.variant.empty()) detail += ", variant " + st.variant;
    if (auto d = f->detail(); !d.empty() && !st.variant.empty()) detail += ", " + d;
    if (!st.error.empty()) detail += ": " + st.error;
    bool ok = st.state == programs::State::kAttached || st.state == programs::State::kDisabled;
    rows.push_back({"program " + std::string(f->name()), ok, detail});
  }
  stop();
  bool all = true;
  // The first column fits the longest check name ("program cgroup_skb" and longer) plus a space.
  std::size_t width = 18;
  for (const auto& r : rows) width = std::max(width, r.check.size() + 1);
  const int w = static_cast<int>(width);
  out << std::left << std::setw(w) << "CHECK" << std::setw(7) << "RESULT" << "DETAIL\n";
  for (const auto& r : rows) {
    all &= r.ok;
    out << std::left << std::setw(w) << r.check << std::setw(7) << (r.ok ? "ok" : "FAIL") << r.detail << "\n";
  }
  return all ? 0 : 1;
}

}  // namespace podsight::app
