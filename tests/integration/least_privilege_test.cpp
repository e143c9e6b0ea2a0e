// Least privilege: the agent does its whole job with exactly the capabilities the helm chart grants,
// and every one of them is needed; and it asks the Kubernetes API only for what the chart's
// ClusterRole grants. Both are read from deploy/kubernetes/podsight.yaml (the chart's defaults
// rendered; tests/packaging keeps it in sync with the chart), never written down here.
#include "integration/support/harness.hpp"
#include "support/kube_api.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <optional>
#include <set>
#include <sstream>

namespace podsight::testing {
namespace {

std::size_t indent_of(const std::string& line) { return line.find_first_not_of(' '); }

// The `securityContext.capabilities.add` list of the one container in the rendered manifests. A tiny
// reader for the shape helm renders (block lists, two-space indents); anything else fails the test.
std::vector<std::string> chart_capabilities() {
  std::istringstream in(read_file(std::string(PODSIGHT_SOURCE_DIR) + "/deploy/kubernetes/podsight.yaml"));
  std::vector<std::string> caps;
  int blocks = 0;
  std::size_t caps_indent = std::string::npos;
  std::size_t add_indent = std::string::npos;
  for (std::string line; std::getline(in, line);) {
    const std::size_t ind = indent_of(line);
    if (ind == std::string::npos) continue;
    const std::string body = line.substr(ind);
    if (body == "capabilities:") {
      ++blocks;
      caps_indent = ind;
      add_indent = std::string::npos;
      continue;
    }
    if (caps_indent == std::string::npos) continue;
    if (ind <= caps_indent) {
      caps_indent = add_indent = std::string::npos;
      continue;
    }
    if (body == "add:") {
      add_indent = ind;
    } else if (add_indent != std::string::npos && ind >= add_indent && body.starts_with("- ")) {
      std::string cap = body.substr(2);
      if (cap.size() >= 2 && cap.front() == '"' && cap.back() == '"') cap = cap.substr(1, cap.size() - 2);
      caps.push_back(cap);
    } else if (add_indent != std::string::npos && ind <= add_indent) {
      add_indent = std::string::npos;
    }
  }
  EXPECT_EQ(blocks, 1)
      << "expected one container securityContext.capabilities in deploy/kubernetes/podsight.yaml";
  return caps;
}

// One rule of a ClusterRole: API groups, resources and verbs ("*" matches any).
struct RbacRule {
  std::vector<std::string> groups;
  std::vector<std::string> resources;
  std::vector<std::string> verbs;
};

// The rules of the one ClusterRole in the rendered manifests, in the shape helm renders them
// (`- apiGroups: [""]`, then `resources:` and `verbs:` as quoted flow lists); anything else fails.
std::vector<RbacRule> chart_cluster_role_rules() {
  std::istringstream in(read_file(std::string(PODSIGHT_SOURCE_DIR) + "/deploy/kubernetes/podsight.yaml"));
  std::vector<RbacRule> rules;
  int roles = 0;
  bool in_role = false;
  bool in_rules = false;
  for (std::string line; std::getline(in, line);) {
    if (line == "---") in_role = in_rules = false;
    if (line == "kind: ClusterRole") {
      in_role = true;
      ++roles;
    }
    if (!in_role) continue;
    if (line == "rules:") {
      in_rules = true;
      continue;
    }
    if (!in_rules) continue;
    if (indent_of(line) == 0) {
      in_rules = false;
      continue;
    }
    std::string body = line.substr(indent_of(line));
    if (body.starts_with("- ")) {
      rules.emplace_back();
      body = body.substr(2);
    }
    const auto colon = body.find(": ");
    if (rules.empty() || colon == std::string::npos) {
      ADD_FAILURE() << "unexpected line in the ClusterRole's rules: " << line;
      continue;
    }
    const std::string key = body.substr(0, colon);
    std::vector<std::string> values;
    try {
      values = nlohmann::json::parse(body.substr(colon + 2)).get<std::vector<std::string>>();
    } catch (const nlohmann::json::exception& e) {
      ADD_FAILURE() << "not a quoted flow list in the ClusterRole's rules: " << line << " (" << e.what()
                    << ")";
    }
    if (key == "apiGroups") {
      rules.back().groups = values;
    } else if (key == "resources") {
      rules.back().resources = values;
    } else if (key == "verbs") {
      rules.back().verbs = values;
    } else {
      ADD_FAILURE() << "unexpected key in the ClusterRole's rules: " << line;
    }
  }
  EXPECT_EQ(roles, 1) << "expected one ClusterRole in deploy/kubernetes/podsight.yaml";
  return rules;
}

// What RBAC decides on for a request, as the API server's RequestInfo derives it from a resource
// path (/api/v1/..., /apis/GROUP/VERSION/..., namespaced or not). nullopt: not a resource request.
struct ApiAccess {
  std::string group;
  std::string resource;  // with "/subresource"
  std::string verb;
};
std::optional<ApiAccess> rbac_access(const FakeKubeApi::Request& r) {
  std::vector<std::string> parts;
  std::istringstream path(r.path);
  for (std::string p; std::getline(path, p, '/');) {
    if (!p.empty()) parts.push_back(p);
  }
  ApiAccess a;
  std::size_t i = 0;
  if (parts.size() >= 2 && parts[0] == "api") {
    i = 2;
  } else if (parts.size() >= 3 && parts[0] == "apis") {
    a.group = parts[1];
    i = 3;
  } else {
    return std::nullopt;
  }
  if (parts.size() >= i + 3 && parts[i] == "namespaces") i += 2;  // a namespaced resource
  if (i >= parts.size()) return std::nullopt;
  a.resource = parts[i];
  const bool named = parts.size() > i + 1;
  if (parts.size() > i + 2) a.resource += "/" + parts[i + 2];
  const auto w = r.params.find("watch");
  const bool watch = w != r.params.end() && (w->second == "1" || w->second == "true");
  if (r.method == "GET") {
    a.verb = watch ? "watch" : named ? "get" : "list";
  } else if (r.method == "POST") {
    a.verb = "create";
  } else if (r.method == "PUT") {
    a.verb = "update";
  } else if (r.method == "PATCH") {
    a.verb = "patch";
  } else if (r.method == "DELETE") {
    a.verb = named ? "delete" : "deletecollection";
  } else {
    return std::nullopt;
  }
  return a;
}

bool allows(const std::vector<RbacRule>& rules, const ApiAccess& a) {
  auto has = [](const std::vector<std::string>& v, const std::string& x) {
    return std::find(v.begin(), v.end(), x) != v.end() || std::find(v.begin(), v.end(), "*") != v.end();
  };
  return std::any_of(rules.begin(), rules.end(), [&](const RbacRule& r) {
    return has(r.groups, a.group) && has(r.resources, a.resource) && has(r.verbs, a.verb);
  });
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ",") + s;
  return out;
}

CommandResult check_with(const std::string& caps) {
  auto argv = with_only_capabilities(caps);
  argv.insert(argv.end(), {PODSIGHT_AGENT_BINARY, "--check", "--log-level", "error"});
  return run_command(argv);
}

class LeastPrivilege : public ::testing::Test {
 protected:
  void SetUp() override {
    PODSIGHT_REQUIRE_PRIVILEGES();
    ensure_kernel_mounts();
    caps_ = chart_capabilities();
    ASSERT_FALSE(caps_.empty()) << "no capabilities found in deploy/kubernetes/podsight.yaml";
  }
  std::vector<std::string> caps_;
};

// Every enabled family loads and attaches with the chart's set, and with any one capability fewer
// some family fails: the set is enough, and none of it is spare.
TEST_F(LeastPrivilege, TheChartSetIsEnoughAndEveryCapabilityInItIsNeeded) {
  auto full = check_with(join(caps_));
  EXPECT_EQ(full.exit_code, 0) << "with " << join(caps_) << ":\n" << full.out;
  for (std::size_t i = 0; i < caps_.size(); ++i) {
    auto fewer = caps_;
    fewer.erase(fewer.begin() + static_cast<std::ptrdiff_t>(i));
    auto r = check_with(join(fewer));
    EXPECT_EQ(r.exit_code, 1) << "CAP_" << caps_[i]
                              << " is granted by the chart but --check passes without it:\n"
                              << r.out;
    EXPECT_NE(r.out.find("program "), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("FAIL"), std::string::npos) << r.out;
  }
}

// The running agent with only the chart's set: exactly those capabilities in effect, ready, every
// family attached, exact counts with the cgroup resolved (by a tree walk: no CAP_DAC_READ_SEARCH for
// open_by_handle_at), a valid scrape, and a clean exit that leaves nothing attached.
TEST_F(LeastPrivilege, AgentCountsExactlyWithOnlyTheChartSet) {
  AgentProcess agent("{}", {}, join(caps_));
  ASSERT_TRUE(agent.wait_serving()) << agent.logs();
  const auto effective = effective_capabilities(agent.pid());
  EXPECT_EQ(effective, std::set<std::string>(caps_.begin(), caps_.end()));

  auto ready = agent.get("/readyz");
  ASSERT_EQ(ready.status, 200) << ready.body;
  auto doc = nlohmann::json::parse(ready.body);
  EXPECT_EQ(doc["status"], "ready") << ready.body;
  for (const auto& f : doc["families"]) {
    EXPECT_TRUE(f["state"] == "attached" || f["state"] == "disabled") << f.dump();
  }

  const std::string dir = make_temp_dir("podsight-lp");
  const std::string comm = "lpx" + random_suffix(9);
  const std::string binary = make_named_true(dir, comm);
  TestCgroup cg;
  constexpr int kRuns = 23;
  for (int i = 0; i < kRuns; ++i) ASSERT_EQ(cg.run({binary}), 0);
  auto scrape = agent.scrape();
  EXPECT_EQ(scrape.value("podsight_process_execs_total", {{"cgroup", cg.relative()}, {"comm", comm}}), kRuns)
      << scrape.text();
  EXPECT_EQ(promtool_problems(scrape.text()), "");

  const auto held = bpf_objects_held_by(agent.pid());
  EXPECT_FALSE(held.empty());
  EXPECT_EQ(agent.stop(SIGTERM, std::chrono::seconds(5)), 0) << agent.logs();
  EXPECT_TRUE(eventually_released(held)) << bpf_objects_alive(held).describe();
  std::filesystem::remove_all(dir);
}

// BPF run-time statistics (config bpf_stats, chart value bpfStats) are the one feature that needs
// CAP_SYS_ADMIN (BPF_ENABLE_STATS); the chart adds it only then. Without it the agent says so and
// carries on; with it the statistics are on.
TEST_F(LeastPrivilege, BpfStatsNeedCapSysAdminAndDegradeGracefullyWithout) {
  {
    AgentProcess agent(R"({"bpf_stats": true, "log": {"level": "info"}})", {}, join(caps_));
    ASSERT_TRUE(agent.wait_serving()) << agent.logs();
    EXPECT_EQ(agent.get("/readyz").status, 200);
    EXPECT_NE(agent.logs().find("cannot enable BPF run-time statistics"), std::string::npos) << agent.logs();
    EXPECT_NE(agent.logs().find("Operation not permitted"), std::string::npos) << agent.logs();
  }
  auto with_admin = caps_;
  with_admin.emplace_back("SYS_ADMIN");
  AgentProcess agent(R"({"bpf_stats": true, "log": {"level": "info"}})", {}, join(with_admin));
  ASSERT_TRUE(agent.wait_serving()) << agent.logs();
  EXPECT_EQ(agent.get("/readyz").status, 200);
  EXPECT_NE(agent.logs().find("BPF run-time statistics enabled"), std::string::npos) << agent.logs();
  EXPECT_EQ(agent.logs().find("cannot enable BPF run-time statistics"), std::string::npos) << agent.logs();
}

// The agent in a pod as the chart runs it (in-cluster, NODE_NAME from the downward API, the chart's
// capabilities) against the test API server, through a first sync, a watch cut and an expired
// watch (410, re-list): every request it makes is one the chart's ClusterRole grants, and every list
// and watch is limited to its own node (RBAC cannot say that; the field selector does).
TEST_F(LeastPrivilege, TheAgentAsksTheApiOnlyForWhatTheChartsClusterRoleGrants) {
  const auto rules = chart_cluster_role_rules();
  ASSERT_FALSE(rules.empty()) << "no ClusterRole rules in deploy/kubernetes/podsight.yaml";
  TestPki pki;
  FakeKubeApi::Options o;
  o.token = "rbac-token";
  o.node = "node-rbac";
  FakeKubeApi api(pki, o);
  const std::string s = random_suffix(4);
  api.upsert(pod_json({"shop", "web-" + s, uuid("rbac" + s), o.node, {{"web", hex_id("rbac-web" + s)}}}));
  const std::string dir = make_temp_dir("podsight-rbac");
  write_file(dir + "/token", o.token + "\n");
  const ScopedEnv env({{"KUBERNETES_SERVICE_HOST", "127.0.0.1"},
                       {"KUBERNETES_SERVICE_PORT", std::to_string(api.port())},
                       {"NODE_NAME", o.node}});
  // The chart's config leaves kubernetes.* at its defaults; only the service-account files are ours.
  AgentProcess agent(
      nlohmann::json{{"kubernetes", {{"token_file", dir + "/token"}, {"ca_file", pki.ca_cert()}}}}.dump(), {},
      join(caps_));
  ASSERT_TRUE(agent.wait_serving()) << agent.logs();
  auto synced = [&] { return kubernetes_synced(agent); };
  ASSERT_TRUE(eventually(synced)) << agent.get("/readyz").body;
  ASSERT_TRUE(eventually([&] { return api.open_watches() == 1; }));
  api.drop_watches();
  ASSERT_TRUE(eventually([&] { return api.count(true) >= 2 && api.open_watches() == 1; }));
  api.compact();
  ASSERT_TRUE(eventually([&] { return api.count(false) >= 2 && api.open_watches() == 1 && synced(); }))
      << agent.logs();

  std::set<std::string> used;
  for (const auto& r : api.requests()) {
    const auto access = rbac_access(r);
    ASSERT_TRUE(access.has_value()) << r.method << " " << r.path << " is not a resource request";
    used.insert(access->verb + " " + access->resource);
    EXPECT_TRUE(allows(rules, *access))
        << r.method << " " << r.path << " needs " << access->verb << " on " << access->resource
        << " (group \"" << access->group << "\"), which the chart's ClusterRole does not grant";
    if (access->verb == "list" || access->verb == "watch") {
      EXPECT_EQ(r.params.count("fieldSelector") ? r.params.at("fieldSelector") : "",
                "spec.nodeName=" + o.node)
          << r.method << " " << r.path;
    }
  }
  EXPECT_TRUE(used.contains("list pods") && used.contains("watch pods"))
      << "the agent never listed and watched pods";
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace podsight::testing
