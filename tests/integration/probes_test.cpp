// The DaemonSet's probes against the agent's behaviour: the startup, liveness and readiness probes of
// the chart (read from deploy/kubernetes/podsight.yaml) hit the endpoints whose answers are checked
// here in the situations docs/operations.md ("Health") and NOTES.txt describe. Liveness never fails
// for a failed family or an unreachable API server (a restart would not help; it would crash-loop);
// readiness is 200 "degraded" while the API server is unreachable and 503 while an enabled family
// has failed or the Kubernetes settings cannot work, and the other families keep counting.
#include "integration/support/harness.hpp"
#include "support/kube_api.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <sstream>

namespace podsight::testing {
namespace {

// probe name ("startupProbe", ...) -> httpGet path, for the one container in the rendered manifests.
std::map<std::string, std::string> chart_probes() {
  std::istringstream in(read_file(std::string(PODSIGHT_SOURCE_DIR) + "/deploy/kubernetes/podsight.yaml"));
  std::map<std::string, std::string> paths;
  std::string probe;
  for (std::string line; std::getline(in, line);) {
    const auto ind = line.find_first_not_of(' ');
    if (ind == std::string::npos) continue;
    const std::string body = line.substr(ind);
    if (body.ends_with("Probe:")) {
      probe = body.substr(0, body.size() - 1);
    } else if (!probe.empty() && body.starts_with("path: ")) {
      paths[probe] = body.substr(6);
      probe.clear();
    }
  }
  return paths;
}

class Probes : public ::testing::Test {
 protected:
  void SetUp() override {
    PODSIGHT_REQUIRE_PRIVILEGES();
    ensure_kernel_mounts();
    const auto p = chart_probes();
    ASSERT_EQ(p.size(), 3u)
        << "expected startup, liveness and readiness probes in deploy/kubernetes/podsight.yaml";
    startup_ = p.at("startupProbe");
    liveness_ = p.at("livenessProbe");
    readiness_ = p.at("readinessProbe");
    dir_ = make_temp_dir("podsight-probes");
    write_file(dir_ + "/token", "probe-token\n");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // The agent in a pod: the chart's defaults (in-cluster from KUBERNETES_SERVICE_HOST/PORT), with our
  // service-account files.
  std::string in_cluster(const TestPki& pki) const {
    return nlohmann::json{{"kubernetes", {{"token_file", dir_ + "/token"}, {"ca_file", pki.ca_cert()}}}}
        .dump();
  }

  // Startup and liveness succeed; readiness answers `code` with `status`. Returns /readyz's body.
  nlohmann::json expect_probes(AgentProcess& agent, int code, const std::string& status) const {
    EXPECT_EQ(agent.get(startup_).status, 200) << startup_;
    EXPECT_EQ(agent.get(liveness_).status, 200) << liveness_;
    const auto ready = agent.get(readiness_);
    EXPECT_EQ(ready.status, code) << ready.body;
    auto doc = nlohmann::json::parse(ready.body);
    EXPECT_EQ(doc["status"], status) << ready.body;
    return doc;
  }

  std::string startup_, liveness_, readiness_, dir_;
};

TEST_F(Probes, ReadyWhenEveryFamilyIsAttachedAndPodsAreInSync) {
  TestPki pki;
  FakeKubeApi::Options o;
  o.token = "probe-token";
  o.node = "node-probes";
  FakeKubeApi api(pki, o);
  const ScopedEnv env({{"KUBERNETES_SERVICE_HOST", "127.0.0.1"},
                       {"KUBERNETES_SERVICE_PORT", std::to_string(api.port())},
                       {"NODE_NAME", o.node}});
  AgentProcess agent(in_cluster(pki));
  ASSERT_TRUE(agent.wait_serving()) << agent.logs();
  ASSERT_TRUE(eventually([&] { return kubernetes_synced(agent); })) << agent.get(readiness_).body;
  const auto doc = expect_probes(agent, 200, "ready");
  EXPECT_EQ(doc["kubernetes"]["state"], "synced");
  EXPECT_NE(agent.logs().find(R"("msg":"in sync with the Kubernetes API","resource":"pods")"), std::string::npos)
      << agent.logs();
}

TEST_F(Probes, AnUnreachableApiServerIsDegradedButReadyAndAlive) {
  TestPki pki;
  const ScopedEnv env({{"KUBERNETES_SERVICE_HOST", "127.0.0.1"},
                       {"KUBERNETES_SERVICE_PORT", std::to_string(free_tcp_port())},
                       {"NODE_NAME", "node-probes"}});
  AgentProcess agent(in_cluster(pki));
  ASSERT_TRUE(agent.wait_serving()) << agent.logs();
  // Retried, and still the same answers: it stays this way, it does not turn into a restart.
  ASSERT_TRUE(eventually([&] {
    return agent.scrape().value("podsight_kubernetes_errors_total", {{"reason", "connect"}}).value_or(0) >= 2;
  }));
  const auto doc = expect_probes(agent, 200, "degraded");
  EXPECT_EQ(doc["kubernetes"]["state"], "connecting");
  for (const auto& f : doc["families"]) EXPECT_NE(f["state"], "failed") << f.dump();
  EXPECT_NE(agent.logs().find(R"("msg":"Kubernetes API request failed","reason":"connect")"),
            std::string::npos)
      << agent.logs();
}

// A family that cannot attach (cgroup_skb without CAP_NET_ADMIN, as a hand-edited manifest might run
// it): not ready, alive, and the others count exactly.
TEST_F(Probes, AFailedFamilyIsNotReadyButAliveAndTheOthersCount) {
  AgentProcess agent(R"({"log": {"level": "info"}})", {}, "BPF,PERFMON");
  ASSERT_TRUE(agent.wait_serving()) << agent.logs();
  const auto doc = expect_probes(agent, 503, "not_ready");
  bool cgroup_skb_failed = false;
  for (const auto& f : doc["families"]) {
    if (f["name"] == "cgroup_skb") cgroup_skb_failed = f["state"] == "failed";
    if (f["name"] == "exec") EXPECT_EQ(f["state"], "attached") << f.dump();
  }
  EXPECT_TRUE(cgroup_skb_failed) << doc.dump();
  EXPECT_NE(agent.logs().find(R"("msg":"program family failed","program":"cgroup_skb")"), std::string::npos)
      << agent.logs();
  const std::string comm = "prb" + random_suffix(9);
  const std::string binary = make_named_true(dir_, comm);
  TestCgroup cg;
  for (int i = 0; i < 4; ++i) ASSERT_EQ(cg.run({binary}), 0);
  auto scrape = agent.scrape();
  EXPECT_EQ(scrape.value("podsight_process_execs_total", {{"cgroup", cg.relative()}, {"comm", comm}}), 4);
  EXPECT_EQ(scrape.value("podsight_program_attached", {{"program", "cgroup_skb"}}), 0);
}

// Kubernetes settings that cannot work (in-cluster, but not in a pod): not ready, alive.
TEST_F(Probes, KubernetesSettingsThatCannotWorkAreNotReadyButAlive) {
  ::unsetenv("KUBERNETES_SERVICE_HOST");
  AgentProcess agent(R"({"kubernetes": {"source": "in_cluster", "node_name": "node-probes"}})");
  ASSERT_TRUE(agent.wait_serving()) << agent.logs();
  const auto doc = expect_probes(agent, 503, "not_ready");
  EXPECT_EQ(doc["kubernetes"]["state"], "failed");
  EXPECT_NE(doc["kubernetes"]["error"].get<std::string>().find("KUBERNETES_SERVICE_HOST"), std::string::npos)
      << doc.dump();
  EXPECT_NE(agent.logs().find("Kubernetes metadata configuration failed"), std::string::npos) << agent.logs();
}

}  // namespace
}  // namespace podsight::testing
