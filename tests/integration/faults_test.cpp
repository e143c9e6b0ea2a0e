// One program family whose kernel attach point is missing: the agent runs in a mount namespace of its
// own where tracefs is covered by an empty tmpfs, so the classic tracepoint sched/sched_process_exec
// cannot be found, and the exec family is forced onto its tracepoint variant. Its programs load, the
// attach fails: exec is failed with the reason (in /readyz, the log and podsight_program_state), and the
// families that do not need tracefs attach and count exactly.
//
// A verifier rejection takes the same path one step earlier (the skeleton's load returns the error
// instead of the attach; see docs/reliability.md): the family's state, /readyz and the other families
// behave as here.
#include "integration/support/harness.hpp"
#include "integration/support/net.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace podsight::testing {
namespace {

// Runs the rest of the command line with tracefs hidden: empty tmpfs mounts over both places libbpf
// and the agent look (/sys/kernel/tracing, and /sys/kernel/debug whose tracing directory would
// otherwise mount tracefs again on first access). Private mounts: the host's view is untouched.
std::vector<std::string> without_tracefs() {
  return {"unshare",
          "--mount",
          "--propagation",
          "private",
          "--",
          "sh",
          "-ec",
          "mount -t tmpfs podsight-no-tracefs /sys/kernel/tracing; "
          "mount -t tmpfs podsight-no-tracefs /sys/kernel/debug; exec \"$@\"",
          "sh"};
}

TEST(Faults, MissingTracepointFailsItsFamilyAloneAndTheOthersCount) {
  PODSIGHT_REQUIRE_PRIVILEGES();
  ensure_kernel_mounts();
  // tcp's "tracepoint" variant attaches raw tracepoints, which need no tracefs: it must still work.
  AgentProcess agent(
      R"({"log": {"level": "info"}, "programs": {"exec": {"variant": "tracepoint"}, "tcp": {"variant": "tracepoint"}}})",
      {}, std::nullopt, without_tracefs());
  ASSERT_TRUE(agent.wait_serving()) << agent.logs();

  auto ready = agent.get("/readyz");
  EXPECT_EQ(ready.status, 503) << ready.body;
  const auto doc = nlohmann::json::parse(ready.body);
  EXPECT_EQ(doc["status"], "not_ready");
  bool exec_seen = false;
  for (const auto& f : doc["families"]) {
    if (f["name"] == "exec") {
      exec_seen = true;
      EXPECT_EQ(f["state"], "failed") << f.dump();
      EXPECT_NE(f["error"].get<std::string>().find("attach tracepoint sched/sched_process_exec"),
                std::string::npos)
          << f.dump();
    } else if (f["name"] == "tcp" || f["name"] == "cgroup_skb") {
      EXPECT_EQ(f["state"], "attached") << f.dump();
      if (f["name"] == "tcp") EXPECT_EQ(f["variant"], "tracepoint") << f.dump();
    } else {
      EXPECT_NE(f["state"], "failed") << f.dump();  // xdp: attached or degraded by the host's interfaces
    }
  }
  EXPECT_TRUE(exec_seen) << ready.body;
  EXPECT_NE(agent.logs().find(R"("msg":"program family failed","program":"exec")"), std::string::npos)
      << agent.logs();

  // Execs are not counted; datagrams sent from a cgroup are, exactly (egress: 28 header bytes each).
  TestCgroup cg("psk-fault");
  const std::string dir = make_temp_dir("podsight-fault");
  const std::string comm = "flt" + random_suffix(9);
  const std::string binary = make_named_true(dir, comm);
  for (int i = 0; i < 3; ++i) ASSERT_EQ(cg.run({binary}), 0);
  constexpr int kDatagrams = 17;
  constexpr std::size_t kPayload = 200;
  const int port = free_tcp_port();
  ASSERT_EQ(run_in({&cg, nullptr}, [&] { return send_udp("127.0.0.1", port, kDatagrams, kPayload); }), 0);

  const std::string text = agent.get("/metrics").body;
  Scrape s(text);
  EXPECT_EQ(s.value("podsight_program_state", {{"program", "exec"}, {"state", "failed"}}), 1);
  EXPECT_EQ(s.value("podsight_program_attached", {{"program", "exec"}}), 0);
  EXPECT_EQ(s.value("podsight_program_state", {{"program", "cgroup_skb"}, {"state", "attached"}}), 1);
  EXPECT_EQ(s.value("podsight_program_state", {{"program", "tcp"}, {"state", "attached"}}), 1);
  EXPECT_EQ(s.count("podsight_process_execs_total"), 0u);
  const std::map<std::string, std::string> egress{{"cgroup", cg.relative()}, {"direction", "egress"}};
  EXPECT_EQ(s.value("podsight_network_packets_total", egress), kDatagrams);
  EXPECT_EQ(s.value("podsight_network_bytes_total", egress), kDatagrams * (20 + 8 + kPayload));
  EXPECT_EQ(promtool_problems(text), "");
  EXPECT_EQ(undocumented_metrics(text), std::vector<std::string>{});
  // The host's tracefs was never touched.
  EXPECT_TRUE(std::filesystem::exists("/sys/kernel/tracing/events/sched/sched_process_exec/id"));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace podsight::testing
