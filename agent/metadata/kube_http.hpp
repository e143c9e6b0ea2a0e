// HTTPS GET for the Kubernetes API client: one request per TLS connection, the server certificate
// always verified, every wait (DNS, connect, handshake, each read) bounded by a deadline and woken at
// once by a Canceller, so the watch thread can be stopped within the agent's SIGTERM budget. The body
// is streamed to the caller in pieces; nothing here buffers more than the response head (bounded).
#pragma once

#include "util/result.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace podsight::metadata {

// Wakes every wait of the requests given it; once cancelled it stays cancelled. Thread-safe.
class Canceller {
 public:
  Canceller();
  ~Canceller();
  Canceller(const Canceller&) = delete;
  Canceller& operator=(const Canceller&) = delete;

  void cancel();
  [[nodiscard]] bool cancelled() const;
  [[nodiscard]] int fd() const { return fd_; }  // readable once cancelled
  // Sleeps for `d`; false if cancelled before or during the sleep.
  bool sleep_for(std::chrono::milliseconds d) const;

 private:
  int fd_ = -1;
};

struct HttpsTarget {
  std::string host;  // DNS name or IP literal (IPv6 without brackets)
  int port = 443;
  std::string server_name;      // the name the certificate must carry; empty: host
  std::string ca_pem;           // trusted CA certificates; required
  std::string client_cert_pem;  // optional client certificate and key (kubeconfig users)
  std::string client_key_pem;
};

enum class HttpFailure {
  kCancelled,  // the Canceller fired
  kResolve,    // DNS
  kConnect,    // TCP
  kTls,        // handshake, certificate verification, CA or client certificate unusable
  kTimeout,    // a deadline passed
  kProtocol,   // the response is not HTTP/1.1 as we speak it, or the connection ended mid-response
  kAborted,    // the caller's handler asked to stop
};
std::string_view to_string(HttpFailure f);

struct HttpTimeouts {
  std::chrono::milliseconds connect{10000};  // DNS + TCP + TLS handshake
  std::chrono::milliseconds idle{30000};     // longest wait for the next bytes of the response
  std::chrono::milliseconds total{0};        // the whole exchange; 0: no limit (watches)
};

struct HttpHead {
  int status = 0;
  std::string content_type;
};

struct HttpOutcome {
  int status = 0;  // 0 when no status line was read
  std::optional<HttpFailure> failure;
  std::string message;  // what failed, for logs and /readyz
  [[nodiscard]] bool ok() const { return !failure.has_value(); }
};

using HeadHandler = std::function<bool(const HttpHead&)>;   // false: stop (kAborted)
using BodyHandler = std::function<bool(std::string_view)>;  // false: stop (kAborted)

// GET `target` ("/api/v1/pods?..."). `headers` are added to Host, User-Agent, Accept and
// Connection: close. The body (de-chunked) goes to `on_body` in pieces of at most 16 KiB.
HttpOutcome https_get(const HttpsTarget& server, const std::string& target,
                      const std::vector<std::pair<std::string, std::string>>& headers,
                      const HttpTimeouts& timeouts, const Canceller& cancel, const HeadHandler& on_head,
                      const BodyHandler& on_body);

// Percent-encodes everything but RFC 3986 unreserved characters (for query values).
std::string url_encode(std::string_view s);

// Incremental decoder of a chunked body (RFC 9112 section 7.1), bounded: a size line longer than
// 1 KiB or trailers longer than 16 KiB are protocol errors.
class ChunkedDecoder {
 public:
  enum class State { kMore, kDone, kError, kAborted };
  // Feeds bytes; calls `on_data` with chunk data. Bytes after the end of the body are left unread.
  State feed(std::string_view in, const BodyHandler& on_data);
  [[nodiscard]] const std::string& error() const { return error_; }

 private:
  enum class Phase { kSize, kData, kDataEnd, kTrailer, kDone };
  Phase phase_ = Phase::kSize;
  std::string line_;
  std::uint64_t remaining_ = 0;
  std::size_t trailer_bytes_ = 0;
  std::string error_;
};

}  // namespace podsight::metadata
