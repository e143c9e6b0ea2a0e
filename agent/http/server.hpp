// The agent's HTTP server: cpp-httplib's request parser and router, behind our own connection handling
// so that every connection has a hard deadline, a byte budget and an admission limit.
#pragma once

#include "http/watched_file.hpp"
#include "util/result.hpp"

#include <httplib.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

namespace podsight::http {

// TLS for every route (kubelet HTTPS probes do not verify the certificate, so probes keep working).
// The files are re-read when they change on disk.
struct TlsOptions {
  std::string cert_file;  // PEM certificate, chain after it; TLS is on when this and key_file are set
  std::string key_file;   // PEM private key
  std::string min_version = "1.2";  // "1.2" or "1.3"
  [[nodiscard]] bool enabled() const { return !cert_file.empty(); }
};

// Credentials that authenticated routes require (either one, when both are set). Secrets are read from
// files, re-read when they change, and compared in constant time.
struct AuthOptions {
  std::string bearer_token_file;    // "Authorization: Bearer <token>"
  std::string basic_username;       // "Authorization: Basic ..." with this user name
  std::string basic_password_file;  // ... and the password in this file
  [[nodiscard]] bool enabled() const { return !bearer_token_file.empty() || !basic_username.empty(); }
};

struct Options {
  std::string listen = "0.0.0.0:10795";  // "HOST:PORT", "[V6]:PORT" or ":PORT"; port 0 picks a free one
  int request_timeout_seconds = 10;      // whole request head + body must arrive within this
  int write_timeout_seconds = 10;        // whole response must be written within this
  int idle_timeout_seconds = 30;         // keep-alive: how long an idle connection is kept
  std::size_t max_connections = 32;      // connections served at once; more get 503 and are closed
  std::size_t worker_threads = 4;
  std::size_t max_request_bytes = 16384;  // request line + headers + body
  std::size_t keep_alive_max_requests = 100;
  TlsOptions tls;
  AuthOptions auth;
};

// Whether a route asks for the credentials of Options::auth (when any are configured).
enum class Access { kAuthenticated, kPublic };

// Where a streamed response body goes (Response::stream).
class BodySink {
 public:
  virtual ~BodySink() = default;
  // About how big the whole body will be, uncompressed: lets a body that stays plain be one allocation.
  virtual void expect(std::size_t bytes) = 0;
  // Appends a piece of the body.
  virtual void write(std::string_view piece) = 0;
};

struct Response {
  Response() = default;
  Response(int status_code, std::string type, std::string text)
      : status(status_code), content_type(std::move(type)), body(std::move(text)) {}

  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  // When set, the body is written through this instead, right after the handler returns (an
  // exception makes it a 500). When the client accepts gzip, a body that grows past a small size is
  // compressed as its pieces come, so a large body never exists uncompressed in full.
  std::function<void(BodySink&)> stream;
};

// Called once per answered request, for self-metrics and access logs.
struct RequestEvent {
  std::string_view method;
  std::string_view path;  // the route that matched, or "other" for unknown paths
  int status = 0;
  double seconds = 0;
  std::size_t response_bytes = 0;
};

class Server {
 public:
  using Handler = std::function<Response(const httplib::Request&)>;

  explicit Server(Options options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Registers `handler` for GET (and HEAD) on exactly `path`. Must be called before start().
  void route(const std::string& path, Handler handler, Access access = Access::kAuthenticated);
  void on_request(std::function<void(const RequestEvent&)> observer);
  // Told about every reload of a TLS or credential file after start(). Must be called before start().
  void on_reload(ReloadObserver observer);

  // Binds and starts serving on a background thread. An error names the address and errno.
  Status start();
  // Stops accepting, finishes or cuts in-flight requests within the write timeout, joins the thread.
  void stop();

  [[nodiscard]] int port() const;  // the bound port, also when Options asked for port 0
  [[nodiscard]] std::uint64_t rejected_connections() const;  // turned away by max_connections
  // False before start(), after stop(), and if httplib's accept loop gave up (it does on errors such as
  // ENFILE or ENOBUFS): readiness can then report that metrics are no longer reachable.
  [[nodiscard]] bool serving() const;
  // notAfter of the TLS certificate being served (Unix seconds); 0 without TLS.
  [[nodiscard]] std::int64_t tls_certificate_not_after() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// Reads the TLS and credential files of `options` once, as start() will: an error names the file and
// what is wrong with it. Lets the agent refuse a bad configuration before it loads anything.
Status check_security_files(const Options& options);

// Splits "HOST:PORT", "[V6]:PORT" or ":PORT" (host then "0.0.0.0"). Port must be 0..65535.
Result<std::pair<std::string, int>> parse_listen_address(std::string_view listen);

}  // namespace podsight::http
