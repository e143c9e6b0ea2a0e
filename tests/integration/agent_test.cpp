// The agent as a process: endpoints, self-metrics, logs, preflight, config errors, and clean detach on
// SIGTERM and SIGKILL (checked with bpftool, not trusted).
#include "integration/support/harness.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/types.h>
#include <fcntl.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "exec.h"

namespace podsight::testing {
namespace {

class Agent : public ::testing::Test {
 protected:
  void SetUp() override {
    PODSIGHT_REQUIRE_PRIVILEGES();
    ensure_kernel_mounts();
  }
};

TEST_F(Agent, EndpointsAndSelfMetrics) {
  AgentProcess agent(R"({"bpf_stats": true})");
  ASSERT_TRUE(agent.wait_serving()) << agent.logs();
  EXPECT_EQ(agent.get("/healthz").status, 200);
  auto landing = agent.get("/");
  EXPECT_EQ(landing.status, 200);
  EXPECT_NE(landing.body.find("/metrics"), std::string::npos);
  EXPECT_EQ(agent.get("/nope").status, 404);

  auto ready = agent.get("/readyz");
  ASSERT_EQ(ready.status, 200) << ready.body;
  auto doc = nlohmann::json::parse(ready.body);
  EXPECT_EQ(doc["status"], "ready");
  ASSERT_TRUE(doc["families"].is_array());
  auto exec = std::find_if(doc["families"].begin(), doc["families"].end(), [](auto& f) { return f["name"] == "exec"; });
  ASSERT_NE(exec, doc["families"].end());
  EXPECT_EQ((*exec)["state"], "attached");
  EXPECT_EQ((*exec)["variant"], "tp_btf");  // best variant on this kernel
  EXPECT_EQ((*exec)["error"], "");

  // Generate exec events so the run-time stats move.
  TestCgroup cg;
  for (int i = 0; i < 10; ++i) ASSERT_EQ(cg.run({"/bin/true"}), 0);
  auto text = agent.get("/metrics").body;
  EXPECT_EQ(promtool_problems(text), "");
  Scrape s(text);
  EXPECT_EQ(s.count("podsight_build_info"), 1u);
  EXPECT_EQ(s.value("podsight_program_attached", {{"program", "exec"}}), 1);
  EXPECT_EQ(s.value("podsight_program_state", {{"program", "exec"}, {"state", "attached"}}), 1);
  EXPECT_EQ(s.value("podsight_program_state", {{"program", "exec"}, {"state", "failed"}}), 0);
  EXPECT_EQ(s.value("podsight_map_capacity", {{"map", "exec_counts"}}), 16384);
  auto entries = s.value("podsight_map_entries", {{"map", "exec_counts"}});
  ASSERT_TRUE(entries.has_value());
  EXPECT_GE(*entries, 1);
  EXPECT_EQ(s.value("podsight_map_update_errors_total", {{"map", "exec_counts"}}), 0);
  EXPECT_EQ(s.value("podsight_bpf_stats_enabled"), 1);
  auto runs = s.value("podsight_program_runs_total", {{"program", "exec"}});
  ASSERT_TRUE(runs.has_value());
  EXPECT_GE(*runs, 10);
  EXPECT_GT(*s.value("podsight_program_run_seconds_total", {{"program", "exec"}}), 0);
  EXPECT_GT(*s.value("process_resident_memory_bytes"), 1e6);
  EXPECT_GT(*s.value("process_open_fds"), 3);
  EXPECT_TRUE(s.value("podsight_scrape_duration_seconds").has_value());
  EXPECT_GE(s.sum("podsight_http_requests_total", {{"path", "/readyz"}, {"code", "200"}}), 1);
  EXPECT_EQ(undocumented_metrics(text), std::vector<std::string>{});
}

TEST_F(Agent, FullMapCountsFailedInsertsAndKeepsCounting) {
  AgentProcess agent(R"({"programs": {"exec": {"max_entries": 2}}})");
  ASSERT_TRUE(agent.wait_serving()) << agent.logs();
  const std::string dir = make_temp_dir("podsight-full");
  TestCgroup cg;
  // Fill the two slots (other processes on the host may take them first; that is the point).
  std::vector<std::string> bins;
  for (int i = 0; i < 6; ++i) bins.push_back(make_named_true(dir, "full" + std::to_string(i)));
  for (const auto& b : bins) ASSERT_EQ(cg.run({b}), 0);
  auto s = agent.scrape();
  EXPECT_EQ(s.value("podsight_map_entries", {{"map", "exec_counts"}}), 2);
  auto errors = s.value("podsight_map_update_errors_total", {{"map", "exec_counts"}});
  ASSERT_TRUE(errors.has_value());
  EXPECT_GE(*errors, 4);
  // A key that made it in keeps counting.
  std::string kept;
  double before = 0;
  for (const auto& ser : s.series()) {
    if (ser.name == "podsight_process_execs_total" && ser.labels.at("cgroup") == cg.relative()) {
      kept = ser.labels.at("comm");
      before = ser.value;
    }
  }
  if (!kept.empty()) {
    ASSERT_EQ(cg.run({dir + "/" + kept}), 0);
    EXPECT_EQ(agent.scrape().value("podsight_process_execs_total", {{"cgroup", cg.relative()}, {"comm", kept}}),
              before + 1);
  }
  std::filesystem::remove_all(dir);
}

// The kernel's own account of a map's memory: fdinfo's memlock, which since Linux 6.4 is what the map
// uses (map_mem_usage), not an estimate from max_entries.
std::uint64_t map_memlock(int fd) {
  std::ifstream in("/proc/self/fdinfo/" + std::to_string(fd));
  std::string key;
  std::uint64_t value = 0;
  while (in >> key) {
    if (key == "memlock:" && in >> value) return value;
    in.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
  }
  ADD_FAILURE() << "no memlock in fdinfo of fd " << fd;
  return 0;
}

bool kernel_reports_map_usage() {
  utsname u{};
  if (::uname(&u) != 0) return false;
  int major = 0;
  int minor = 0;
  if (std::sscanf(u.release, "%d.%d", &major, &minor) != 2) return false;
  return major > 6 || (major == 6 && minor >= 4);
}

// The per-CPU counter maps get an element as a key first comes, not max_entries x possible CPUs when
// they are created (preallocated at the default 16,384 entries, tcp_stats alone holds 768 KiB per
// possible CPU, 96 MiB on a 128-CPU node, whether or not a key ever comes). By the kernel's own
// account each holds a fraction of what the same map preallocated holds, and grows by what its new
// keys need.
TEST_F(Agent, CounterMapsHoldKernelMemoryForTheKeysTheyHave) {
  if (!kernel_reports_map_usage()) GTEST_SKIP() << "before Linux 6.4 fdinfo's memlock is computed from max_entries";
  AgentProcess agent;
  ASSERT_TRUE(agent.wait_serving()) << agent.logs();
  for (const char* name : {"exec_counts", "tcp_stats", "cgroup_skb_coun"}) {
    bpf_map_info info{};
    const int fd = map_held_by(agent.pid(), name, &info);
    ASSERT_GE(fd, 0) << name;
    // The same map, preallocated.
    const int prealloc = ::bpf_map_create(static_cast<bpf_map_type>(info.type), "podsight_test", info.key_size,
                                          info.value_size, info.max_entries, nullptr);
    ASSERT_GE(prealloc, 0) << name << ": " << std::strerror(errno);
    const std::uint64_t used = map_memlock(fd);
    const std::uint64_t full = map_memlock(prealloc);
    ::close(prealloc);
    RecordProperty(std::string(name) + "_memlock", std::to_string(used));
    std::printf("%s: max_entries %u, kernel memory %llu bytes (preallocated: %llu)\n", name, info.max_entries,
                static_cast<unsigned long long>(used), static_cast<unsigned long long>(full));
    EXPECT_EQ(info.max_entries, 16384U) << name;
    EXPECT_LT(used * 4, full) << name << " holds " << used << " bytes of kernel memory; preallocated "
                              << full;
    ::close(fd);
  }

  // New keys: the map grows by at least their values on every possible CPU.
  const int counts = map_held_by(agent.pid(), "exec_counts");
  ASSERT_GE(counts, 0);
  const int ncpus = libbpf_num_possible_cpus();
  ASSERT_GT(ncpus, 0);
  const std::uint64_t before = map_memlock(counts);
  constexpr int kKeys = 1000;
  std::vector<std::uint64_t> per_cpu(static_cast<std::size_t>(ncpus), 0);
  std::vector<exec_key> keys;
  for (int i = 0; i < kKeys; ++i) {
    exec_key k{};
    k.cgroup_id = 0xfeedfacecafe0000ULL + static_cast<std::uint64_t>(i);  // no such cgroup
    std::snprintf(k.comm, sizeof k.comm, "memtest%05d", i);
    ASSERT_EQ(::bpf_map_update_elem(counts, &k, per_cpu.data(), BPF_NOEXIST), 0) << std::strerror(errno);
    keys.push_back(k);
  }
  const std::uint64_t after = map_memlock(counts);
  for (const auto& k : keys) ::bpf_map_delete_elem(counts, &k);
  ::close(counts);
  EXPECT_GE(after - before, std::uint64_t{kKeys} * sizeof(std::uint64_t) * static_cast<std::uint64_t>(ncpus))
      << "exec_counts held " << before << " bytes, then " << after << " with " << kKeys << " more keys";
}

// The kernel's log from now on (/dev/kmsg, opened at its end): what loading and attaching wrote.
class KernelLog {
 public:
  KernelLog() : fd_(::open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC)) {
    if (fd_ >= 0) ::lseek(fd_, 0, SEEK_END);
  }
  ~KernelLog() {
    if (fd_ >= 0) ::close(fd_);
  }
  KernelLog(const KernelLog&) = delete;
  KernelLog& operator=(const KernelLog&) = delete;
  [[nodiscard]] bool ok() const { return fd_ >= 0; }
  // Messages written since the last call (one record per read; "prio,seq,time,flags;text").
  std::vector<std::string> read_new() {
    std::vector<std::string> out;
    char buf[8192];
    for (;;) {
      const ssize_t n = ::read(fd_, buf, sizeof buf);
      if (n > 0) {
        const std::string record(buf, static_cast<std::size_t>(n));
        const auto semi = record.find(';');
        out.push_back(semi == std::string::npos ? record : record.substr(semi + 1));
        continue;
      }
      if (n < 0 && errno == EPIPE) continue;  // records overwritten before we read them
      break;                                   // EAGAIN: nothing more
    }
    return out;
  }

 private:
  int fd_;
};

// Loading the programs never makes the kernel warn. Kernels 5.7 to 6.0 print a WARN_ONCE splat, a
// panic where panic_on_warn is set, when a kprobe or raw tracepoint program uses a hash map that
// allocates at run time; those variants get preallocated maps there. Every variant this kernel can
// load is loaded here (those it cannot fail to attach and are reported, as on a node). Under the
// kernel matrix (scripts/kernel-matrix-gtest.sh) this checks older kernels' verifiers.
TEST_F(Agent, LoadingEveryVariantLeavesNoKernelWarning) {
  KernelLog kmsg;
  ASSERT_TRUE(kmsg.ok()) << "/dev/kmsg: " << std::strerror(errno);
  kmsg.read_new();
  for (const char* variants : {R"({"programs": {"exec": {"variant": "tracepoint"}, "tcp": {"variant": "tracepoint"}}})",
                               R"({"programs": {"exec": {"variant": "tp_btf"}, "tcp": {"variant": "kprobe"}}})",
                               R"({"programs": {"tcp": {"variant": "fentry"}}})", "{}"}) {
    AgentProcess agent(variants);
    ASSERT_TRUE(agent.wait_serving()) << agent.logs();
    EXPECT_EQ(agent.stop(SIGTERM, std::chrono::seconds(5)), 0) << variants;
    for (const auto& line : kmsg.read_new()) {
      EXPECT_EQ(line.find("WARNING:"), std::string::npos) << variants << ": " << line;
      EXPECT_EQ(line.find("run-time allocat"), std::string::npos) << variants << ": " << line;
    }
  }
}

TEST_F(Agent, SigtermDetachesEverythingWithinTwoSeconds) {
  AgentProcess agent;
  ASSERT_TRUE(agent.wait_serving()) << agent.logs();
  const BpfObjects held = bpf_objects_held_by(agent.pid());
  ASSERT_FALSE(held.links.empty()) << held.describe();
  ASSERT_FALSE(held.progs.empty()) << held.describe();
  std::chrono::milliseconds took{};
  EXPECT_EQ(agent.stop(SIGTERM, std::chrono::seconds(5), &took), 0);
  EXPECT_LT(took.count(), 2000);
  EXPECT_TRUE(eventually_released(held)) << bpf_objects_alive(held).describe();
  // Logs are JSON lines with timestamp, level and message.
  std::istringstream lines(agent.logs());
  std::string line;
  int parsed = 0;
  bool saw_attach = false;
  while (std::getline(lines, line)) {
    auto doc = nlohmann::json::parse(line, nullptr, false);
    ASSERT_FALSE(doc.is_discarded()) << "not JSON: " << line;
    EXPECT_TRUE(doc.contains("ts") && doc.contains("level") && doc.contains("msg")) << line;
    saw_attach |= doc["msg"] == "program family attached" && doc.value("program", "") == "exec";
    ++parsed;
  }
  EXPECT_GT(parsed, 2);
  EXPECT_TRUE(saw_attach);
}

TEST_F(Agent, SigkillLeavesNothingAttachedAndRestartAttachesAgain) {
  {
    AgentProcess agent;
    ASSERT_TRUE(agent.wait_serving()) << agent.logs();
    const BpfObjects held = bpf_objects_held_by(agent.pid());
    ASSERT_FALSE(held.links.empty()) << held.describe();
    EXPECT_EQ(agent.stop(SIGKILL, std::chrono::seconds(5)), 128 + SIGKILL);
    EXPECT_TRUE(eventually_released(held)) << bpf_objects_alive(held).describe();
  }
  AgentProcess again;
  ASSERT_TRUE(again.wait_serving()) << again.logs();
  EXPECT_EQ(again.get("/readyz").status, 200);
}

TEST_F(Agent, CheckPrintsTableAndPasses) {
  // Map sizes no other BPF user on the machine has: the maps of this --check run can then be told
  // apart from those of agents other tests (or other people) run, and their absence afterwards
  // proves everything of the run was released (a loaded program holds its maps).
  const std::uint32_t tag = 20011 + static_cast<std::uint32_t>(random_suffix(1)[0] - 'a') * 7;
  const std::map<std::string, std::uint32_t> tagged = {
      {"exec_counts", tag}, {"tcp_stats", tag + 1}, {"tcp_conns", tag + 2}, {"cgroup_skb_counts", tag + 3}};
  const std::string dir = make_temp_dir("podsight-check");
  write_file(dir + "/c.json", "{\"programs\": {\"exec\": {\"max_entries\": " + std::to_string(tag) +
                                  "}, \"tcp\": {\"max_entries\": " + std::to_string(tag + 1) +
                                  ", \"max_connections\": " + std::to_string(tag + 2) +
                                  "}, \"cgroup_skb\": {\"max_entries\": " + std::to_string(tag + 3) + "}}}");
  auto r = run_command({PODSIGHT_AGENT_BINARY, "--check", "--config", dir + "/c.json", "--log-level", "error"});
  EXPECT_EQ(r.exit_code, 0) << r.out;
  for (const char* row : {"kernel", "btf", "bpffs", "tracefs", "cgroup2", "memlock", "kprobes", "fentry",
                          "program exec", "program tcp", "program cgroup_skb", "program xdp"}) {
    EXPECT_NE(r.out.find(row), std::string::npos) << row << " missing in\n" << r.out;
  }
  EXPECT_NE(r.out.find("attached, variant tp_btf"), std::string::npos) << r.out;
  auto left = [&] {
    std::size_t n = 0;
    auto maps = run_command({"bpftool", "-j", "map", "show"});
    auto doc = nlohmann::json::parse(maps.out, nullptr, false);
    for (const auto& m : doc.is_array() ? doc : nlohmann::json::array()) {
      for (const auto& [name, size] : tagged) {
        // the kernel keeps 15 bytes of a map's name
        n += m.value("name", "") == name.substr(0, 15) && m.value("max_entries", 0u) == size;
      }
    }
    return n;
  };
  for (int i = 0; i < 100 && left() != 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(left(), 0u) << "maps of the --check run are still loaded";
  std::filesystem::remove_all(dir);
}

TEST_F(Agent, CheckFailsWhenAFamilyCannotAttach) {
  const std::string dir = make_temp_dir("podsight-check");
  // A cgroup root that does not exist fails the cgroup2 row: exit status must say so.
  write_file(dir + "/c.json", R"({"cgroup_root": "/nonexistent/cgroup2"})");
  auto r = run_command({PODSIGHT_AGENT_BINARY, "--check", "--config", dir + "/c.json", "--log-level", "error"});
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.out.find("cgroup2"), std::string::npos);
  EXPECT_NE(r.out.find("FAIL"), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST_F(Agent, BadConfigExitsTwoNamingTheKey) {
  const std::string dir = make_temp_dir("podsight-badcfg");
  write_file(dir + "/c.json", R"({"programs": {"exec": {"max_entries": "many"}}})");
  auto r = run_command({PODSIGHT_AGENT_BINARY, "--config", dir + "/c.json"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("programs.exec.max_entries"), std::string::npos) << r.out;
  auto missing = run_command({PODSIGHT_AGENT_BINARY, "--config", dir + "/absent.json"});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.out.find("absent.json"), std::string::npos) << missing.out;
  auto flag = run_command({PODSIGHT_AGENT_BINARY, "--listen", "nowhere"});
  EXPECT_EQ(flag.exit_code, 2);
  EXPECT_NE(flag.out.find("--listen"), std::string::npos) << flag.out;
  std::filesystem::remove_all(dir);
}

// SIGHUP re-reads the config file: logging settings change at once, the programs and their maps stay
// (the same kernel objects, so counters go on from where they were); a file that does not parse
// changes nothing, not even the log format, and is reported in the running one.
TEST_F(Agent, SighupReloadKeepsCountersAndABadFileKeepsTheRunningConfig) {
  AgentProcess agent(R"({"log": {"level": "info", "format": "json"}})");
  ASSERT_TRUE(agent.wait_serving()) << agent.logs();
  const BpfObjects held = bpf_objects_held_by(agent.pid());
  ASSERT_FALSE(held.maps.empty());
  const std::string dir = make_temp_dir("podsight-sighup");
  const std::string comm = "shp" + random_suffix(9);
  const std::string binary = make_named_true(dir, comm);
  TestCgroup cg;
  const auto execs = [&] {
    return agent.scrape().value("podsight_process_execs_total", {{"cgroup", cg.relative()}, {"comm", comm}});
  };
  // Waits for `line` in the agent's log (the reload is done when it is written).
  const auto logged = [&](const std::string& line) {
    for (int i = 0; i < 500; ++i) {
      if (agent.logs().find(line) != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  };
  // Links are left out: XDP follows interfaces that other tests on this machine add and remove.
  const auto same_programs_and_maps = [&] {
    const BpfObjects now = bpf_objects_held_by(agent.pid());
    EXPECT_EQ(now.progs, held.progs);
    EXPECT_EQ(now.maps, held.maps);
  };
  for (int i = 0; i < 3; ++i) ASSERT_EQ(cg.run({binary}), 0);
  EXPECT_EQ(execs(), 3);

  // A good file: text logs from now on; the same programs, maps and links; counting goes on.
  write_file(agent.config_path(), R"({"log": {"level": "debug", "format": "text"}})");
  ASSERT_EQ(::kill(agent.pid(), SIGHUP), 0);
  ASSERT_TRUE(logged("configuration reloaded log_level=debug")) << agent.logs();
  for (int i = 0; i < 2; ++i) ASSERT_EQ(cg.run({binary}), 0);
  EXPECT_EQ(execs(), 5);
  same_programs_and_maps();

  // A bad file: rejected, said in the running (text) format; nothing else changes.
  write_file(agent.config_path(), "{ not json");
  ASSERT_EQ(::kill(agent.pid(), SIGHUP), 0);
  ASSERT_TRUE(logged("configuration reload rejected, keeping the running configuration error="))
      << agent.logs();
  EXPECT_EQ(agent.logs().find(R"("msg":"configuration reload rejected)"), std::string::npos) << agent.logs();
  for (int i = 0; i < 4; ++i) ASSERT_EQ(cg.run({binary}), 0);
  EXPECT_EQ(execs(), 9);
  same_programs_and_maps();
  EXPECT_TRUE(agent.running());
  EXPECT_EQ(agent.get("/readyz").status, 200);
  // A value out of range is rejected the same way, naming the key.
  write_file(agent.config_path(), R"({"programs": {"exec": {"max_entries": 0}}})");
  ASSERT_EQ(::kill(agent.pid(), SIGHUP), 0);
  ASSERT_TRUE(logged(R"(error="invalid configuration: programs.exec.max_entries)")) << agent.logs();
  EXPECT_EQ(execs(), 9);
  EXPECT_TRUE(agent.running());
  std::filesystem::remove_all(dir);
}

TEST_F(Agent, TextLogFormat) {
  AgentProcess agent(R"({"log": {"format": "text", "level": "info"}})");
  ASSERT_TRUE(agent.wait_serving()) << agent.logs();
  auto logs = agent.logs();
  EXPECT_NE(logs.find("program family attached program=exec variant=tp_btf"), std::string::npos) << logs;
  EXPECT_EQ(logs.find("{\"ts\""), std::string::npos);
}

}  // namespace
}  // namespace podsight::testing
