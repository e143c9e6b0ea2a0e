// Least privilege: the agent does its whole job with exactly the capabilities the helm chart grants,
// and every one of them is needed. The set is read from deploy/kubernetes/podsight.yaml (the chart's
// defaults rendered; tests/packaging keeps it in sync with the chart), never written down here.
#include "integration/support/harness.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <csignal>
#include <filesystem>
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

}  // namespace
}  // namespace podsight::testing
