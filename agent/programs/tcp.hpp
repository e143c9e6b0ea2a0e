// tcp program family: connection lifecycle, payload bytes and retransmits per (cgroup, direction),
// with a scrape-time BPF iterator that folds still-open connections into the counters: one walk of
// the tracked sockets' storage where the kernel allows it, else one iter/tcp walk per network
// namespace.
#pragma once

#include "bpf/handles.hpp"
#include "metadata/remote.hpp"
#include "programs/program.hpp"

#include <linux/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>

struct tcp_bpf;
struct tcp_open_record;

namespace podsight::programs {

// How bytes of open connections reach the counters at scrape time.
enum class OpenConnections {
  kNone,       // no iterator on this kernel: bytes are counted when connections close
  kSkStorage,  // records in socket storage, one iter/bpf_sk_storage_map walk for all namespaces
  kIterTcp,    // records in tcp_conns, one iter/tcp walk per network namespace (setns)
};
std::string_view to_string(OpenConnections m);

// Also the sink of the remote-address index: it keeps the kernel's address -> endpoint map.
class Tcp final : public Family, public metadata::RemoteIndex::Sink {
 public:
  // `remote`: the remote-address index when programs.tcp.remote is enabled, else null.
  Tcp(const config::TcpConfig& cfg, metadata::RemoteIndex* remote = nullptr);
  ~Tcp() override;

  [[nodiscard]] std::string_view name() const override { return "tcp"; }
  [[nodiscard]] bool enabled() const override { return cfg_.enabled; }
  [[nodiscard]] std::vector<MapRef> maps() const override;
  [[nodiscard]] std::vector<ProgRef> progs() const override;
  [[nodiscard]] int map_errors_fd() const override;
  [[nodiscard]] std::uint32_t map_errors_entries() const override;
  [[nodiscard]] std::string detail() const override;

  // fd of the open-connection hash (tcp_conn_key -> tcp_conn), -1 when not loaded.
  [[nodiscard]] int conns_fd() const;
  // fd of the per-CPU (cgroup, direction) -> tcp_stats hash, -1 when not loaded.
  [[nodiscard]] int stats_fd() const;
  // fd of the (cgroup, remote endpoint) -> tcp_remote_stats hash, -1 when not loaded or not enabled.
  [[nodiscard]] int remote_stats_fd() const;

  void assign(const metadata::Address& addr, std::uint32_t id) override;
  void unassign(const metadata::Address& addr) override;
  // Which scrape-time walk is in use; fixed between start() and stop().
  [[nodiscard]] OpenConnections open_connections() const { return open_; }

  // kIterTcp: runs the TCP iterator in each network namespace of `netns` (inode numbers), which adds
  // the bytes still-open sockets carried since the last fold to tcp_stats. A namespace no process or
  // bind mount opens any more is skipped (its sockets are folded when they close); one that cannot be
  // entered or walked is an error naming it, after the others were walked.
  Status fold_open_connections(const std::set<std::uint32_t>& netns) const;
  // kSkStorage: one walk of every tracked socket, in the calling thread: folds what each carried
  // since the last fold into tcp_stats and hands its record to `visit`. Returns the sockets visited.
  Result<std::size_t> walk_open_sockets(const std::function<void(const tcp_open_record&)>& visit) const;

 protected:
  Result<std::string> do_start(Context& ctx) override;
  void do_stop() override;

 private:
  Status try_variant(const std::string& variant, Context& ctx);
  Status load(const std::string& variant, OpenConnections method, bool btf_retransmit, Context& ctx);
  // Runs the per-namespace iterator in every network namespace on the host, so connections open
  // before the agent started get a record (direction unknown, bytes counted from now on).
  void adopt_existing_connections();
  // Runs `link`'s iter/tcp program in each of `netns`, from a thread that enters each in turn.
  Status walk_namespaces(const bpf::Link& link, const std::set<std::uint32_t>& netns) const;
  // Runs an iterator once in the network namespace of the calling thread, discarding its output.
  static Status run_iterator(const bpf::Link& link);
  // Paths (/proc/PID/ns/net or /var/run/netns/NAME) that open these namespaces; rescans when one is
  // unknown or stale.
  std::map<std::uint32_t, std::string> netns_paths(const std::set<std::uint32_t>& wanted) const;

  config::TcpConfig cfg_;
  metadata::RemoteIndex* remote_;
  bpf::Skeleton<tcp_bpf> skel_;
  bpf::Link state_link_;
  bpf::Link retransmit_link_;
  bpf::Link synack_link_;
  bpf::Link iter_link_;     // iter/tcp over tcp_conns (kIterTcp)
  bpf::Link sk_iter_link_;  // iter/bpf_sk_storage_map over tcp_sk (kSkStorage)
  bpf::Link adopt_link_;    // iter/tcp giving open sockets a storage record, at start-up (kSkStorage)
  std::string variant_;
  OpenConnections open_ = OpenConnections::kNone;
  std::string iter_problem_;  // why no iterator is attached, empty when one is

  static constexpr std::chrono::seconds kNetnsRescanInterval{5};
  mutable std::mutex netns_mu_;
  mutable std::map<std::uint32_t, std::string> netns_cache_;
  // Namespaces with tracked sockets that no path opened at the last scan, and when that was.
  mutable std::map<std::uint32_t, std::chrono::steady_clock::time_point> unreachable_;
};

}  // namespace podsight::programs
