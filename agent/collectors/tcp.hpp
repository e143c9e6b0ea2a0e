// tcp collector: connections opened/closed/failed/active, payload bytes and retransmits per workload
// and direction, read from the tcp family's maps after the iterator folded still-open connections;
// with remote labels on, the same for outbound connections per remote endpoint.
#pragma once

#include "collectors/collector.hpp"
#include "metadata/remote.hpp"
#include "metadata/workload.hpp"
#include "programs/tcp.hpp"

#include <chrono>
#include <map>
#include <set>
#include <unordered_map>
#include <utility>

namespace podsight::collectors {

class Tcp final : public Collector {
 public:
  // `remote` (null when remote labels are off) names endpoint ids; endpoints retired longer than
  // `grace` are forgotten and their counters deleted.
  Tcp(const programs::Tcp& program, metadata::WorkloadResolver& workloads,
      metadata::RemoteIndex* remote = nullptr, std::chrono::seconds grace = std::chrono::seconds(0))
      : program_(program), workloads_(workloads), remote_(remote), grace_(grace) {}
  [[nodiscard]] std::string_view name() const override { return "tcp"; }
  bool collect(ScrapeContext& ctx, metrics::Families& out) override;

 private:
  using Remote = std::pair<std::uint64_t, std::uint32_t>;  // (cgroup id, endpoint id)
  // podsight_tcp_remote_*; false if the counters could not be read.
  bool collect_remote(ScrapeContext& ctx, const std::map<Remote, std::uint64_t>& active,
                      metrics::Families& out);
  const metadata::Workload& workload(std::uint64_t cgroup_id);

  const programs::Tcp& program_;
  metadata::WorkloadResolver& workloads_;
  metadata::RemoteIndex* remote_;
  std::chrono::seconds grace_;
  std::unordered_map<std::uint64_t, metadata::Workload> seen_;  // this scrape's resolved cgroups
  // Endpoint ids the index forgot whose counters may still be in the map (deleted at the next walk).
  std::set<std::uint32_t> forgotten_;
};

}  // namespace podsight::collectors
