// podsight-bench: workload generators and measuring tools for bench/run.sh, one subcommand each.
#include "common.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>
#include <iostream>

namespace podsight::bench {

Args::Args(int argc, char** argv) {
  for (int i = 0; i < argc; ++i) {
    std::string k = argv[i];
    if (k.rfind("--", 0) != 0) throw std::invalid_argument("unexpected argument " + k);
    k = k.substr(2);
    if (i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0) {
      kv_[k] = argv[++i];
    } else {
      kv_[k] = "";
    }
  }
}

std::string Args::str(const std::string& key, const std::string& def) const {
  auto it = kv_.find(key);
  return it == kv_.end() ? def : it->second;
}

std::string Args::required(const std::string& key) const {
  auto it = kv_.find(key);
  if (it == kv_.end() || it->second.empty()) throw std::invalid_argument("missing --" + key);
  return it->second;
}

std::int64_t Args::num(const std::string& key, std::int64_t def) const {
  auto it = kv_.find(key);
  return it == kv_.end() ? def : std::stoll(it->second);
}

double Args::real(const std::string& key, double def) const {
  auto it = kv_.find(key);
  return it == kv_.end() ? def : std::stod(it->second);
}

bool Args::flag(const std::string& key) const { return kv_.count(key) != 0; }

std::vector<std::uint64_t> Args::list(const std::string& key) const {
  std::vector<std::uint64_t> out;
  std::string s = str(key, "");
  std::size_t pos = 0;
  while (pos < s.size()) {
    std::size_t comma = s.find(',', pos);
    if (comma == std::string::npos) comma = s.size();
    if (comma > pos) out.push_back(std::stoull(s.substr(pos, comma - pos)));
    pos = comma + 1;
  }
  return out;
}

void join_cgroup(const std::string& path) {
  if (path.empty()) return;
  const std::string procs = path + "/cgroup.procs";
  int fd = ::open(procs.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("open " + procs + ": " + std::strerror(errno));
  const std::string pid = std::to_string(::getpid());
  const bool ok = ::write(fd, pid.data(), pid.size()) == static_cast<ssize_t>(pid.size());
  const int err = errno;
  ::close(fd);
  if (!ok) throw std::runtime_error("join " + path + ": " + std::strerror(err));
}

void emit(const nlohmann::json& j) { std::cout << j.dump() << std::endl; }

}  // namespace podsight::bench

int main(int argc, char** argv) {
  using namespace podsight::bench;
  const std::map<std::string, std::function<int(const Args&)>> commands = {
      {"storm-exec", storm_exec},
      {"storm-tcp", storm_tcp},
      {"flood-udp", flood_udp},
      {"scrape", scrape},
      {"fill", fill},
      {"mapread", mapread},
      {"held", held},
      {"progs", progs},
      {"floor", floor_programs},
      {"testrun", testrun},
      {"xdp-bench-pass", xdp_bench_pass},
  };
  if (argc < 2 || commands.count(argv[1]) == 0) {
    std::cerr << "usage: podsight-bench COMMAND [--key value ...]\ncommands:";
    for (const auto& [name, fn] : commands) std::cerr << " " << name;
    std::cerr << "\n";
    return 2;
  }
  try {
    return commands.at(argv[1])(Args(argc - 2, argv + 2));
  } catch (const std::exception& e) {
    std::cerr << "podsight-bench " << argv[1] << ": " << e.what() << "\n";
    return 1;
  }
}
