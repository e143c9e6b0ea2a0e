// cgroup id -> path: open_by_handle_at on the cgroup2 mount (kernfs exports ids as file handles), else a
// bounded-rate walk of the tree comparing directory inode numbers, which equal cgroup ids on cgroup2.
#include "metadata/cgroups.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <vector>

namespace podsight::metadata {
namespace {

// FILEID_KERNFS from include/linux/exportfs.h: kernfs node id as a 64-bit handle.
constexpr int kFileIdKernfs = 0xfe;

// Directory entries deeper than this are not walked: kubelet trees are 5-6 deep; the bound keeps a
// hostile or pathological tree from turning a scrape into an unbounded walk.
constexpr int kMaxDepth = 32;

}  // namespace

CgroupPaths::CgroupPaths(std::string root, std::chrono::milliseconds rescan_interval,
                         double eager_share)
    : root_(std::move(root)),
      rescan_interval_(rescan_interval),
      eager_share_(eager_share > 0.0 && eager_share <= 1.0 ? eager_share : 0.05) {
  while (root_.size() > 1 && root_.back() == '/') root_.pop_back();
}

Result<std::uint64_t> CgroupPaths::id_of(const std::string& absolute_path) {
  struct stat st {};
  if (::stat(absolute_path.c_str(), &st) != 0) return errno_error("stat", absolute_path);
  return static_cast<std::uint64_t>(st.st_ino);
}

int CgroupPaths::open_by_id(std::uint64_t id) {
  if (!handles_work_) return -EOPNOTSUPP;
  int mount_fd = ::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (mount_fd < 0) return -errno;
  alignas(file_handle) unsigned char buf[sizeof(file_handle) + sizeof(std::uint64_t)];
  auto* fh = reinterpret_cast<file_handle*>(buf);
  fh->handle_bytes = sizeof(std::uint64_t);
  fh->handle_type = kFileIdKernfs;
  std::memcpy(fh->f_handle, &id, sizeof id);
  int fd = ::open_by_handle_at(mount_fd, fh, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int err = errno;
  ::close(mount_fd);
  if (fd >= 0) {
    handles_proven_ = true;
    return fd;
  }
  // EPERM: no CAP_DAC_READ_SEARCH (e.g. the chart's least-privilege set) -> walk instead, for good.
  if (err == EPERM || err == EOPNOTSUPP || err == EINVAL) handles_work_ = false;
  return -err;
}

std::optional<std::string> CgroupPaths::by_handle(std::uint64_t id) {
  const int fd = open_by_id(id);
  if (fd < 0) return std::nullopt;
  char link[64];
  std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  std::string target(PATH_MAX, '\0');
  ssize_t n = ::readlink(link, target.data(), target.size());
  ::close(fd);
  if (n <= 0) return std::nullopt;
  target.resize(static_cast<std::size_t>(n));
  // readlink gives the path as seen from our mount namespace; it must be under the root we use.
  if (target == root_) return std::string("/");
  if (target.size() > root_.size() && target.compare(0, root_.size(), root_) == 0 && target[root_.size()] == '/') {
    return target.substr(root_.size());
  }
  return std::nullopt;
}

void CgroupPaths::walk_locked() {
  ++walks_;
  const auto started = std::chrono::steady_clock::now();
  walked_ = true;
  struct Dir {
    std::string rel;
    int depth;
  };
  std::vector<Dir> stack{{"", 0}};
  while (!stack.empty()) {
    Dir d = std::move(stack.back());
    stack.pop_back();
    std::string abs = root_ + d.rel;
    DIR* dir = ::opendir(abs.empty() ? "/" : abs.c_str());
    if (dir == nullptr) continue;  // deleted while we walk: fine
    struct stat st {};
    if (::fstat(::dirfd(dir), &st) == 0) {
      paths_[st.st_ino] = d.rel.empty() ? "/" : d.rel;
      newest_walked_ = std::max<std::uint64_t>(newest_walked_, st.st_ino);
    }
    while (dirent* e = ::readdir(dir)) {
      if (e->d_type != DT_DIR) continue;  // cgroupfs always fills d_type
      if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
      if (d.depth + 1 > kMaxDepth) continue;
      stack.push_back({d.rel + "/" + e->d_name, d.depth + 1});
    }
    ::closedir(dir);
  }
  last_walk_ = std::chrono::steady_clock::now();
  last_walk_took_ = last_walk_ - started;
}

std::optional<std::string> CgroupPaths::path(std::uint64_t id) {
  std::lock_guard lock(mu_);
  if (auto it = paths_.find(id); it != paths_.end()) return it->second;
  if (auto p = by_handle(id)) {
    paths_[id] = *p;
    return p;
  }
  if (walk_for_miss_locked(id)) {
    if (auto it = paths_.find(id); it != paths_.end()) return it->second;
  }
  return std::nullopt;
}

bool CgroupPaths::walk_for_miss_locked(std::uint64_t id) {
  const auto now = std::chrono::steady_clock::now();
  if (!walked_ || now - last_full_walk_ >= rescan_interval_) {
    eager_misses_.clear();
    last_full_walk_ = now;
    walk_locked();
    return true;
  }
  constexpr std::size_t kMaxEagerMisses = 4096;
  const auto eager_wait = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      last_walk_took_ * (1.0 / eager_share_ - 1.0));
  if (id <= newest_walked_ || eager_misses_.count(id) != 0 || now - last_walk_ < eager_wait ||
      eager_misses_.size() >= kMaxEagerMisses) {
    return false;
  }
  walk_locked();
  if (paths_.count(id) == 0) eager_misses_.insert(id);
  return true;
}

bool CgroupPaths::alive_locked(std::uint64_t id, const std::string& rel) const {
  struct stat st {};
  const std::string abs = root_ + (rel == "/" ? "" : rel);
  return ::stat(abs.c_str(), &st) == 0 && static_cast<std::uint64_t>(st.st_ino) == id;
}

std::size_t CgroupPaths::forget_deleted(std::chrono::steady_clock::duration grace) {
  std::lock_guard lock(mu_);
  const auto now = std::chrono::steady_clock::now();
  std::size_t dropped = 0;
  for (auto it = paths_.begin(); it != paths_.end();) {
    if (alive_locked(it->first, it->second)) {
      gone_since_.erase(it->first);
      ++it;
      continue;
    }
    const auto since = gone_since_.try_emplace(it->first, now).first->second;
    if (now - since >= grace) {
      gone_since_.erase(it->first);
      it = paths_.erase(it);
      ++dropped;
    } else {
      ++it;
    }
  }
  return dropped;
}

bool CgroupPaths::exists(std::uint64_t id) {
  std::lock_guard lock(mu_);
  if (auto it = paths_.find(id); it != paths_.end()) return alive_locked(id, it->second);
  const int fd = open_by_id(id);
  if (fd >= 0) {
    ::close(fd);
    return true;  // it exists, even where it is not under our root (a cgroup namespace)
  }
  // ESTALE from a file system that has resolved ids before: no cgroup has this id.
  if (handles_work_ && handles_proven_) return false;
  // Without file handles a walk (rate-limited) is the only way to know.
  walk_for_miss_locked(id);
  return paths_.count(id) != 0;
}

std::size_t CgroupPaths::cached() const {
  std::lock_guard lock(mu_);
  return paths_.size();
}

std::uint64_t CgroupPaths::walks() const {
  std::lock_guard lock(mu_);
  return walks_;
}

}  // namespace podsight::metadata
