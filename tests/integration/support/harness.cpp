// Integration-test harness implementation.
#include "integration/support/harness.hpp"

#include <fcntl.h>
#include <httplib.h>
#include <netinet/in.h>
#include <nlohmann/json.hpp>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <sstream>
#include <string_view>
#include <thread>

namespace podsight::testing {

bool in_ci() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && (std::string(ci) == "true" || std::string(ci) == "1");
}

std::string missing_privileges() {
  if (::geteuid() != 0) return "needs root (CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN, CAP_SYS_ADMIN)";
  // A one-instruction socket filter is the cheapest proof that this process may load BPF.
  const bpf_insn insns[] = {{BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0}, {BPF_JMP | BPF_EXIT, 0, 0, 0, 0}};
  int fd = bpf_prog_load(BPF_PROG_TYPE_SOCKET_FILTER, "podsight_probe", "GPL", insns, 2, nullptr);
  if (fd < 0) return std::string("cannot load BPF programs: ") + std::strerror(errno);
  ::close(fd);
  if (cgroup2_root().empty()) return "no cgroup2 mount";
  return {};
}

namespace {
bool mounted(const std::string& fstype) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.find(" - " + fstype + " ") != std::string::npos) return true;
  }
  return false;
}
}  // namespace

void ensure_kernel_mounts() {
  if (!mounted("bpf")) ::mount("bpf", "/sys/fs/bpf", "bpf", 0, nullptr);
  if (!mounted("tracefs")) ::mount("tracefs", "/sys/kernel/tracing", "tracefs", 0, nullptr);
}

std::string cgroup2_root() {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    auto dash = line.find(" - cgroup2 ");
    if (dash == std::string::npos) continue;
    std::istringstream f(line.substr(0, dash));
    std::string id, parent, dev, root, mountpoint;
    f >> id >> parent >> dev >> root >> mountpoint;
    if (root == "/") return mountpoint;
  }
  return {};
}

int free_tcp_port() {
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  int port = ntohs(a.sin_port);
  ::close(s);
  return port;
}

std::string make_temp_dir(const std::string& prefix) {
  std::string tmpl = "/tmp/" + prefix + "-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  return tmpl;
}

void write_file(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  if (!out) throw std::runtime_error("cannot write " + path);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string random_suffix(std::size_t n) {
  static std::mt19937_64 rng{std::random_device{}()};
  std::string s;
  for (std::size_t i = 0; i < n; ++i) s += static_cast<char>('a' + rng() % 26);
  return s;
}

HttpResult http_get(int port, const std::string& path, const std::string& accept,
                    std::chrono::milliseconds timeout) {
  httplib::Client cli("127.0.0.1", port);
  auto secs = std::chrono::duration_cast<std::chrono::seconds>(timeout).count();
  cli.set_connection_timeout(static_cast<time_t>(secs));
  cli.set_read_timeout(static_cast<time_t>(secs));
  httplib::Headers headers;
  if (!accept.empty()) headers.emplace("Accept", accept);
  auto res = cli.Get(path, headers);
  if (!res) return {};
  return {res->status, res->body, res->get_header_value("Content-Type")};
}

CommandResult run_command(const std::vector<std::string>& argv, const std::string& stdin_data) {
  // A command that exits before reading all of stdin (openssl s_client refusing a certificate) must
  // cost the writer an EPIPE, not the whole test binary a SIGPIPE.
  static const bool sigpipe_ignored = std::signal(SIGPIPE, SIG_IGN) != SIG_ERR;
  (void)sigpipe_ignored;
  int in_pipe[2];
  int out_pipe[2];
  if (::pipe2(in_pipe, O_CLOEXEC) != 0 || ::pipe2(out_pipe, O_CLOEXEC) != 0) return {};
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(in_pipe[0], 0);
    ::dup2(out_pipe[1], 1);
    ::dup2(out_pipe[1], 2);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  ::close(in_pipe[0]);
  ::close(out_pipe[1]);
  std::thread writer([&] {
    std::size_t off = 0;
    while (off < stdin_data.size()) {
      ssize_t n = ::write(in_pipe[1], stdin_data.data() + off, stdin_data.size() - off);
      if (n <= 0) break;
      off += static_cast<std::size_t>(n);
    }
    ::close(in_pipe[1]);
  });
  CommandResult r;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(out_pipe[0], buf, sizeof buf);
    if (n > 0) {
      r.out.append(buf, static_cast<std::size_t>(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      break;
    }
  }
  ::close(out_pipe[0]);
  writer.join();
  int status = 0;
  ::waitpid(pid, &status, 0);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (auto report = sanitizer_report(r.out); !report.empty()) {
    ADD_FAILURE() << argv.front() << ": " << report << "\n" << r.out;
  }
  return r;
}

std::string sanitizer_report(const std::string& output) {
  for (const char* marker : {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error: "}) {
    const auto at = output.find(marker);
    if (at == std::string::npos) continue;
    const auto begin = output.rfind('\n', at);
    const auto start = begin == std::string::npos ? 0 : begin + 1;
    return output.substr(start, output.find('\n', at) - start);
  }
  return {};
}

// --- exposition parsing -------------------------------------------------------------------------

namespace {

bool parse_labels(const std::string& s, std::size_t& i, std::map<std::string, std::string>& labels) {
  // at '{'
  ++i;
  while (i < s.size() && s[i] != '}') {
    std::size_t eq = s.find('=', i);
    if (eq == std::string::npos) return false;
    std::string name = s.substr(i, eq - i);
    i = eq + 1;
    if (i >= s.size() || s[i] != '"') return false;
    ++i;
    std::string value;
    while (i < s.size() && s[i] != '"') {
      if (s[i] == '\\' && i + 1 < s.size()) {
        char c = s[i + 1];
        value += c == 'n' ? '\n' : c;
        i += 2;
      } else {
        value += s[i++];
      }
    }
    if (i >= s.size()) return false;
    ++i;  // closing quote
    labels[name] = value;
    if (i < s.size() && s[i] == ',') ++i;
  }
  if (i >= s.size()) return false;
  ++i;  // '}'
  return true;
}

bool includes(const std::map<std::string, std::string>& have, const std::map<std::string, std::string>& want) {
  for (const auto& [k, v] : want) {
    auto it = have.find(k);
    if (it == have.end() || it->second != v) return false;
  }
  return true;
}

}  // namespace

Scrape::Scrape(std::string text) : text_(std::move(text)) {
  std::istringstream in(text_);
  std::string line;
  // Series lines only; a label value can hold an escaped newline but never a raw one.
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    Series s;
    std::size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    s.name = line.substr(0, i);
    if (i < line.size() && line[i] == '{' && !parse_labels(line, i, s.labels)) {
      ADD_FAILURE() << "unparseable series line: " << line;
      continue;
    }
    while (i < line.size() && line[i] == ' ') ++i;
    std::string v = line.substr(i);
    if (auto sp = v.find(' '); sp != std::string::npos) v = v.substr(0, sp);
    if (v == "+Inf") {
      s.value = std::numeric_limits<double>::infinity();
    } else if (v == "-Inf") {
      s.value = -std::numeric_limits<double>::infinity();
    } else if (v == "NaN") {
      s.value = std::numeric_limits<double>::quiet_NaN();
    } else {
      s.value = std::strtod(v.c_str(), nullptr);
    }
    series_.push_back(std::move(s));
  }
}

std::optional<double> Scrape::value(const std::string& name, const std::map<std::string, std::string>& labels) const {
  std::optional<double> found;
  for (const auto& s : series_) {
    if (s.name != name || !includes(s.labels, labels)) continue;
    if (found) {
      ADD_FAILURE() << "several series of " << name << " match the labels";
      return found;
    }
    found = s.value;
  }
  return found;
}

double Scrape::sum(const std::string& name, const std::map<std::string, std::string>& labels) const {
  double total = 0;
  for (const auto& s : series_) {
    if (s.name == name && includes(s.labels, labels)) total += s.value;
  }
  return total;
}

std::size_t Scrape::count(const std::string& name) const {
  std::size_t n = 0;
  for (const auto& s : series_) n += s.name == name ? 1 : 0;
  return n;
}

std::string promtool_problems(const std::string& exposition) {
  if (::access("/usr/bin/promtool", X_OK) != 0) {
    if (in_ci()) ADD_FAILURE() << "promtool missing in CI";
    return {};
  }
  auto r = run_command({"/usr/bin/promtool", "check", "metrics"}, exposition);
  if (r.exit_code == 0) return {};
  return r.out.empty() ? "promtool exit " + std::to_string(r.exit_code) : r.out;
}

std::vector<std::string> undocumented_metrics(const std::string& exposition) {
  const std::string doc = read_file(std::string(PODSIGHT_SOURCE_DIR) + "/docs/metrics.md");
  EXPECT_FALSE(doc.empty()) << "docs/metrics.md missing";
  std::vector<std::string> missing;
  std::istringstream in(exposition);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("# TYPE ", 0) != 0) continue;
    std::string name = line.substr(7, line.find(' ', 7) - 7);
    if (doc.find("| `" + name + "` |") == std::string::npos) missing.push_back(name);
  }
  return missing;
}

// --- the agent process ----------------------------------------------------------------------------

std::vector<std::string> with_only_capabilities(const std::string& capabilities) {
  std::string bounding = "-all";
  std::stringstream in(capabilities);
  for (std::string cap; std::getline(in, cap, ',');) {
    if (cap.empty()) continue;
    for (auto& ch : cap) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (cap.starts_with("cap_")) cap = cap.substr(4);
    bounding += ",+" + cap;
  }
  // uid 0 keeps its uid; execve then gives it exactly the bounding set as permitted and effective.
  return {"setpriv",        "--bounding-set", bounding,         "--inh-caps", "-all",
          "--ambient-caps", "-all",           "--no-new-privs", "--"};
}

std::optional<std::string> agent_capabilities_from_env(bool bpf_stats) {
  const char* caps =
      std::getenv(bpf_stats ? "PODSIGHT_TEST_AGENT_CAPS_BPF_STATS" : "PODSIGHT_TEST_AGENT_CAPS");
  if (caps == nullptr || *caps == '\0') return std::nullopt;
  return std::string(caps);
}

std::set<std::string> effective_capabilities(pid_t pid) {
  // Index = capability number (include/uapi/linux/capability.h).
  // clang-format off
  static const char* const kNames[] = {
      "CHOWN",         "DAC_OVERRIDE",  "DAC_READ_SEARCH", "FOWNER",     "FSETID",           "KILL",
      "SETGID",        "SETUID",        "SETPCAP",         "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST",
      "NET_ADMIN",     "NET_RAW",       "IPC_LOCK",        "IPC_OWNER",  "SYS_MODULE",       "SYS_RAWIO",
      "SYS_CHROOT",    "SYS_PTRACE",    "SYS_PACCT",       "SYS_ADMIN",  "SYS_BOOT",         "SYS_NICE",
      "SYS_RESOURCE",  "SYS_TIME",      "SYS_TTY_CONFIG",  "MKNOD",      "LEASE",            "AUDIT_WRITE",
      "AUDIT_CONTROL", "SETFCAP",       "MAC_OVERRIDE",    "MAC_ADMIN",  "SYSLOG",           "WAKE_ALARM",
      "BLOCK_SUSPEND", "AUDIT_READ",    "PERFMON",         "BPF",        "CHECKPOINT_RESTORE"};
  // clang-format on
  std::set<std::string> out;
  std::istringstream status(read_file("/proc/" + std::to_string(pid) + "/status"));
  for (std::string line; std::getline(status, line);) {
    if (!line.starts_with("CapEff:")) continue;
    const unsigned long long mask = std::strtoull(line.c_str() + 7, nullptr, 16);
    for (unsigned i = 0; i < 64; ++i) {
      if (((mask >> i) & 1ULL) == 0) continue;
      out.insert(i < std::size(kNames) ? kNames[i] : "CAP_" + std::to_string(i));
    }
  }
  return out;
}

long status_kib(pid_t pid, const char* field) {
  std::istringstream in(read_file("/proc/" + std::to_string(pid) + "/status"));
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with(field)) return std::stol(line.substr(std::string_view(field).size()));
  }
  return -1;
}

AgentProcess::AgentProcess(const std::string& extra_config_json, std::vector<std::string> extra_args,
                           std::optional<std::string> capabilities, std::vector<std::string> command_prefix) {
  dir_ = make_temp_dir("podsight-agent");
  config_path_ = dir_ + "/config.json";
  log_path_ = dir_ + "/agent.log";
  port_ = free_tcp_port();
  nlohmann::json cfg = nlohmann::json::parse(extra_config_json);
  cfg["http"]["listen"] = "127.0.0.1:" + std::to_string(port_);
  if (!cfg.contains("log")) cfg["log"] = {{"level", "debug"}};
  // Kubernetes metadata only where a test asks for it: a CI runner that is itself a pod must not make
  // every other test's agent watch the runner's cluster.
  if (!cfg.contains("kubernetes")) cfg["kubernetes"] = {{"source", "off"}};
  write_file(config_path_, cfg.dump(2));
  if (!capabilities) capabilities = agent_capabilities_from_env(cfg.value("bpf_stats", false));
  std::vector<std::string> argv = std::move(command_prefix);
  if (capabilities) {
    const auto caps = with_only_capabilities(*capabilities);
    argv.insert(argv.end(), caps.begin(), caps.end());
  }
  argv.insert(argv.end(), {PODSIGHT_AGENT_BINARY, "--config", config_path_});
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());

  pid_ = ::fork();
  if (pid_ == 0) {
    int fd = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
}

AgentProcess::~AgentProcess() {
  if (pid_ > 0 && !exited_) {
    if (stop(SIGTERM, std::chrono::seconds(5)) < 0) stop(SIGKILL, std::chrono::seconds(5));
  }
  // Leaks are only reported when the agent exits, so this is the one place that sees them.
  if (auto report = sanitizer_report(logs()); !report.empty()) ADD_FAILURE() << "agent: " << report;
  if (::testing::Test::HasFailure()) std::fprintf(stderr, "---- agent log ----\n%s\n----\n", logs().c_str());
  std::filesystem::remove_all(dir_);
}

bool AgentProcess::running() {
  if (exited_) return false;
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    exited_ = true;
    status_ = status;
    return false;
  }
  return true;
}

bool AgentProcess::wait_serving(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (!running()) return false;
    if (http_get(port_, "/readyz", "", std::chrono::seconds(2)).status != 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

Scrape AgentProcess::scrape(const std::string& accept) {
  auto r = http_get(port_, "/metrics", accept);
  EXPECT_EQ(r.status, 200) << "scrape failed";
  return Scrape(r.body);
}

HttpResult AgentProcess::get(const std::string& path, const std::string& accept) {
  return http_get(port_, path, accept);
}

int AgentProcess::stop(int sig, std::chrono::milliseconds timeout, std::chrono::milliseconds* elapsed) {
  auto t0 = std::chrono::steady_clock::now();
  if (!exited_) ::kill(pid_, sig);
  while (running()) {
    if (std::chrono::steady_clock::now() - t0 > timeout) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (elapsed != nullptr) {
    *elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  }
  if (WIFEXITED(status_)) return WEXITSTATUS(status_);
  return 128 + WTERMSIG(status_);
}

std::string AgentProcess::logs() const { return read_file(log_path_); }

// --- cgroups and processes ------------------------------------------------------------------------

TestCgroup::TestCgroup(const std::string& name_prefix) {
  const std::string root = cgroup2_root();
  rel_ = "/" + name_prefix + "-" + std::to_string(::getpid()) + "-" + random_suffix(6);
  abs_ = root + rel_;
  if (::mkdir(abs_.c_str(), 0755) != 0) throw std::runtime_error("mkdir " + abs_ + ": " + std::strerror(errno));
}

TestCgroup::TestCgroup(AtPath, const std::string& relative)
    : abs_(cgroup2_root() + relative), rel_(relative) {
  if (::mkdir(abs_.c_str(), 0755) != 0)
    throw std::runtime_error("mkdir " + abs_ + ": " + std::strerror(errno));
}

std::unique_ptr<TestCgroup> TestCgroup::at(const std::string& relative) {
  return std::unique_ptr<TestCgroup>(new TestCgroup(AtPath{}, relative));
}

TestCgroup::~TestCgroup() {
  // Children were waited for; a lingering one is killed so that rmdir can succeed.
  for (int attempt = 0; attempt < 50; ++attempt) {
    if (::rmdir(abs_.c_str()) == 0 || errno == ENOENT) return;
    std::istringstream procs(read_file(abs_ + "/cgroup.procs"));
    pid_t p;
    while (procs >> p) ::kill(p, SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

std::uint64_t TestCgroup::id() const {
  struct stat st {};
  ::stat(abs_.c_str(), &st);
  return st.st_ino;
}

pid_t TestCgroup::spawn(const std::vector<std::string>& argv) {
  const std::string procs = abs_ + "/cgroup.procs";
  pid_t pid = ::fork();
  if (pid == 0) {
    int fd = ::open(procs.c_str(), O_WRONLY);
    if (fd < 0 || ::write(fd, "0", 1) != 1) ::_exit(126);
    ::close(fd);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  return pid;
}

int TestCgroup::run(const std::vector<std::string>& argv) {
  pid_t pid = spawn(argv);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string make_named_true(const std::string& dir, const std::string& name) {
  const std::string path = dir + "/" + name;
  std::filesystem::copy_file("/bin/true", path, std::filesystem::copy_options::overwrite_existing);
  ::chmod(path.c_str(), 0755);
  return path;
}

namespace {
std::vector<std::string> bpftool_names(const char* what) {
  auto r = run_command({"bpftool", "-j", what, "show"});
  std::vector<std::string> names;
  if (r.exit_code != 0) {
    ADD_FAILURE() << "bpftool " << what << " show failed: " << r.out;
    return names;
  }
  auto doc = nlohmann::json::parse(r.out, nullptr, false);
  if (!doc.is_array()) return names;
  for (const auto& e : doc) {
    if (e.contains("name")) names.push_back(e["name"].get<std::string>());
  }
  return names;
}
}  // namespace

std::vector<std::string> loaded_bpf_program_names() { return bpftool_names("prog"); }

std::string BpfObjects::describe() const {
  std::string s;
  auto list = [&s](const char* what, const std::set<std::uint32_t>& ids) {
    s += what;
    s += ":";
    for (auto id : ids) s += " " + std::to_string(id);
    s += "; ";
  };
  list("progs", progs);
  list("maps", maps);
  list("links", links);
  return s;
}

BpfObjects bpf_objects_held_by(pid_t pid) {
  BpfObjects held;
  const std::string dir = "/proc/" + std::to_string(pid) + "/fdinfo";
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    std::istringstream in(read_file(e.path()));
    std::string key;
    std::uint32_t prog = 0, map = 0, link = 0;
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream kv(line);
      kv >> key;
      if (key == "prog_id:") kv >> prog;
      if (key == "map_id:") kv >> map;
      if (key == "link_id:") kv >> link;
    }
    // A link's fdinfo names its program too; the program is then held through the link.
    if (link != 0) {
      held.links.insert(link);
      if (prog != 0) held.progs.insert(prog);
    } else if (prog != 0) {
      held.progs.insert(prog);
    } else if (map != 0) {
      held.maps.insert(map);
    }
  }
  return held;
}

int map_held_by(pid_t pid, const std::string& name, bpf_map_info* info) {
  for (const auto id : bpf_objects_held_by(pid).maps) {
    const int fd = ::bpf_map_get_fd_by_id(id);
    if (fd < 0) continue;
    bpf_map_info got{};
    __u32 len = sizeof got;
    if (::bpf_obj_get_info_by_fd(fd, &got, &len) == 0 && name == got.name) {
      if (info != nullptr) *info = got;
      return fd;
    }
    ::close(fd);
  }
  return -1;
}

namespace {
std::set<std::uint32_t> bpftool_ids(const char* what) {
  auto r = run_command({"bpftool", "-j", what, "show"});
  std::set<std::uint32_t> ids;
  auto doc = nlohmann::json::parse(r.out, nullptr, false);
  // An object freed while bpftool lists the others (by another process on the machine, or one whose
  // last reference just went) is an error entry, "can't get link by id (N): ...", and a non-zero exit:
  // it is not alive. Any other error is a failure.
  const std::string vanished = std::string("can't get ") + what + " by id";
  bool ok = doc.is_array();
  for (const auto& e : ok ? doc : nlohmann::json::array()) {
    if (e.contains("id")) {
      ids.insert(e["id"].get<std::uint32_t>());
    } else if (!e.contains("error") || !e["error"].is_string() ||
               e["error"].get<std::string>().rfind(vanished, 0) != 0) {
      ok = false;
    }
  }
  if (!ok || (r.exit_code != 0 && doc.empty())) {
    ADD_FAILURE() << "bpftool " << what << " show failed: " << r.out;
    return {};
  }
  return ids;
}
}  // namespace

BpfObjects bpf_objects_alive(const BpfObjects& ids) {
  BpfObjects alive;
  auto keep = [](const std::set<std::uint32_t>& want, const std::set<std::uint32_t>& have,
                 std::set<std::uint32_t>& out) {
    for (auto id : want) {
      if (have.count(id) != 0) out.insert(id);
    }
  };
  if (!ids.progs.empty()) keep(ids.progs, bpftool_ids("prog"), alive.progs);
  if (!ids.maps.empty()) keep(ids.maps, bpftool_ids("map"), alive.maps);
  if (!ids.links.empty()) keep(ids.links, bpftool_ids("link"), alive.links);
  return alive;
}

bool eventually_released(const BpfObjects& ids, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (bpf_objects_alive(ids).empty()) return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}
std::vector<std::string> loaded_bpf_map_names() { return bpftool_names("map"); }

ScopedEnv::ScopedEnv(const std::vector<std::pair<std::string, std::string>>& vars) {
  for (const auto& [name, value] : vars) {
    ::setenv(name.c_str(), value.c_str(), 1);
    names_.push_back(name);
  }
}

ScopedEnv::~ScopedEnv() {
  for (const auto& name : names_) ::unsetenv(name.c_str());
}

bool kubernetes_synced(AgentProcess& agent) {
  return agent.scrape().value("podsight_kubernetes_sync_state", {{"state", "synced"}}) == 1;
}

}  // namespace podsight::testing
