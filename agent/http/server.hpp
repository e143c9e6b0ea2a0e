// The agent's HTTP server: cpp-httplib's request parser and router, behind our own connection handling
// so that every connection has a hard deadline, a byte budget and an admission limit.
#pragma once

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

struct Options {
  std::string listen = "0.0.0.0:10795";  // "HOST:PORT", "[V6]:PORT" or ":PORT"; port 0 picks a free one
  int request_timeout_seconds = 10;      // whole request head + body must arrive within this
  int write_timeout_seconds = 10;        // whole response must be written within this
  int idle_timeout_seconds = 30;         // keep-alive: how long an idle connection is kept
  std::size_t max_connections = 32;      // connections served at once; more get 503 and are closed
  std::size_t worker_threads = 4;
  std::size_t max_request_bytes = 16384;  // request line + headers + body
  std::size_t keep_alive_max_requests = 100;
};

struct Response {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
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
  void route(const std::string& path, Handler handler);
  void on_request(std::function<void(const RequestEvent&)> observer);

  // Binds and starts serving on a background thread. An error names the address and errno.
  Status start();
  // Stops accepting, finishes or cuts in-flight requests within the write timeout, joins the thread.
  void stop();

  [[nodiscard]] int port() const;  // the bound port, also when Options asked for port 0
  [[nodiscard]] std::uint64_t rejected_connections() const;  // turned away by max_connections
  // False before start(), after stop(), and if httplib's accept loop gave up (it does on errors such as
  // ENFILE or ENOBUFS): readiness can then report that metrics are no longer reachable.
  [[nodiscard]] bool serving() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// Splits "HOST:PORT", "[V6]:PORT" or ":PORT" (host then "0.0.0.0"). Port must be 0..65535.
Result<std::pair<std::string, int>> parse_listen_address(std::string_view listen);

}  // namespace podsight::http
