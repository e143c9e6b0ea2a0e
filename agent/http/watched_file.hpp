// Files the HTTP server reads secrets from (TLS certificate and key, bearer token, password), and how
// it notices that they changed on disk: stat() at most once a second, so that both an atomic symlink
// swap (how Kubernetes updates Secret volumes) and a rewrite in place are seen without a restart.
#pragma once

#include "util/result.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

namespace podsight::http {

// What stat() says about a file; two equal stamps mean "unchanged". A file that cannot be stat'ed has
// its errno here, so its disappearing and reappearing are changes too.
struct FileStamp {
  std::uint64_t dev = 0;
  std::uint64_t ino = 0;
  std::int64_t size = -1;
  std::int64_t mtime_ns = 0;
  std::int64_t ctime_ns = 0;
  int err = 0;
  bool operator==(const FileStamp&) const = default;
};
FileStamp stamp_of(const std::string& path);

// Decides when a set of files is worth reading again.
class FileWatch {
 public:
  explicit FileWatch(std::vector<std::string> paths,
                     std::chrono::steady_clock::duration interval = std::chrono::seconds(1));
  // Records the files' current stamps. Call it just before reading them: a change made while they are
  // being read then still shows at the next check.
  void remember();
  // True at most once per interval, when a stamp differs from the recorded ones; records the new
  // stamps, so that a failed reload is retried at the next change, not at every call. Thread-safe.
  bool changed();

 private:
  std::vector<FileStamp> stamps() const;

  std::vector<std::string> paths_;
  std::chrono::steady_clock::duration interval_;
  std::mutex mu_;
  std::vector<FileStamp> seen_;
  std::chrono::steady_clock::time_point next_check_{};
};

// A secret the HTTP server reloaded (or failed to reload), for logs and podsight_http_secret_reloads_total.
struct SecretReload {
  std::string secret;  // "tls_certificate", "bearer_token", "basic_password"
  bool ok = false;
  std::string error;  // when !ok
};
using ReloadObserver = std::function<void(const SecretReload&)>;

// Reads a secret file whole and trims surrounding whitespace (a trailing newline is usual; Prometheus
// trims its bearer_token_file the same way). Empty, unreadable or larger than 64 KiB is an error that
// names the file.
Result<std::string> read_secret_file(const std::string& path);

}  // namespace podsight::http
