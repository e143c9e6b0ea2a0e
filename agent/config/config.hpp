// The agent's configuration: a JSON file plus command-line flags, validated completely before anything
// is loaded, so that a typo is an exit status 2 with the key named, never a half-configured agent.
#pragma once

#include "http/server.hpp"
#include "log/log.hpp"
#include "util/result.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace podsight::config {

inline constexpr int kDefaultPort = 10795;

struct ExecConfig {
  bool enabled = true;
  std::string variant = "auto";  // auto | tp_btf | tracepoint
  std::uint32_t max_entries = 16384;
};

struct ProgramsConfig {
  ExecConfig exec;
};

struct Config {
  http::Options http;  // http.listen etc.
  log::Format log_format = log::Format::kJson;
  std::string log_level = "info";
  bool bpf_stats = false;    // turn on the kernel's per-program run-time statistics while running
  std::string cgroup_root;   // empty: detect the cgroup2 mount from /proc/self/mountinfo
  ProgramsConfig programs;
};

// Parses and validates a JSON document. All problems are reported, each naming the key path, e.g.
// "programs.exec.max_entries: must be an integer in [1, 1048576], got 0".
Result<Config> parse(std::string_view json_text);
Result<Config> load_file(const std::string& path);
// Every key path the parser accepts ("http.listen", "programs.exec", ...), objects included; the
// unit tests check docs/configuration.md against it.
std::vector<std::string> known_keys();

// Command line. `--help`/`--version` set the matching flag; errors name the flag.
struct CommandLine {
  std::string config_file;
  std::string listen;      // overrides http.listen
  std::string log_format;  // overrides log.format
  std::string log_level;   // overrides log.level
  bool check = false;
  bool validate_config = false;  // parse and validate the file and flags, load nothing, exit 0 or 2
  bool help = false;
  bool version = false;
};
Result<CommandLine> parse_args(int argc, const char* const* argv);
std::string usage();

// Loads the file named on the command line (if any) and applies flag overrides, validated.
Result<Config> resolve(const CommandLine& cl);

}  // namespace podsight::config
