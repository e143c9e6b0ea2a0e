// cgroup v2 id -> path, as the kernel hands us ids (bpf_get_current_cgroup_id, the socket's cgroup) and
// users want paths. Cached; unknown ids resolved on demand; ids of deleted cgroups forgotten on request.
#pragma once

#include "util/result.hpp"

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

namespace podsight::metadata {

class CgroupPaths {
 public:
  // `root` is the cgroup2 mount point, e.g. /sys/fs/cgroup or /sys/fs/cgroup/unified.
  // A miss walks the tree at most once per `rescan_interval`, except for an id newer than every id the
  // last walk saw: cgroup ids only grow, so that cgroup was made after the walk, and one more walk
  // (once per such id) finds it at once. Eager walks are bounded by time share, not by a fixed
  // interval: they may take at most `eager_share` of the wall time (a walk that took d waits
  // d * (1/share - 1) before the next eager one), so a small tree is rewalked within a millisecond and
  // a huge one cannot eat the agent's CPU. Without file handles (no CAP_DAC_READ_SEARCH) this is what
  // keeps a fresh pod from showing up late or as "(unknown)".
  explicit CgroupPaths(std::string root,
                       std::chrono::milliseconds rescan_interval = std::chrono::milliseconds(1000),
                       double eager_share = 0.05);

  [[nodiscard]] const std::string& root() const { return root_; }

  // The path relative to the root ("/" for the root itself, "/system.slice/ssh.service"), or nullopt
  // if no cgroup with this id exists (anymore). A cheaper direct lookup by file handle is tried first
  // where permitted; then a walk, rate-limited as the constructor says.
  std::optional<std::string> path(std::uint64_t id);

  // The cgroup id of a path relative to the root (the inode number of its directory).
  static Result<std::uint64_t> id_of(const std::string& absolute_path);

  // Drops cached ids whose directory no longer exists. Returns how many were dropped.
  std::size_t forget_deleted() { return forget_deleted(std::chrono::steady_clock::duration::zero()); }
  // Same with a grace period: a deleted cgroup keeps its path for `grace` after this call first saw it
  // gone, so that its leftover map entries keep their labels until the garbage collector deletes them.
  std::size_t forget_deleted(std::chrono::steady_clock::duration grace);

  // Whether a cgroup with this id exists now: a stat of its cached path, else a lookup by handle or
  // (at most once per rescan interval) a tree walk.
  bool exists(std::uint64_t id);

  [[nodiscard]] std::size_t cached() const;
  [[nodiscard]] std::uint64_t walks() const;

 private:
  int open_by_id(std::uint64_t id);  // fd of the cgroup's directory, or -errno
  std::optional<std::string> by_handle(std::uint64_t id);
  void walk_locked();
  // Walks if the rate limits allow one for a miss on `id`; true if it walked.
  bool walk_for_miss_locked(std::uint64_t id);

  std::string root_;
  std::chrono::milliseconds rescan_interval_;
  double eager_share_;
  mutable std::mutex mu_;
  bool alive_locked(std::uint64_t id, const std::string& rel) const;

  std::unordered_map<std::uint64_t, std::string> paths_;
  std::unordered_map<std::uint64_t, std::chrono::steady_clock::time_point> gone_since_;
  std::chrono::steady_clock::time_point last_walk_{};      // when the last walk ended
  std::chrono::steady_clock::duration last_walk_took_{};  // and how long it took
  std::chrono::steady_clock::time_point last_full_walk_{};  // last walk the rescan interval allowed
  bool walked_ = false;
  std::uint64_t newest_walked_ = 0;  // the largest id the walks have seen
  // Ids newer than newest_walked_ that an eager walk did not find (made and gone between two walks):
  // they get no second eager walk until the next interval walk. Bounded.
  std::unordered_set<std::uint64_t> eager_misses_;
  std::uint64_t walks_ = 0;
  bool handles_work_ = true;
  bool handles_proven_ = false;  // a lookup by handle has succeeded: its ESTALE means "no such id"
};

}  // namespace podsight::metadata
