// Garbage collection of what deleted cgroups leave behind: BPF map entries keyed by their cgroup id
// (every MapRef with a cgroup_id_offset), their cached cgroup paths and the deleted pods' metadata,
// all after a grace period (so Prometheus scrapes a deleted pod's last counts). Runs on its own thread
// on a fixed schedule, never inside a scrape, with a bounded number of deletions per pass.
#pragma once

#include "metadata/cgroups.hpp"
#include "metadata/pods.hpp"
#include "programs/program.hpp"

#include "metrics/family.hpp"

#include <prometheus/metric_family.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace podsight::metadata {

struct GcOptions {
  std::chrono::milliseconds grace{120000};
  std::chrono::milliseconds interval{15000};
  std::size_t max_deletes_per_pass = 10000;
};

class GarbageCollector {
 public:
  // `families` and the stores outlive the collector; `pods` may be null (Kubernetes metadata off).
  GarbageCollector(GcOptions options, std::vector<const programs::Family*> families, CgroupPaths& cgroups,
                   PodStore* pods);
  ~GarbageCollector();
  GarbageCollector(const GarbageCollector&) = delete;
  GarbageCollector& operator=(const GarbageCollector&) = delete;

  void start();
  void stop();  // wakes and joins the thread; idempotent

  struct PassResult {
    std::size_t deleted = 0;  // map entries
    std::size_t pending = 0;  // cgroup ids in maps whose cgroup is gone, waiting for the grace period
  };
  // One pass now (the thread calls it every interval).
  PassResult run_pass();

  // podsight_gc_* self-metrics.
  void collect(metrics::Families& out) const;

 private:
  void loop();

  GcOptions options_;
  std::vector<const programs::Family*> families_;
  CgroupPaths& cgroups_;
  PodStore* pods_;

  std::mutex pass_mu_;  // one pass at a time
  std::unordered_map<std::uint64_t, std::chrono::steady_clock::time_point>
      gone_since_;  // cgroup id -> first seen gone

  mutable std::mutex stats_mu_;
  std::map<std::string, std::uint64_t> deleted_;  // map name -> entries deleted
  std::size_t pending_ = 0;
  double last_pass_seconds_ = 0;
  std::uint64_t passes_ = 0;

  std::mutex wake_mu_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace podsight::metadata
