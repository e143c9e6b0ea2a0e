// Shared pieces of the podsight-bench subcommands: `--key value` arguments, a monotonic clock, joining
// a cgroup, and JSON output on stdout (the orchestrator in bench/podbench reads it).
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace podsight::bench {

class Args {
 public:
  // argv after the subcommand: `--key value` pairs and bare `--flag`s.
  Args(int argc, char** argv);
  [[nodiscard]] std::string str(const std::string& key, const std::string& def) const;
  [[nodiscard]] std::string required(const std::string& key) const;
  [[nodiscard]] std::int64_t num(const std::string& key, std::int64_t def) const;
  [[nodiscard]] double real(const std::string& key, double def) const;
  [[nodiscard]] bool flag(const std::string& key) const;
  // A comma-separated list of integers.
  [[nodiscard]] std::vector<std::uint64_t> list(const std::string& key) const;

 private:
  std::map<std::string, std::string> kv_;
};

inline double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Moves the calling process into the cgroup v2 directory `path` (no-op when empty); throws on failure.
void join_cgroup(const std::string& path);

// Prints one JSON document and a newline on stdout, flushed.
void emit(const nlohmann::json& j);

// Subcommands, each in its own file; they return the process exit status.
int storm_exec(const Args& a);
int storm_tcp(const Args& a);
int flood_udp(const Args& a);
int scrape(const Args& a);
int fill(const Args& a);
int mapread(const Args& a);
int held(const Args& a);
int progs(const Args& a);
int floor_programs(const Args& a);
int testrun(const Args& a);
int xdp_bench_pass(const Args& a);

}  // namespace podsight::bench
