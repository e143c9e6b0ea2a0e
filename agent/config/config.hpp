// The agent's configuration: a JSON file plus command-line flags, validated completely before anything
// is loaded, so that a typo is an exit status 2 with the key named, never a half-configured agent.
#pragma once

#include "http/server.hpp"
#include "log/log.hpp"
#include "util/result.hpp"

#include <cstdint>
#include <map>
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

struct CgroupSkbConfig {
  bool enabled = true;
  std::string variant = "auto";  // auto | link
  std::uint32_t max_entries = 16384;
};

// programs.xdp: per-interface packet counters (docs/configuration.md explains the defaults).
struct XdpConfig {
  bool enabled = false;          // opt-in: attaching XDP to a node's uplinks touches its datapath
  std::string variant = "auto";  // auto | link
  std::string mode = "auto";     // auto (native, else generic, per interface) | native | generic
  // Attached whatever the patterns say; a missing one degrades the family.
  std::vector<std::string> interfaces;
  std::vector<std::string> include = default_xdp_include();  // [] when `interfaces` is set
  std::vector<std::string> exclude = default_xdp_exclude();
  std::uint32_t max_interfaces = 64;

  // Uplinks of a Kubernetes node: physical NICs (classic and predictable names), bonds, teams, VLANs.
  static std::vector<std::string> default_xdp_include();
  // What a CNI or container runtime creates, so a broad `include` still leaves pod traffic alone.
  static std::vector<std::string> default_xdp_exclude();
};

// programs.tcp.remote: outbound connections by remote endpoint (opt-in; docs/configuration.md).
struct TcpRemoteConfig {
  bool enabled = false;
  std::uint32_t max_entries = 16384;    // (cgroup, remote endpoint) counter slots (tcp_remote_stats)
  std::uint32_t max_addresses = 65536;  // pod, service and node addresses known (tcp_remote_addrs)
};

struct TcpConfig {
  bool enabled = true;
  std::string variant = "auto";  // auto | tp_btf | fentry | tracepoint | kprobe
  std::uint32_t max_connections = 65536;  // open connections tracked at once (tcp_conns)
  std::uint32_t max_entries = 16384;      // (cgroup, direction) counter slots (tcp_stats)
  // How bytes of open connections are read at scrape time: auto | sk_storage | iter_tcp.
  std::string open_connections = "auto";
  TcpRemoteConfig remote;
};

struct ProgramsConfig {
  ExecConfig exec;
  CgroupSkbConfig cgroup_skb;
  XdpConfig xdp;
  TcpConfig tcp;
};

// Kubernetes metadata: where the API server is and what to keep from it (docs/configuration.md).
struct KubernetesConfig {
  std::string source = "auto";  // auto | in_cluster | kubeconfig | off
  std::string kubeconfig;       // path; used by source kubeconfig (and auto outside a pod)
  std::string context;          // kubeconfig context; empty: current-context
  std::string node_name;        // empty: $NODE_NAME, else the host name
  std::string token_file = "/var/run/secrets/kubernetes.io/serviceaccount/token";
  std::string ca_file = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";
  std::vector<std::string> pod_labels;  // copied onto podsight_pod_info as label_<name>; "*": all
  std::int64_t request_timeout_seconds = 30;
  std::int64_t list_page_size = 500;
  std::int64_t max_response_bytes = 32 << 20;
  std::int64_t max_pods = 5000;
};

// Series limits and label policy applied to every family collectors produce.
struct CardinalityConfig {
  std::int64_t max_series = 10000;
  std::map<std::string, std::int64_t> family_max_series;
  std::vector<std::string> drop_labels;
  std::map<std::string, std::int64_t> label_max_bytes;
};

// Garbage collection of deleted cgroups' map entries, cached paths and deleted pods.
struct GcConfig {
  std::int64_t grace_period_seconds = 120;
  std::int64_t interval_seconds = 15;
  std::int64_t max_deletes_per_pass = 10000;
};

struct Config {
  http::Options http;  // http.listen etc.
  log::Format log_format = log::Format::kJson;
  std::string log_level = "info";
  bool bpf_stats = false;    // turn on the kernel's per-program run-time statistics while running
  std::string cgroup_root;   // empty: detect the cgroup2 mount from /proc/self/mountinfo
  ProgramsConfig programs;
  KubernetesConfig kubernetes;
  CardinalityConfig cardinality;
  GcConfig gc;
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
