// A node without tracefs: the agent runs in a mount namespace of its own where tracefs is covered by an
// empty tmpfs. No family needs it: the variants for kernels without BTF attach raw tracepoints (never
// perf-attached classic ones, which the kernel skips silently while another BPF program runs on the
// CPU), so every family attaches and counts exactly.
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

TEST(Faults, NoFamilyNeedsTracefs) {
  PODSIGHT_REQUIRE_PRIVILEGES();
  ensure_kernel_mounts();
  // The variants that do without BTF, forced: both attach raw tracepoints, found by name in the kernel.
  AgentProcess agent(
      R"({"log": {"level": "info"}, "programs": {"exec": {"variant": "tracepoint"}, "tcp": {"variant": "tracepoint"}}})",
      {}, std::nullopt, without_tracefs());
  ASSERT_TRUE(agent.wait_serving()) << agent.logs();

  auto ready = agent.get("/readyz");
  EXPECT_EQ(ready.status, 200) << ready.body;
  const auto doc = nlohmann::json::parse(ready.body);
  std::map<std::string, std::string> variants;
  for (const auto& f : doc["families"]) {
    if (f["name"] == "xdp") {
      EXPECT_NE(f["state"], "failed") << f.dump();  // attached, or degraded by the host's interfaces
    } else {
      EXPECT_EQ(f["state"], "attached") << f.dump();
      variants[f["name"].get<std::string>()] = f["variant"].get<std::string>();
    }
  }
  EXPECT_EQ(variants["exec"], "tracepoint") << ready.body;
  EXPECT_EQ(variants["tcp"], "tracepoint") << ready.body;
  EXPECT_TRUE(variants.count("cgroup_skb")) << ready.body;

  // Execs and datagrams from a cgroup of ours are counted exactly (egress: 28 header bytes each).
  TestCgroup cg("psk-fault");
  const std::string dir = make_temp_dir("podsight-fault");
  const std::string comm = "flt" + random_suffix(9);
  const std::string binary = make_named_true(dir, comm);
  constexpr int kExecs = 3;
  for (int i = 0; i < kExecs; ++i) ASSERT_EQ(cg.run({binary}), 0);
  constexpr int kDatagrams = 17;
  constexpr std::size_t kPayload = 200;
  const int port = free_tcp_port();
  ASSERT_EQ(run_in({&cg, nullptr}, [&] { return send_udp("127.0.0.1", port, kDatagrams, kPayload); }), 0);

  const std::string text = agent.get("/metrics").body;
  Scrape s(text);
  EXPECT_EQ(s.value("podsight_process_execs_total", {{"cgroup", cg.relative()}, {"comm", comm}}), kExecs);
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
