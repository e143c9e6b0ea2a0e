// Integration-test harness: runs the real agent binary, scrapes it over HTTP, parses the exposition,
// and builds the kernel-side situations (cgroups, processes) whose effect we assert exactly.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

struct bpf_map_info;

// Defined in builds with AddressSanitizer, which keeps freed memory in quarantine: assertions about
// the agent's resident memory hold only without it (LeakSanitizer checks leaks there).
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PODSIGHT_TEST_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define PODSIGHT_TEST_ASAN 1
#endif

namespace podsight::testing {

// Privileged tests call this first. Without root (or without BPF) they skip locally but FAIL in CI
// (CI=true): CI must prove the kernel-facing behaviour, not quietly skip it.
#define PODSIGHT_REQUIRE_PRIVILEGES()                                       \
  do {                                                                      \
    std::string why_ = ::podsight::testing::missing_privileges();           \
    if (!why_.empty()) {                                                    \
      if (::podsight::testing::in_ci()) FAIL() << "CI=true and " << why_;   \
      GTEST_SKIP() << why_;                                                 \
    }                                                                       \
  } while (0)

bool in_ci();
// Empty when we can load BPF programs and manage cgroups; otherwise the reason.
std::string missing_privileges();
// Mounts bpffs and tracefs if they are missing (tests need them; the agent's --check wants them).
void ensure_kernel_mounts();
// The cgroup2 mount point (from /proc/self/mountinfo).
std::string cgroup2_root();

int free_tcp_port();
std::string make_temp_dir(const std::string& prefix);
void write_file(const std::string& path, const std::string& content);
std::string read_file(const std::string& path);

struct HttpResult {
  int status = 0;  // 0: no answer
  std::string body;
  std::string content_type;
};
HttpResult http_get(int port, const std::string& path, const std::string& accept = "",
                    std::chrono::milliseconds timeout = std::chrono::seconds(10));

// Result of running a command to completion.
struct CommandResult {
  int exit_code = -1;  // -1 if killed by a signal
  std::string out;     // stdout and stderr together
};
// A sanitizer report in a command's output or the agent's log fails the test that ran it.
CommandResult run_command(const std::vector<std::string>& argv, const std::string& stdin_data = "");

// The first line of an AddressSanitizer, LeakSanitizer or UndefinedBehaviorSanitizer report in `output`,
// empty when there is none. Only the sanitizer build (PODSIGHT_SANITIZE) writes such reports.
std::string sanitizer_report(const std::string& output);

// One scrape, parsed. Series are looked up by name and a subset of labels that must match exactly.
class Scrape {
 public:
  explicit Scrape(std::string text);
  [[nodiscard]] const std::string& text() const { return text_; }
  // Value of the single series of `name` whose labels include `labels`; nullopt if none; fails the
  // test if several match.
  [[nodiscard]] std::optional<double> value(const std::string& name,
                                            const std::map<std::string, std::string>& labels = {}) const;
  // Sum over every series of `name` whose labels include `labels` (0 if none).
  [[nodiscard]] double sum(const std::string& name, const std::map<std::string, std::string>& labels = {}) const;
  [[nodiscard]] std::size_t count(const std::string& name) const;

  struct Series {
    std::string name;
    std::map<std::string, std::string> labels;
    double value = 0;
  };
  [[nodiscard]] const std::vector<Series>& series() const { return series_; }

 private:
  std::string text_;
  std::vector<Series> series_;
};

// Runs `promtool check metrics` on an exposition; returns promtool's output, empty when it passed.
// Fails the test (not skip) when promtool is missing in CI.
std::string promtool_problems(const std::string& exposition);

// Names of the metric families in `exposition` (from its # TYPE lines) that docs/metrics.md does not
// list in a table row; empty when every family is documented.
std::vector<std::string> undocumented_metrics(const std::string& exposition);

// Least privilege. `capabilities` is a comma-separated list as Kubernetes spells it ("BPF,PERFMON").
// The command prefix that runs a program as root with exactly those capabilities, as a container
// runtime does for the chart's securityContext (drop ALL, add these, allowPrivilegeEscalation
// false): bounding set = the list, nothing inheritable or ambient, no_new_privs. Uses setpriv.
std::vector<std::string> with_only_capabilities(const std::string& capabilities);
// Capabilities for every AgentProcess, from the environment (tests/packaging sets them from the
// rendered helm chart and runs the integration suite again): PODSIGHT_TEST_AGENT_CAPS, and
// PODSIGHT_TEST_AGENT_CAPS_BPF_STATS for configs with "bpf_stats": true (the chart grants more
// then). nullopt: run with the test's own privileges.
std::optional<std::string> agent_capabilities_from_env(bool bpf_stats);
// The effective capabilities of a process (CapEff in /proc/PID/status), as upper-case names without
// the CAP_ prefix, e.g. {"BPF", "PERFMON"}.
std::set<std::string> effective_capabilities(pid_t pid);
// A "<field>: <n> kB" line of /proc/PID/status (e.g. "VmRSS:"), in KiB; -1 when it is not there.
long status_kib(pid_t pid, const char* field);

// The agent binary running as a child process with a generated config.
class AgentProcess {
 public:
  // `config_json` is merged over a base config that listens on 127.0.0.1 on a free port.
  // `capabilities` (see with_only_capabilities) overrides agent_capabilities_from_env().
  // `command_prefix` runs first and is handed the rest of the command line (e.g. `unshare` to start
  // the agent in a mount namespace of its own).
  explicit AgentProcess(const std::string& extra_config_json = "{}", std::vector<std::string> extra_args = {},
                        std::optional<std::string> capabilities = std::nullopt,
                        std::vector<std::string> command_prefix = {});
  ~AgentProcess();
  AgentProcess(const AgentProcess&) = delete;
  AgentProcess& operator=(const AgentProcess&) = delete;

  // Waits until /readyz answers (any status) or the process exits. False on timeout/exit.
  bool wait_serving(std::chrono::milliseconds timeout = std::chrono::seconds(20));
  [[nodiscard]] int port() const { return port_; }
  [[nodiscard]] pid_t pid() const { return pid_; }
  Scrape scrape(const std::string& accept = "");
  HttpResult get(const std::string& path, const std::string& accept = "");

  // Sends `sig` and waits up to `timeout` for exit. Returns the exit status (or 128+signal), -1 on
  // timeout. `elapsed` gets how long it took.
  int stop(int sig, std::chrono::milliseconds timeout, std::chrono::milliseconds* elapsed = nullptr);
  [[nodiscard]] bool running();
  // Everything the agent wrote to stdout/stderr so far.
  [[nodiscard]] std::string logs() const;
  [[nodiscard]] const std::string& config_path() const { return config_path_; }

 private:
  std::string dir_;
  std::string config_path_;
  std::string log_path_;
  int port_ = 0;
  pid_t pid_ = -1;
  int status_ = 0;
  bool exited_ = false;
};

// A fresh cgroup v2 directory; removed (after its processes exit) on destruction.
class TestCgroup {
 public:
  explicit TestCgroup(const std::string& name_prefix = "podsight-test");
  // The cgroup at `relative` (e.g. a kubelet-shaped ".../kubepods/burstable/pod<uid>/<id>" whose
  // parents the test made), created now and removed on destruction like any other.
  static std::unique_ptr<TestCgroup> at(const std::string& relative);
  ~TestCgroup();
  TestCgroup(const TestCgroup&) = delete;
  TestCgroup& operator=(const TestCgroup&) = delete;

  [[nodiscard]] const std::string& path() const { return abs_; }      // absolute
  [[nodiscard]] const std::string& relative() const { return rel_; }  // as podsight labels it
  [[nodiscard]] std::uint64_t id() const;

  // Forks, moves the child into this cgroup, execs argv; waits; returns the exit code.
  int run(const std::vector<std::string>& argv);
  // Same without waiting; returns the pid.
  pid_t spawn(const std::vector<std::string>& argv);

 private:
  struct AtPath {};
  TestCgroup(AtPath, const std::string& relative);

  std::string abs_;
  std::string rel_;
};

// A copy of /bin/true under a name of our choosing (the comm the kernel will report).
std::string make_named_true(const std::string& dir, const std::string& name);

// Names of BPF programs / maps currently loaded in the kernel (bpftool -j prog/map show).
std::vector<std::string> loaded_bpf_program_names();
std::vector<std::string> loaded_bpf_map_names();

// BPF objects by kernel id. `held_by` reads /proc/PID/fdinfo: the programs, maps and links a process
// holds open. `alive` keeps those of `ids` that the kernel still has (bpftool). Together they prove
// that a process's programs are gone after it exits, whatever else runs on the machine.
struct BpfObjects {
  std::set<std::uint32_t> progs;
  std::set<std::uint32_t> maps;
  std::set<std::uint32_t> links;
  [[nodiscard]] bool empty() const { return progs.empty() && maps.empty() && links.empty(); }
  [[nodiscard]] std::string describe() const;
};
BpfObjects bpf_objects_held_by(pid_t pid);
// An fd of the map named `name` (as the kernel keeps it: 15 characters at most) that `pid` holds, or
// -1; its info in *info when given. The caller closes the fd.
int map_held_by(pid_t pid, const std::string& name, bpf_map_info* info = nullptr);
BpfObjects bpf_objects_alive(const BpfObjects& ids);
// Polls until none of `ids` is alive (the kernel frees programs after an RCU grace period).
bool eventually_released(const BpfObjects& ids, std::chrono::milliseconds timeout = std::chrono::seconds(3));

// Random lowercase suffix for unique names.
std::string random_suffix(std::size_t n = 8);

// Environment variables for the agents a test starts (they inherit the test's environment), e.g. the
// KUBERNETES_SERVICE_HOST/PORT and NODE_NAME kubelet gives a pod; unset again on destruction.
class ScopedEnv {
 public:
  explicit ScopedEnv(const std::vector<std::pair<std::string, std::string>>& vars);
  ~ScopedEnv();
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::vector<std::string> names_;
};

// Whether the agent's Kubernetes metadata is in sync (podsight_kubernetes_sync_state{state="synced"}).
bool kubernetes_synced(AgentProcess& agent);

}  // namespace podsight::testing
