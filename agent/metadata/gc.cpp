// Garbage collector pass: walk the keys of every cgroup-keyed map, note cgroup ids that no longer
// exist, delete their entries once they have been gone for the grace period.
#include "metadata/gc.hpp"

#include "bpf/maps.hpp"
#include "log/log.hpp"
#include "metrics/family_builder.hpp"

#include <bpf/bpf.h>

#include <cerrno>
#include <cstring>
#include <unordered_set>

namespace podsight::metadata {

using Clock = std::chrono::steady_clock;

GarbageCollector::GarbageCollector(GcOptions options, std::vector<const programs::Family*> families,
                                   CgroupPaths& cgroups, PodStore* pods)
    : options_(options), families_(std::move(families)), cgroups_(cgroups), pods_(pods) {}

GarbageCollector::~GarbageCollector() { stop(); }

void GarbageCollector::start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { loop(); });
}

void GarbageCollector::stop() {
  {
    std::lock_guard lock(wake_mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void GarbageCollector::loop() {
  std::unique_lock lock(wake_mu_);
  while (!wake_.wait_for(lock, options_.interval, [this] { return stopping_; })) {
    lock.unlock();
    run_pass();
    lock.lock();
  }
}

GarbageCollector::PassResult GarbageCollector::run_pass() {
  std::lock_guard pass(pass_mu_);
  const auto t0 = Clock::now();
  PassResult result;
  std::unordered_map<std::uint64_t, bool> alive;  // one existence check per cgroup id per pass
  std::unordered_set<std::uint64_t> seen;
  std::unordered_set<std::uint64_t> deferred;  // past the grace period, left for the next pass (budget)
  std::size_t budget = options_.max_deletes_per_pass;
  std::map<std::string, std::uint64_t> deleted_now;

  for (const auto* f : families_) {
    const auto st = f->status().state;
    if (st != programs::State::kAttached && st != programs::State::kDegraded) continue;
    for (const auto& m : f->maps()) {
      if (m.cgroup_id_offset < 0 || m.fd < 0) continue;
      const auto offset = static_cast<std::size_t>(m.cgroup_id_offset);
      if (offset + sizeof(std::uint64_t) > m.key_size) {
        log::error("map key too small for its cgroup id offset",
                   {{"map", m.name}, {"offset", m.cgroup_id_offset}});
        continue;
      }
      std::vector<std::vector<unsigned char>> victims;
      auto walked = bpf::for_each_key(
          m.fd, m.key_size,
          [&](const void* key) {
            std::uint64_t id = 0;
            std::memcpy(&id, static_cast<const unsigned char*>(key) + offset, sizeof id);
            seen.insert(id);
            auto [it, fresh] = alive.try_emplace(id, false);
            if (fresh) it->second = cgroups_.exists(id);
            if (it->second) {
              gone_since_.erase(id);
              return;
            }
            const auto since = gone_since_.try_emplace(id, t0).first->second;
            if (t0 - since < options_.grace) return;
            if (victims.size() >= budget) {
              deferred.insert(id);
              return;
            }
            const auto* k = static_cast<const unsigned char*>(key);
            victims.emplace_back(k, k + m.key_size);
          },
          m.name, static_cast<std::size_t>(m.capacity) * 2);
      if (!walked) {
        log::warn("garbage collection could not walk a map",
                  {{"map", m.name}, {"error", walked.error().message()}});
        continue;
      }
      for (const auto& key : victims) {
        if (bpf_map_delete_elem(m.fd, key.data()) == 0) {
          ++deleted_now[m.name];
          ++result.deleted;
        } else if (errno != ENOENT) {
          log::warn("garbage collection could not delete a map entry",
                    {{"map", m.name}, {"error", errno_error("BPF_MAP_DELETE_ELEM", m.name).message()}});
        }
      }
      budget -= std::min(budget, victims.size());
    }
  }
  // Forget ids that no map holds any more (their entries were deleted, or evicted by the kernel).
  std::erase_if(gone_since_, [&](const auto& e) { return seen.count(e.first) == 0; });
  for (const auto& [id, since] : gone_since_)
    result.pending += t0 - since < options_.grace || deferred.count(id) ? 1 : 0;

  cgroups_.forget_deleted(options_.grace);
  // Deleted pods two passes longer than cgroups: the entries of a pod's cgroups, removed around the
  // time the pod object goes (in either order, within a pass), go first, so their series never lose the
  // pod's labels before they disappear.
  if (pods_ != nullptr) pods_->forget_deleted(options_.grace + 2 * options_.interval, Clock::now());

  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  std::lock_guard lock(stats_mu_);
  for (const auto& [name, n] : deleted_now) deleted_[name] += n;
  pending_ = result.pending;
  last_pass_seconds_ = secs;
  ++passes_;
  if (result.deleted > 0) log::debug("garbage collected map entries", {{"entries", result.deleted}});
  return result;
}

void GarbageCollector::collect(metrics::Families& out) const {
  using prometheus::MetricType;
  metrics::FamilyBuilder deleted("podsight_gc_deleted_entries_total",
                                 "BPF map entries of deleted cgroups removed after the grace period.",
                                 MetricType::Counter, {"map"});
  metrics::FamilyBuilder pending("podsight_gc_pending_cgroups",
                                 "Deleted cgroups whose map entries wait for the grace period to end.",
                                 MetricType::Gauge, {});
  metrics::FamilyBuilder seconds("podsight_gc_pass_duration_seconds",
                                 "Time the last garbage collection pass took (map walks and deletions).",
                                 MetricType::Gauge, {});
  metrics::FamilyBuilder paths("podsight_cgroup_paths_cached",
                               "Cgroup ids whose path the agent holds: cgroups it has seen that exist, and "
                               "removed ones within the grace period.",
                               MetricType::Gauge, {});
  paths.add(std::vector<std::string>{}, static_cast<double>(cgroups_.cached()));
  {
    std::lock_guard lock(stats_mu_);
    for (const auto* f : families_) {
      for (const auto& m : f->maps()) {
        if (m.cgroup_id_offset < 0) continue;
        auto it = deleted_.find(m.name);
        deleted.add({m.name}, it == deleted_.end() ? 0 : static_cast<double>(it->second));
      }
    }
    pending.add(std::vector<std::string>{}, static_cast<double>(pending_));
    seconds.add(std::vector<std::string>{}, last_pass_seconds_);
  }
  out.push_back(deleted.take());
  out.push_back(pending.take());
  out.push_back(seconds.take());
  out.push_back(paths.take());
}

}  // namespace podsight::metadata
