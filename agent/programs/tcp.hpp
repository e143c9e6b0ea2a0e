// tcp program family: connection lifecycle, payload bytes and retransmits per (cgroup, direction),
// with a BPF TCP iterator that folds still-open connections into the counters at scrape time.
#pragma once

#include "bpf/handles.hpp"
#include "programs/program.hpp"

#include <linux/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>

struct tcp_bpf;

namespace podsight::programs {

class Tcp final : public Family {
 public:
  explicit Tcp(const config::TcpConfig& cfg);
  ~Tcp() override;

  [[nodiscard]] std::string_view name() const override { return "tcp"; }
  [[nodiscard]] bool enabled() const override { return cfg_.enabled; }
  [[nodiscard]] std::vector<MapRef> maps() const override;
  [[nodiscard]] std::vector<ProgRef> progs() const override;
  [[nodiscard]] int map_errors_fd() const override;
  [[nodiscard]] std::uint32_t map_errors_entries() const override;

  // fd of the open-connection hash (tcp_conn_key -> tcp_conn), -1 when not loaded.
  [[nodiscard]] int conns_fd() const;
  // fd of the per-CPU (cgroup, direction) -> tcp_stats hash, -1 when not loaded.
  [[nodiscard]] int stats_fd() const;
  // True when the iterator is attached (bytes of open connections are counted at every scrape).
  [[nodiscard]] bool has_iterator() const;

  // Runs the TCP iterator in each network namespace of `netns` (inode numbers), which adds the bytes
  // still-open sockets carried since the last fold to tcp_stats. A namespace no process or bind mount
  // opens any more is skipped (its sockets are folded when they close); one that cannot be entered or
  // walked is an error naming it, after the others were walked.
  Status fold_open_connections(const std::set<std::uint32_t>& netns) const;

 protected:
  Result<std::string> do_start(Context& ctx) override;
  void do_stop() override;

 private:
  Status try_variant(const std::string& variant, Context& ctx);
  // Runs the iterator in every network namespace on the host, so connections open before the agent
  // started get an entry (direction unknown, bytes counted from now on).
  void adopt_existing_connections();
  // Runs the iterator once in the network namespace of the calling thread.
  Status run_iterator() const;
  // Paths (/proc/PID/ns/net or /var/run/netns/NAME) that open these namespaces; rescans when one is
  // unknown or stale.
  std::map<std::uint32_t, std::string> netns_paths(const std::set<std::uint32_t>& wanted) const;

  config::TcpConfig cfg_;
  bpf::Skeleton<tcp_bpf> skel_;
  bpf::Link state_link_;
  bpf::Link retransmit_link_;
  bpf::Link synack_link_;
  bpf::Link iter_link_;
  std::string variant_;
  std::string iter_problem_;  // why the iterator is not attached, empty when it is

  static constexpr std::chrono::seconds kNetnsRescanInterval{5};
  mutable std::mutex netns_mu_;
  mutable std::map<std::uint32_t, std::string> netns_cache_;
  // Namespaces with tracked sockets that no path opened at the last scan, and when that was.
  mutable std::map<std::uint32_t, std::chrono::steady_clock::time_point> unreachable_;
};

}  // namespace podsight::programs
