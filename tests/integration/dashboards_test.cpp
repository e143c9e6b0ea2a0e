// The shipped dashboards and alerts against a real Prometheus (Debian's `prometheus`) that scrapes the
// running agent on loopback while a workload runs: every PromQL expression of every panel in
// deploy/grafana/*.json (template variables resolved as Grafana would) and every rule of
// deploy/prometheus/podsight.rules.yaml must evaluate, and every panel must return data. New panels
// and rules are covered without touching this file.
//
// The agent runs as on a node of a cluster: configured by kubeconfig against the test API server,
// which serves one pod on the agent's node; the exec and TCP workloads run in that pod's kubelet-shaped
// container cgroup. Every dashboard is checked with its variables on "All"; one with namespace and pod
// variables is checked again with them set to that pod, so its panels must return pod-labelled data.
// Remote workload labels are on (their panels need them): the TCP workload also calls a pod of
// another node, which the API server lists with an address of this host.
#include "integration/support/harness.hpp"
#include "integration/support/net.hpp"
#include "integration/support/pod_cgroups.hpp"
#include "support/kube_api.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <map>
#include <regex>
#include <sstream>
#include <thread>

namespace podsight::testing {
namespace {

using nlohmann::json;

// Grafana's built-in variables, as Grafana would fill them for a short time range at a 1 s scrape
// interval ($__rate_interval is at least four scrape intervals).
const std::vector<std::pair<std::string, std::string>> kBuiltins = {
    {"__rate_interval", "10s"}, {"__interval", "2s"}, {"__interval_ms", "2000"},
    {"__range", "1m"},          {"__range_s", "60"},  {"__range_ms", "60000"},
};

std::string url_encode(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) != 0 || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

// A program that runs until destroyed (SIGTERM, then SIGKILL), output in a file.
class Background {
 public:
  Background(const std::vector<std::string>& argv, const std::string& log) : log_(log) {
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ == 0) {
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::execvp(args[0], args.data());
      ::_exit(127);
    }
  }
  ~Background() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 100; ++i) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  Background(const Background&) = delete;
  Background& operator=(const Background&) = delete;
  [[nodiscard]] bool running() const { return pid_ > 0 && ::waitpid(pid_, nullptr, WNOHANG) == 0; }
  [[nodiscard]] std::string log() const { return read_file(log_); }

 private:
  pid_t pid_ = -1;
  std::string log_;
};

// A child process looping over `body` until killed on destruction.
class Loop {
 public:
  Loop(const Placement& where, std::function<int()> body) : pid_(spawn_in(where, std::move(body))) {}
  ~Loop() {
    ::kill(pid_, SIGKILL);
    wait_child(pid_);
  }
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

 private:
  pid_t pid_;
};

// Accepts TCP connections on an IPv4 address of this host (127.0.0.1 unless named) and reads them to
// the end, on a thread of the test process.
class Sink {
 public:
  explicit Sink(const std::string& address = "127.0.0.1") {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    if (::inet_pton(AF_INET, address.c_str(), &a.sin_addr) != 1)
      throw std::runtime_error("sink: bad address");
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd_, 128) != 0) {
      throw std::runtime_error("sink: bind/listen failed");
    }
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~Sink() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  Sink(const Sink&) = delete;
  Sink& operator=(const Sink&) = delete;
  [[nodiscard]] int port() const { return port_; }

 private:
  void serve() {
    std::vector<pollfd> fds{{fd_, POLLIN, 0}};
    char buf[4096];
    while (!stop_) {
      if (::poll(fds.data(), fds.size(), 100) <= 0) continue;
      for (std::size_t i = fds.size(); i-- > 1;) {
        if ((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
        if (::read(fds[i].fd, buf, sizeof buf) <= 0) {
          ::close(fds[i].fd);
          fds.erase(fds.begin() + static_cast<std::ptrdiff_t>(i));
        }
      }
      if ((fds[0].revents & POLLIN) != 0) {
        for (int c; (c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC)) >= 0;) fds.push_back({c, POLLIN, 0});
      }
    }
    for (std::size_t i = 1; i < fds.size(); ++i) ::close(fds[i].fd);
  }
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

int connect_loopback(int port, const char* address = "127.0.0.1") {
  int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  ::inet_pton(AF_INET, address, &a.sin_addr);
  if (::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(s);
    return -1;
  }
  return s;
}

void nap(long ms) {
  timespec ts{ms / 1000, (ms % 1000) * 1000000};
  ::nanosleep(&ts, nullptr);
}

class Prometheus {
 public:
  explicit Prometheus(int port) : port_(port) {}
  // GET /api/v1/<path>; the parsed body (status "success" or "error").
  json api(const std::string& path_and_query) const {
    auto r = http_get(port_, "/api/v1/" + path_and_query, "", std::chrono::seconds(20));
    if (r.status == 0) return json{{"status", "error"}, {"error", "no answer from Prometheus"}};
    try {
      return json::parse(r.body);
    } catch (const json::exception& e) {
      return json{{"status", "error"}, {"error", std::string("unparseable answer: ") + e.what()}};
    }
  }

 private:
  int port_;
};

// `$name`, `${name}`, `${name:format}` and `[[name]]` references, Grafana's three syntaxes. `$name`
// ends at a non-word character, so $__range leaves $__range_s alone.
std::string substitute(std::string expr, const std::vector<std::pair<std::string, std::string>>& vars) {
  for (const auto& [name, value] : vars) {
    const std::regex ref("\\$\\{" + name + "(:[^}]*)?\\}|\\[\\[" + name + "\\]\\]|\\$" + name + "\\b");
    std::string replacement;
    for (char c : value) replacement += c == '$' ? std::string("$$") : std::string(1, c);
    expr = std::regex_replace(expr, ref, replacement);
  }
  return expr;
}

std::set<std::string> metric_names(const std::string& expr) {
  static const std::regex re(R"(\b((podsight|process)_[a-zA-Z0-9_]+))");
  std::set<std::string> out;
  for (std::sregex_iterator it(expr.begin(), expr.end(), re), end; it != end; ++it) out.insert((*it)[1]);
  return out;
}

std::set<std::string> exposed_families(const std::string& exposition) {
  std::set<std::string> out;
  std::istringstream in(exposition);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("# TYPE ", 0) == 0) out.insert(line.substr(7, line.find(' ', 7) - 7));
  }
  return out;
}

// Metric names with a row in docs/metrics.md. Some families have no series until something happens
// (podsight_scrape_errors_total), so "known" is exposed or documented.
std::set<std::string> documented_metrics(const std::string& src) {
  static const std::regex row(R"(^\| `([a-zA-Z_:][a-zA-Z0-9_:]*)` \|)");
  std::set<std::string> out;
  std::istringstream in(read_file(src + "/docs/metrics.md"));
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (std::regex_search(line, m, row)) out.insert(m[1]);
  }
  return out;
}

// Metric names in `expr` that are neither exposed nor documented: a typo or a renamed metric.
std::vector<std::string> unknown_metrics(const std::string& expr, const std::set<std::string>& exposed,
                                         const std::set<std::string>& documented) {
  std::vector<std::string> out;
  for (const auto& name : metric_names(expr)) {
    if (!exposed.contains(name) && !documented.contains(name)) out.push_back(name);
  }
  return out;
}

bool has_data(const json& answer) {
  const auto& r = answer["data"]["result"];
  if (answer["data"]["resultType"] == "scalar") return true;
  for (const auto& s : r) {
    if (s.contains("value") || (s.contains("values") && !s["values"].empty())) return true;
  }
  return false;
}

struct Target {
  std::string where;  // "dashboard / panel [refId]"
  std::string expr;
  bool instant = false;
};

void collect_panels(const json& panels, const std::string& dashboard, std::vector<Target>& out) {
  for (const auto& p : panels) {
    if (p.contains("panels")) collect_panels(p["panels"], dashboard, out);  // rows
    if (!p.contains("targets")) continue;
    for (const auto& t : p["targets"]) {
      if (!t.contains("expr") || t.value("hide", false)) continue;
      out.push_back({dashboard + " / " + p.value("title", "?") + " [" + t.value("refId", "?") + "]",
                     t["expr"].get<std::string>(), t.value("instant", false) && !t.value("range", false)});
    }
  }
}

// What every dashboard check reads and where its failures go.
struct Checker {
  const Prometheus& api;
  std::set<std::string> exposed;
  std::set<std::string> documented;
  double now = 0;
  std::vector<std::string> failures;
  std::size_t checked = 0;

  // The dashboard's template variables in order (later ones may use earlier ones), resolved as Grafana
  // does: a variable named in `chosen` takes that value, which must be one it offers; any other takes
  // its "All" value, or its first value without an All option.
  std::vector<std::pair<std::string, std::string>> variables(
      const json& d, const std::string& name, const std::map<std::string, std::string>& chosen) {
    auto vars = kBuiltins;
    static const std::regex label_values(
        R"(^\s*label_values\(\s*(?:(.*)\s*,\s*)?([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*$)");
    for (const auto& v : d["templating"]["list"]) {
      const std::string vname = v["name"];
      if (v["type"] == "datasource" || v["type"] == "constant" || v["type"] == "interval") continue;
      if (v["type"] != "query") {
        failures.push_back(name + ": variable " + vname + " has unsupported type " + v["type"].dump());
        continue;
      }
      std::string q = v["query"].is_object() ? v["query"].value("query", "") : v["query"].get<std::string>();
      q = substitute(q, vars);
      std::smatch m;
      if (!std::regex_match(q, m, label_values)) {
        failures.push_back(name + ": variable " + vname + ": only label_values() is supported, got " + q);
        continue;
      }
      std::string path = "label/" + m[2].str() + "/values";
      if (m[1].matched) path += "?match[]=" + url_encode(m[1].str());
      auto answer = api.api(path);
      if (answer["status"] != "success") {
        failures.push_back(name + ": variable " + vname + ": " + answer.dump());
        continue;
      }
      std::vector<std::string> values = answer["data"].get<std::vector<std::string>>();
      std::string value;
      if (auto c = chosen.find(vname); c != chosen.end()) {
        value = c->second;
        if (std::find(values.begin(), values.end(), value) == values.end()) {
          failures.push_back(name + ": variable " + vname + " does not offer " + value + " (offers " +
                             answer["data"].dump() + ")");
        }
      } else if (v.value("includeAll", false)) {
        if (v.contains("allValue") && v["allValue"].is_string() &&
            !v["allValue"].get<std::string>().empty()) {
          value = v["allValue"];
        } else {
          for (const auto& x : values) value += (value.empty() ? "" : "|") + x;
        }
      } else if (!values.empty()) {
        value = values.front();
      } else {
        failures.push_back(name + ": variable " + vname + " has no values and no All option");
      }
      std::printf("[ variable ] %s $%s = %s (%zu values)\n", name.c_str(), vname.c_str(), value.c_str(),
                  values.size());
      vars.emplace_back(vname, value);
    }
    return vars;
  }

  // Every panel query of the dashboard must evaluate and return data.
  void dashboard(const json& d, const std::string& name, const std::map<std::string, std::string>& chosen) {
    const auto vars = variables(d, name, chosen);
    std::vector<Target> targets;
    collect_panels(d["panels"], name, targets);
    EXPECT_FALSE(targets.empty()) << name;
    for (const auto& t : targets) {
      ++checked;
      const std::string expr = substitute(t.expr, vars);
      if (expr.find('$') != std::string::npos || expr.find("[[") != std::string::npos) {
        failures.push_back(t.where + ": unresolved variable in " + expr);
        continue;
      }
      char range[128];
      std::snprintf(range, sizeof range, "&start=%.0f&end=%.0f&step=2", now - 20, now);
      auto answer = t.instant ? api.api("query?query=" + url_encode(expr))
                              : api.api("query_range?query=" + url_encode(expr) + range);
      if (answer["status"] != "success") {
        failures.push_back(t.where + ": " + answer.value("error", answer.dump()) + "\n      " + expr);
        continue;
      }
      for (const auto& u : unknown_metrics(expr, exposed, documented))
        failures.push_back(t.where + ": metric " + u + " is neither exposed nor documented");
      if (has_data(answer)) {
        std::printf("[ data     ] %s\n", t.where.c_str());
      } else {
        failures.push_back(t.where + ": no data\n      " + expr);
      }
    }
  }
};

TEST(Dashboards, EveryPanelAndAlertWorksAgainstARealPrometheusScrapingTheAgent) {
  PODSIGHT_REQUIRE_PRIVILEGES();
  ensure_kernel_mounts();
  if (::access("/usr/bin/prometheus", X_OK) != 0) {
    if (in_ci()) FAIL() << "CI=true and /usr/bin/prometheus is missing (scripts/deps.sh installs it)";
    GTEST_SKIP() << "no /usr/bin/prometheus";
  }
  const std::string src = PODSIGHT_SOURCE_DIR;
  const std::string dir = make_temp_dir("podsight-dash");

  // --- the cluster: one pod on the agent's node, its container cgroup shaped as kubelet makes it ----
  const std::string node = "node-dash";
  TestPki pki;
  FakeKubeApi::Options options;
  options.token = "dash-token";
  options.node = node;
  FakeKubeApi kube(pki, options);
  const std::string suffix = random_suffix(4);
  const TestPod pod{"shop",
                    "web-5f7c9-" + suffix,
                    uuid("dash" + suffix),
                    node,
                    {{"web", hex_id("dash-web" + suffix)}},
                    {{"app", "web"}}};
  PodCgroups cgroups;
  TestCgroup& web = cgroups.container(pod, pod.containers[0].second, "systemd", "burstable");
  kube.upsert(pod_json(pod));
  // The pod the workload calls, on another node: its address is the host end of our veth.
  NetNs ns;
  Veth veth(ns);
  TestPod db{"data",
             "db-" + suffix,
             uuid("dashdb" + suffix),
             "node-far",
             {{"postgres", hex_id("dash-db" + suffix)}}};
  db.pod_ip = veth.host_v4();
  kube.upsert(pod_json(db));
  write_kubeconfig(dir + "/kubeconfig", kube.port(), pki, options.token);

  // --- the agent: every family on, remote labels too, XDP on a veth of our own -----------------------
  const json config = {
      {"bpf_stats", true},
      {"log", {{"level", "info"}}},
      {"programs",
       {{"tcp", {{"enabled", true}, {"remote", {{"enabled", true}}}}},
        {"cgroup_skb", {{"enabled", true}}},
        {"xdp", {{"enabled", true}, {"interfaces", {veth.host_if()}}}}}},
      {"kubernetes",
       {{"source", "kubeconfig"},
        {"kubeconfig", dir + "/kubeconfig"},
        {"node_name", node},
        {"pod_labels", {"app"}}}},
  };
  AgentProcess agent(config.dump());
  ASSERT_TRUE(agent.wait_serving()) << agent.logs();
  ASSERT_TRUE(eventually([&] {
    auto sc = agent.scrape();
    return sc.value("podsight_kubernetes_sync_state", {{"state", "synced"}}) == 1 &&
           sc.value("podsight_kubernetes_remote_sync_state", {{"resource", "pods"}, {"state", "synced"}}) ==
               1 &&
           sc.value("podsight_kubernetes_remote_sync_state",
                    {{"resource", "services"}, {"state", "synced"}}) == 1;
  })) << agent.get("/readyz").body
      << agent.logs();
  ASSERT_EQ(agent.get("/readyz").status, 200) << agent.get("/readyz").body;
  EXPECT_EQ(json::parse(agent.get("/readyz").body)["status"], "ready") << agent.get("/readyz").body;

  // --- Prometheus: scrape every second as job "podsight", evaluate the shipped rules every second ----
  const int prom_port = free_tcp_port();
  write_file(dir + "/prometheus.yml",
             "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
             "rule_files:\n  - " +
                 src +
                 "/deploy/prometheus/podsight.rules.yaml\n"
                 "scrape_configs:\n  - job_name: podsight\n    static_configs:\n"
                 "      - targets: ['127.0.0.1:" +
                 std::to_string(agent.port()) + "']\n");
  Background prom({"/usr/bin/prometheus", "--config.file=" + dir + "/prometheus.yml",
                   "--storage.tsdb.path=" + dir + "/data",
                   "--web.listen-address=127.0.0.1:" + std::to_string(prom_port), "--log.level=warn"},
                  dir + "/prometheus.log");
  Prometheus api(prom_port);

  // --- the workload, running until the end of the test: execs and TCP in the pod's container -------
  Sink sink;
  Sink db_sink(db.pod_ip);
  const int closed_port = free_tcp_port();  // nothing listens: every connect is refused
  Loop execs({&web, nullptr}, []() -> int {
    for (;;) {
      pid_t p = ::fork();
      if (p == 0) {
        char* argv[] = {const_cast<char*>("/bin/true"), nullptr};
        ::execv(argv[0], argv);
        ::_exit(127);
      }
      ::waitpid(p, nullptr, 0);
      nap(20);
    }
  });
  const int sink_port = sink.port();
  const int db_port = db_sink.port();
  const std::string db_ip = db.pod_ip;
  Loop tcp({&web, nullptr}, [sink_port, db_port, db_ip, closed_port] {
    const int held = connect_loopback(sink_port);  // stays open: active connections
    static const char payload[1000] = {};
    for (;;) {
      for (int s : {connect_loopback(sink_port), connect_loopback(db_port, db_ip.c_str())}) {
        if (s < 0) continue;
        if (::write(s, payload, sizeof payload) < 0) return 3;
        ::close(s);
      }
      if (int f = connect_loopback(closed_port); f >= 0) ::close(f);
      nap(50);
    }
    return held;
  });
  const std::string target = veth.host_v4();
  Loop packets({nullptr, &ns}, [target]() -> int {
    for (;;) {
      send_udp(target, 9, 5, 200);
      nap(100);
    }
  });

  // --- wait for enough scrapes: a 10 s rate window needs samples across it --------------------------
  bool scraped = false;
  for (int i = 0; i < 600 && !scraped; ++i) {
    auto a = api.api("query?query=" + url_encode(R"(count_over_time(up{job="podsight"}[1m]))"));
    scraped = a["status"] == "success" && !a["data"]["result"].empty() &&
              std::stod(a["data"]["result"][0]["value"][1].get<std::string>()) >= 12;
    if (!scraped) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(scraped) << "Prometheus did not scrape the agent 12 times:\n" << prom.log();
  auto up = api.api("query?query=" + url_encode(R"(up{job="podsight"})"));
  ASSERT_EQ(up["data"]["result"][0]["value"][1], "1") << up.dump();

  // --- dashboards: all of it, then the test's pod as a user picks it --------------------------------
  Checker check{api, exposed_families(agent.get("/metrics").body), documented_metrics(src),
                static_cast<double>(std::time(nullptr))};
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(src + "/deploy/grafana")) {
    if (e.path().extension() == ".json") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  ASSERT_GE(files.size(), 2u) << "expected the node and workload dashboards in deploy/grafana";
  const std::map<std::string, std::string> the_pod = {{"namespace", pod.namespace_}, {"pod", pod.name}};
  std::size_t pod_views = 0;
  for (const auto& file : files) {
    json d = json::parse(read_file(file.string()));
    const std::string name = d.value("title", file.filename().string());
    check.dashboard(d, name, {});
    bool per_pod = false;
    for (const auto& v : d["templating"]["list"]) per_pod |= the_pod.contains(v.value("name", ""));
    if (!per_pod) continue;
    ++pod_views;
    check.dashboard(d, name + " (namespace=" + pod.namespace_ + ", pod=" + pod.name + ")", the_pod);
  }
  EXPECT_GE(pod_views, 1u) << "no dashboard has namespace/pod variables";
  // The remote panels' data names the pod called, not only `local`: the labels they group by are real.
  auto called =
      api.api("query?query=" + url_encode("sum(podsight_tcp_remote_sent_bytes_total{namespace=\"" +
                                          pod.namespace_ + "\", remote=\"pod\", remote_namespace=\"" +
                                          db.namespace_ + "\", remote_pod=\"" + db.name + "\"}) > 0"));
  EXPECT_TRUE(called["status"] == "success" && has_data(called)) << called.dump();

  // --- alerts: Prometheus evaluated every rule without error; each expression runs ------------------
  json rules;
  bool evaluated = false;
  for (int i = 0; i < 100 && !evaluated; ++i) {
    rules = api.api("rules");
    evaluated = rules["status"] == "success" && !rules["data"]["groups"].empty();
    for (const auto& g : rules["data"]["groups"]) {
      for (const auto& r : g["rules"]) evaluated = evaluated && r.value("health", "") != "unknown";
    }
    if (!evaluated) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(evaluated) << rules.dump();
  std::size_t alerts = 0;
  for (const auto& g : rules["data"]["groups"]) {
    for (const auto& r : g["rules"]) {
      ++alerts;
      const std::string where = "rule " + r.value("name", "?");
      const std::string expr = r["query"];
      if (r["health"] != "ok")
        check.failures.push_back(where + ": health " + r["health"].dump() + " " + r.value("lastError", ""));
      auto answer = api.api("query?query=" + url_encode(expr));
      if (answer["status"] != "success")
        check.failures.push_back(where + ": " + answer.value("error", answer.dump()));
      for (const auto& u : unknown_metrics(expr, check.exposed, check.documented))
        check.failures.push_back(where + ": metric " + u + " is neither exposed nor documented");
      // The agent is healthy: none of its own alerts may even be pending.
      if (g["name"] == "podsight.agent" && r.value("state", "") != "inactive") {
        check.failures.push_back(where + " is " + r.value("state", "?") + " against a healthy agent");
      }
    }
  }
  EXPECT_GE(alerts, 10u);

  std::printf("[ summary  ] %zu panel queries, %zu rules, %zu failures\n", check.checked, alerts,
              check.failures.size());
  for (const auto& f : check.failures) ADD_FAILURE() << f;
  EXPECT_TRUE(prom.running()) << prom.log();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace podsight::testing
