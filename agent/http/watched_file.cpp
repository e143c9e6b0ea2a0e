// Change detection and reading of the HTTP server's secret files.
#include "http/watched_file.hpp"

#include <sys/stat.h>

#include <fstream>

namespace podsight::http {
namespace {

constexpr std::size_t kMaxSecretBytes = 64 * 1024;

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

}  // namespace

FileStamp stamp_of(const std::string& path) {
  struct stat st {};
  FileStamp s;
  // stat, not lstat: a Secret volume swaps a symlink, and what matters is the file it points to now.
  if (::stat(path.c_str(), &st) != 0) {
    s.err = errno;
    return s;
  }
  s.dev = st.st_dev;
  s.ino = st.st_ino;
  s.size = st.st_size;
  s.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  s.ctime_ns = static_cast<std::int64_t>(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec;
  return s;
}

FileWatch::FileWatch(std::vector<std::string> paths, std::chrono::steady_clock::duration interval)
    : paths_(std::move(paths)), interval_(interval) {}

std::vector<FileStamp> FileWatch::stamps() const {
  std::vector<FileStamp> out;
  out.reserve(paths_.size());
  for (const auto& p : paths_) out.push_back(stamp_of(p));
  return out;
}

void FileWatch::remember() {
  auto now = stamps();
  std::lock_guard lock(mu_);
  seen_ = std::move(now);
  next_check_ = std::chrono::steady_clock::now() + interval_;
}

bool FileWatch::changed() {
  std::lock_guard lock(mu_);
  const auto now = std::chrono::steady_clock::now();
  if (now < next_check_) return false;
  next_check_ = now + interval_;
  auto current = stamps();
  if (current == seen_) return false;
  seen_ = std::move(current);
  return true;
}

Result<std::string> read_secret_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return errno_error("cannot read secret file", path);
  std::string content;
  content.resize(kMaxSecretBytes + 1);
  in.read(content.data(), static_cast<std::streamsize>(content.size()));
  if (in.bad()) return errno_error("cannot read secret file", path);
  content.resize(static_cast<std::size_t>(in.gcount()));
  if (content.size() > kMaxSecretBytes) return Error{"secret file is larger than 64 KiB", path, 0};
  std::size_t begin = 0;
  std::size_t end = content.size();
  while (begin < end && is_space(content[begin])) ++begin;
  while (end > begin && is_space(content[end - 1])) --end;
  if (begin == end) return Error{"secret file is empty", path, 0};
  return content.substr(begin, end - begin);
}

}  // namespace podsight::http
