// The shipped dashboards and alerts against a real Prometheus (Debian's `prometheus`) that scrapes the
// running agent on loopback while a workload runs: every PromQL expression of every panel in
// deploy/grafana/*.json (template variables resolved as Grafana would) and every rule of
// deploy/prometheus/podsight.rules.yaml must evaluate, and every panel must return data. New panels
// and rules are covered without touching this file.
//
// Panels on metric families that this build does not have yet (kPending) are reported, not failed;
// a pending prefix stops counting as soon as the agent exposes any metric under it.
#include "integration/support/harness.hpp"
#include "integration/support/net.hpp"

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

#include <atomic>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <regex>
#include <sstream>
#include <thread>

namespace podsight::testing {
namespace {

using nlohmann::json;

// Metric name prefixes of program families that are not in every build yet, and where they come from.
const std::vector<std::pair<std::string, std::string>> kPending = {
    {"podsight_pod_info", "Kubernetes identity, issue 4"},
    {"podsight_kubernetes_", "Kubernetes identity, issue 4"},
    {"podsight_series_dropped_total", "cardinality budget, issue 4"},
};

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

// Accepts TCP connections on 127.0.0.1 and reads them to the end, on a thread of the test process.
class Sink {
 public:
  Sink() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
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

int connect_loopback(int port) {
  int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
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

// Why an expression may lack data in this build: every metric it names is exposed or documented,
// or pending with nothing of its prefix exposed. Names that are none of these are failures.
struct Verdict {
  std::vector<std::string> pending;  // e.g. "podsight_xdp_bytes_total (xdp family, issue 3)"
  std::vector<std::string> unknown;  // neither exposed nor pending: a typo or a renamed metric
};
Verdict judge(const std::string& expr, const std::set<std::string>& exposed,
              const std::set<std::string>& documented) {
  Verdict v;
  for (const auto& name : metric_names(expr)) {
    if (exposed.contains(name) || documented.contains(name)) continue;
    bool is_pending = false;
    for (const auto& [prefix, why] : kPending) {
      if (!name.starts_with(prefix)) continue;
      bool any = false;
      for (const auto& e : exposed) any |= e.starts_with(prefix);
      if (!any) {
        v.pending.push_back(name + " (" + why + ")");
        is_pending = true;
      }
    }
    if (!is_pending) v.unknown.push_back(name);
  }
  return v;
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

// The fragments of agent config that turn each family on for this workload; a fragment the agent
// rejects as an unknown key belongs to a family this build does not have, and is left out.
std::string agent_config(const std::string& veth) {
  json cfg = {{"bpf_stats", true}, {"log", {{"level", "info"}}}};
  const std::vector<json> fragments = {
      {{"programs", {{"tcp", {{"enabled", true}}}}}},
      {{"programs", {{"cgroup_skb", {{"enabled", true}}}}}},
      {{"programs", {{"xdp", {{"enabled", true}, {"interfaces", {veth}}}}}}},
  };
  const std::string dir = make_temp_dir("podsight-dash-cfg");
  for (const auto& f : fragments) {
    json candidate = cfg;
    candidate.merge_patch(f);
    write_file(dir + "/c.json", candidate.dump());
    auto r = run_command({PODSIGHT_AGENT_BINARY, "--validate-config", "--config", dir + "/c.json"});
    if (r.exit_code == 0) {
      cfg = candidate;
    } else {
      const std::string family = f["programs"].begin().key();
      EXPECT_NE(r.out.find("programs." + family + ": unknown key"), std::string::npos)
          << "the agent rejects the " << family
          << " settings for another reason than not having the family:\n"
          << r.out;
      std::printf("[ pending  ] family %s is not in this build\n", family.c_str());
    }
  }
  std::filesystem::remove_all(dir);
  return cfg.dump();
}

TEST(Dashboards, EveryPanelAndAlertWorksAgainstARealPrometheusScrapingTheAgent) {
  PODSIGHT_REQUIRE_PRIVILEGES();
  ensure_kernel_mounts();
  if (::access("/usr/bin/prometheus", X_OK) != 0) {
    if (in_ci()) FAIL() << "CI=true and /usr/bin/prometheus is missing (scripts/deps.sh installs it)";
    GTEST_SKIP() << "no /usr/bin/prometheus";
  }
  const std::string src = PODSIGHT_SOURCE_DIR;

  // --- the workload's places: a cgroup per role, a namespace with a veth for XDP ---------------------
  NetNs ns;
  Veth veth(ns);
  TestCgroup exec_cg("podsight-dash-exec");
  TestCgroup tcp_cg("podsight-dash-tcp");

  AgentProcess agent(agent_config(veth.host_if()));
  ASSERT_TRUE(agent.wait_serving()) << agent.logs();
  ASSERT_EQ(agent.get("/readyz").status, 200) << agent.get("/readyz").body;

  // --- Prometheus: scrape every second as job "podsight", evaluate the shipped rules every second ----
  const std::string dir = make_temp_dir("podsight-prom");
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

  // --- the workload, running until the end of the test ----------------------------------------------
  Sink sink;
  const int closed_port = free_tcp_port();  // nothing listens: every connect is refused
  Loop execs({&exec_cg, nullptr}, []() -> int {
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
  Loop tcp({&tcp_cg, nullptr}, [sink_port, closed_port] {
    const int held = connect_loopback(sink_port);  // stays open: active connections
    static const char payload[1000] = {};
    for (;;) {
      int s = connect_loopback(sink_port);
      if (s >= 0) {
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
  const auto exposed = exposed_families(agent.get("/metrics").body);
  const auto documented = documented_metrics(src);

  // --- dashboards ---------------------------------------------------------------------------------
  std::vector<std::string> failures;
  std::size_t checked = 0;
  std::size_t pending = 0;
  const double now = static_cast<double>(std::time(nullptr));
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(src + "/deploy/grafana")) {
    if (e.path().extension() == ".json") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  ASSERT_GE(files.size(), 2u) << "expected the node and workload dashboards in deploy/grafana";
  for (const auto& file : files) {
    json d = json::parse(read_file(file.string()));
    const std::string name = d.value("title", file.filename().string());
    // Template variables, in order (later ones may use earlier ones), as Grafana resolves them.
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
      if (v.value("includeAll", false)) {
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
      const auto verdict = judge(expr, exposed, documented);
      for (const auto& u : verdict.unknown)
        failures.push_back(t.where + ": metric " + u + " is neither exposed nor documented");
      if (has_data(answer)) {
        std::printf("[ data     ] %s\n", t.where.c_str());
      } else if (!verdict.pending.empty() && verdict.unknown.empty()) {
        ++pending;
        std::printf("[ pending  ] %s: no data, family not in this build: %s\n", t.where.c_str(),
                    verdict.pending.front().c_str());
      } else {
        failures.push_back(t.where + ": no data\n      " + expr);
      }
    }
  }

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
        failures.push_back(where + ": health " + r["health"].dump() + " " + r.value("lastError", ""));
      auto answer = api.api("query?query=" + url_encode(expr));
      if (answer["status"] != "success")
        failures.push_back(where + ": " + answer.value("error", answer.dump()));
      const auto verdict = judge(expr, exposed, documented);
      for (const auto& u : verdict.unknown)
        failures.push_back(where + ": metric " + u + " is neither exposed nor documented");
      for (const auto& p : verdict.pending) std::printf("[ pending  ] %s: %s\n", where.c_str(), p.c_str());
      // The agent is healthy: none of its own alerts may even be pending.
      if (g["name"] == "podsight.agent" && r.value("state", "") != "inactive") {
        failures.push_back(where + " is " + r.value("state", "?") + " against a healthy agent");
      }
    }
  }
  EXPECT_GE(alerts, 10u);

  std::printf("[ summary  ] %zu panel queries (%zu pending), %zu rules, %zu failures\n", checked, pending,
              alerts, failures.size());
  for (const auto& f : failures) ADD_FAILURE() << f;
  EXPECT_TRUE(prom.running()) << prom.log();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace podsight::testing
