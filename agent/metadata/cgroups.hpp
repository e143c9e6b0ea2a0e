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

namespace podsight::metadata {

class CgroupPaths {
 public:
  // `root` is the cgroup2 mount point, e.g. /sys/fs/cgroup or /sys/fs/cgroup/unified.
  explicit CgroupPaths(std::string root,
                       std::chrono::milliseconds rescan_interval = std::chrono::milliseconds(1000));

  [[nodiscard]] const std::string& root() const { return root_; }

  // The path relative to the root ("/" for the root itself, "/system.slice/ssh.service"), or nullopt
  // if no cgroup with this id exists (anymore). A miss triggers at most one tree walk per
  // rescan_interval or per round (below); a cheaper direct lookup by file handle is tried first
  // where permitted.
  std::optional<std::string> path(std::uint64_t id);

  // A new scrape begins: its first miss may walk even within the rescan interval, so that a cgroup
  // made since the last walk is resolved in the scrape that first sees it rather than labelled
  // "(unknown)" (which would also make the "(unknown)" counters go down again a scrape later).
  // Without file handles (no CAP_DAC_READ_SEARCH, the chart's set) every miss depends on walks.
  void next_round();

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

  std::string root_;
  std::chrono::milliseconds rescan_interval_;
  mutable std::mutex mu_;
  bool alive_locked(std::uint64_t id, const std::string& rel) const;

  std::unordered_map<std::uint64_t, std::string> paths_;
  std::unordered_map<std::uint64_t, std::chrono::steady_clock::time_point> gone_since_;
  std::chrono::steady_clock::time_point last_walk_{};
  bool walked_ = false;
  bool walked_this_round_ = false;
  std::uint64_t walks_ = 0;
  bool handles_work_ = true;
  bool handles_proven_ = false;  // a lookup by handle has succeeded: its ESTALE means "no such id"
};

}  // namespace podsight::metadata
