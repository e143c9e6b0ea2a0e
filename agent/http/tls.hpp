// TLS for the agent's HTTP server: an OpenSSL server context built from PEM files and rebuilt, without a
// restart, when they change on disk. A rebuild that fails (say, a key that does not match the new
// certificate half-way through a rotation) keeps the context in use and is retried at the next change.
#pragma once

#include "http/server.hpp"
#include "http/watched_file.hpp"
#include "util/result.hpp"

#include <openssl/ssl.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

namespace podsight::http {

class TlsContext {
 public:
  // Loads the files now; the error names the file and OpenSSL's reason.
  static Result<std::unique_ptr<TlsContext>> create(const TlsOptions& options, ReloadObserver observer = {});

  // The context for a new connection, rebuilt first when the files changed. Never null.
  std::shared_ptr<SSL_CTX> current();
  // notAfter of the certificate in use, Unix seconds.
  [[nodiscard]] std::int64_t not_after() const;

 private:
  TlsContext(TlsOptions options, ReloadObserver observer);
  struct Loaded {
    std::shared_ptr<SSL_CTX> ctx;
    std::int64_t not_after = 0;
  };
  static Result<Loaded> load(const TlsOptions& options);

  TlsOptions options_;
  ReloadObserver observer_;
  FileWatch watch_;
  mutable std::mutex mu_;
  Loaded loaded_;
};

}  // namespace podsight::http
