// exec family against the real kernel: run a program exactly N times in a fresh cgroup and find exactly
// N in the scrape, for every variant; hostile comms keep the exposition valid.
#include "integration/support/harness.hpp"

#include <gtest/gtest.h>

#include <filesystem>

namespace podsight::testing {
namespace {

class ExecVariant : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    PODSIGHT_REQUIRE_PRIVILEGES();
    ensure_kernel_mounts();
  }
};

TEST_P(ExecVariant, CountsExactlyPerCgroupAndComm) {
  AgentProcess agent(R"({"programs": {"exec": {"variant": ")" + GetParam() + R"("}}})");
  ASSERT_TRUE(agent.wait_serving()) << agent.logs();
  auto ready = agent.get("/readyz");
  ASSERT_EQ(ready.status, 200) << ready.body;
  EXPECT_NE(ready.body.find("\"variant\":\"" + GetParam() + "\""), std::string::npos) << ready.body;

  const std::string dir = make_temp_dir("podsight-exec");
  const std::string comm = "psx" + random_suffix(9);  // 12 chars: fits the 15-char comm
  const std::string binary = make_named_true(dir, comm);
  TestCgroup cg;
  constexpr int kRuns = 37;
  for (int i = 0; i < kRuns; ++i) ASSERT_EQ(cg.run({binary}), 0);

  auto scrape = agent.scrape();
  auto v = scrape.value("podsight_process_execs_total", {{"cgroup", cg.relative()}, {"comm", comm}});
  ASSERT_TRUE(v.has_value()) << "no series for " << cg.relative() << " " << comm;
  EXPECT_EQ(*v, kRuns);
  // A cgroup outside any pod: the workload labels are present and empty (docs/metrics.md).
  auto series = scrape.series();
  for (const auto& s : series) {
    if (s.name == "podsight_process_execs_total" && s.labels.at("comm") == comm) {
      EXPECT_EQ(s.labels.at("namespace"), "");
      EXPECT_EQ(s.labels.at("pod"), "");
      EXPECT_EQ(s.labels.at("container"), "");
    }
  }
  EXPECT_EQ(scrape.value("podsight_program_attached", {{"program", "exec"}, {"variant", GetParam()}}), 1);
  EXPECT_EQ(promtool_problems(scrape.text()), "");

  // More runs later are counted on top: the counter is read from the kernel at each scrape.
  for (int i = 0; i < 5; ++i) ASSERT_EQ(cg.run({binary}), 0);
  EXPECT_EQ(agent.scrape().value("podsight_process_execs_total", {{"cgroup", cg.relative()}, {"comm", comm}}),
            kRuns + 5);
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Variants, ExecVariant, ::testing::Values("tp_btf", "tracepoint"));

TEST(Exec, HostileCommsKeepTheScrapeValid) {
  PODSIGHT_REQUIRE_PRIVILEGES();
  ensure_kernel_mounts();
  AgentProcess agent;
  ASSERT_TRUE(agent.wait_serving()) << agent.logs();
  const std::string dir = make_temp_dir("podsight-hostile");
  // Quotes, backslash, newline, tab, and bytes that are not UTF-8: all legal in a Linux file name.
  const std::vector<std::string> names = {"q\"uo\\te", "new\nline", "tab\there", std::string("bad\xff\xfe", 5),
                                          std::string("half\xe2\x82", 6)};
  TestCgroup cg;
  for (const auto& n : names) {
    auto bin = make_named_true(dir, n);
    for (int i = 0; i < 3; ++i) ASSERT_EQ(cg.run({bin}), 0);
  }
  auto text = agent.get("/metrics").body;
  EXPECT_EQ(promtool_problems(text), "");
  Scrape scrape(text);
  EXPECT_EQ(scrape.value("podsight_process_execs_total", {{"cgroup", cg.relative()}, {"comm", "q\"uo\\te"}}), 3);
  EXPECT_EQ(scrape.value("podsight_process_execs_total", {{"cgroup", cg.relative()}, {"comm", "new\nline"}}), 3);
  EXPECT_EQ(scrape.value("podsight_process_execs_total", {{"cgroup", cg.relative()}, {"comm", "bad\\xFF\\xFE"}}), 3);
  EXPECT_EQ(scrape.sum("podsight_process_execs_total", {{"cgroup", cg.relative()}}), 3.0 * names.size());
  // The OpenMetrics encoding of the same data is valid too (promtool reads both).
  auto om = agent.get("/metrics", "application/openmetrics-text;version=1.0.0");
  EXPECT_NE(om.content_type.find("application/openmetrics-text"), std::string::npos);
  EXPECT_TRUE(om.body.ends_with("# EOF\n"));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace podsight::testing
