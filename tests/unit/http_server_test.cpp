// Tests of the agent's HTTP server against real sockets on loopback: limits, deadlines, gzip, shutdown.
#include "http/server.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace podsight::http {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr const char* kPrometheusType = "text/plain; version=0.0.4; charset=utf-8";
constexpr const char* kOpenMetricsType = "application/openmetrics-text; version=1.0.0; charset=utf-8";

Options test_options() {
  Options o;
  o.listen = "127.0.0.1:0";
  o.request_timeout_seconds = 5;
  o.write_timeout_seconds = 5;
  o.idle_timeout_seconds = 5;
  o.max_connections = 64;
  o.worker_threads = 4;
  return o;
}

std::string metrics_body(std::size_t lines) {
  std::string body;
  for (std::size_t i = 0; i < lines; ++i) {
    body += "podsight_test_total{pod=\"pod-" + std::to_string(i % 97) + "\",n=\"" + std::to_string(i) +
            "\"} " + std::to_string(i * 3) + "\n";
  }
  return body;
}

std::unique_ptr<Server> start_server(const Options& options, const std::function<void(Server&)>& setup) {
  auto server = std::make_unique<Server>(options);
  setup(*server);
  auto status = server->start();
  if (!status) throw std::runtime_error(status.error().message());
  return server;
}

// The usual routes: /metrics (small), /boom (throws), /healthz.
void default_routes(Server& s) {
  s.route("/metrics", [](const httplib::Request&) { return Response{200, kPrometheusType, "up 1\n"}; });
  s.route("/healthz", [](const httplib::Request&) { return Response{200, "text/plain", "ok\n"}; });
  s.route("/boom", [](const httplib::Request&) -> Response { throw std::runtime_error("handler failed"); });
  s.route("/boom-int", [](const httplib::Request&) -> Response { throw 42; });
  s.route("/a.b", [](const httplib::Request&) { return Response{200, "text/plain", "dot\n"}; });
}

httplib::Client client(int port) {
  httplib::Client c("127.0.0.1", port);
  c.set_connection_timeout(5, 0);
  c.set_read_timeout(5, 0);
  c.set_write_timeout(5, 0);
  return c;
}

struct RawResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;

  [[nodiscard]] std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

// A hand-driven client, for what httplib::Client will not do: trickle, pipeline, hold sockets idle.
class RawConn {
 public:
  explicit RawConn(int port, int family = AF_INET) {
    fd_ = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw std::runtime_error("socket");
    int rc = -1;
    if (family == AF_INET) {
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_port = htons(static_cast<std::uint16_t>(port));
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      rc = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    } else {
      sockaddr_in6 addr{};
      addr.sin6_family = AF_INET6;
      addr.sin6_port = htons(static_cast<std::uint16_t>(port));
      addr.sin6_addr = in6addr_loopback;
      rc = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    }
    if (rc != 0) {
      ::close(fd_);
      throw std::runtime_error("connect: " + std::string(std::strerror(errno)));
    }
  }
  ~RawConn() { close(); }
  RawConn(const RawConn&) = delete;
  RawConn& operator=(const RawConn&) = delete;

  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  bool send(std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        return false;
      }
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  // Reads more into the buffer. 1: got bytes, 0: EOF or reset, -1: nothing before timeout.
  int read_some(std::chrono::milliseconds timeout) {
    pollfd p{fd_, POLLIN, 0};
    const int rc = ::poll(&p, 1, static_cast<int>(timeout.count()));
    if (rc <= 0) return -1;
    char buf[65536];
    const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
    if (n <= 0) return 0;
    buffer_.append(buf, static_cast<std::size_t>(n));
    return 1;
  }

  // One response (head, then Content-Length bytes unless `head_only`); nullopt on EOF or timeout.
  std::optional<RawResponse> read_response(bool head_only = false, std::chrono::milliseconds timeout = 5s) {
    const auto deadline = Clock::now() + timeout;
    auto remaining = [&] {
      return std::max(0ms, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
    };
    std::size_t end = 0;
    while ((end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      if (read_some(remaining()) != 1) return std::nullopt;
    }
    RawResponse res;
    const std::string head = buffer_.substr(0, end);
    buffer_.erase(0, end + 4);
    std::size_t line_end = head.find("\r\n");
    const std::string status_line = head.substr(0, line_end);
    if (status_line.rfind("HTTP/1.1 ", 0) != 0) return std::nullopt;
    res.status = std::stoi(status_line.substr(9, 3));
    while (line_end != std::string::npos) {
      const std::size_t start = line_end + 2;
      line_end = head.find("\r\n", start);
      const std::string line =
          head.substr(start, line_end == std::string::npos ? std::string::npos : line_end - start);
      const auto colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string name = line.substr(0, colon);
      std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
      res.headers[name] = line.substr(line.find_first_not_of(' ', colon + 1));
    }
    if (head_only) return res;
    const std::size_t length =
        res.headers.count("content-length") ? std::stoul(res.headers["content-length"]) : 0;
    while (buffer_.size() < length) {
      if (read_some(remaining()) != 1) return std::nullopt;
    }
    res.body = buffer_.substr(0, length);
    buffer_.erase(0, length);
    return res;
  }

  // True when the server closes (EOF or reset) within `timeout`; bytes that arrive meanwhile are kept.
  bool wait_closed(std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      const int rc = read_some(std::max(1ms, left));
      if (rc == 0) return true;
    }
    return false;
  }

  [[nodiscard]] const std::string& buffered() const { return buffer_; }
  [[nodiscard]] int fd() const { return fd_; }

 private:
  int fd_ = -1;
  std::string buffer_;
};

std::string gunzip(const std::string& in) {
  z_stream zs{};
  if (inflateInit2(&zs, 15 + 16) != Z_OK) throw std::runtime_error("inflateInit2");
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  std::string out;
  char buf[16384];
  int rc = Z_OK;
  while (rc == Z_OK) {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof(buf);
    rc = inflate(&zs, Z_NO_FLUSH);
    out.append(buf, sizeof(buf) - zs.avail_out);
  }
  inflateEnd(&zs);
  if (rc != Z_STREAM_END) throw std::runtime_error("not a complete gzip stream");
  return out;
}

TEST(HttpServer, RoutesAnswerGetHeadAndRejectUnknownPathsAndMethods) {
  auto server = start_server(test_options(), default_routes);
  ASSERT_GT(server->port(), 0);
  EXPECT_TRUE(server->serving());
  auto c = client(server->port());

  auto get = c.Get("/metrics");
  ASSERT_TRUE(get);
  EXPECT_EQ(get->status, 200);
  EXPECT_EQ(get->body, "up 1\n");
  EXPECT_EQ(get->get_header_value("Content-Type"), kPrometheusType);

  auto head = c.Head("/metrics");
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->body, "");
  EXPECT_EQ(head->get_header_value("Content-Length"), "5");

  auto query = c.Get("/metrics?name[]=x");
  ASSERT_TRUE(query);
  EXPECT_EQ(query->status, 200);

  auto missing = c.Get("/nope");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  EXPECT_FALSE(missing->body.empty());
  EXPECT_LT(missing->body.size(), 100U);

  // Paths are exact: the '.' in "/a.b" is not a regex wildcard, and prefixes do not match.
  auto dot = c.Get("/a.b");
  ASSERT_TRUE(dot);
  EXPECT_EQ(dot->status, 200);
  auto wildcard = c.Get("/aXb");
  ASSERT_TRUE(wildcard);
  EXPECT_EQ(wildcard->status, 404);
  auto longer = c.Get("/metrics/extra");
  ASSERT_TRUE(longer);
  EXPECT_EQ(longer->status, 404);

  auto post = c.Post("/metrics", "x=1", "application/x-www-form-urlencoded");
  ASSERT_TRUE(post);
  EXPECT_EQ(post->status, 405);
  EXPECT_EQ(post->get_header_value("Allow"), "GET, HEAD");
  auto del = c.Delete("/metrics");
  ASSERT_TRUE(del);
  EXPECT_EQ(del->status, 405);

  // Still serving after all that.
  auto again = c.Get("/healthz");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 200);
}

TEST(HttpServer, HandlerExceptionsBecome500AndServingContinues) {
  auto server = start_server(test_options(), default_routes);
  auto c = client(server->port());
  for (const char* path : {"/boom", "/boom-int", "/boom"}) {
    auto res = c.Get(path);
    ASSERT_TRUE(res) << path;
    EXPECT_EQ(res->status, 500) << path;
    EXPECT_EQ(res->body.find("handler failed"), std::string::npos) << "exception text must not leak";
  }
  auto ok = c.Get("/metrics");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
}

TEST(HttpServer, OversizedRequestLineAndHeadersAreRefusedAndServingContinues) {
  auto options = test_options();
  options.max_request_bytes = 4096;
  auto server = start_server(options, default_routes);

  {
    RawConn conn(server->port());
    ASSERT_TRUE(conn.send("GET /" + std::string(20000, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n"));
    auto res = conn.read_response();
    ASSERT_TRUE(res) << "expected an answer before close, got: " << conn.buffered();
    EXPECT_EQ(res->status, 431);
    EXPECT_EQ(res->header("connection"), "close");
    EXPECT_TRUE(conn.wait_closed(3s));
  }
  {
    RawConn conn(server->port());
    std::string request = "GET /metrics HTTP/1.1\r\nHost: x\r\n";
    for (int i = 0; i < 200; ++i)
      request += "X-Filler-" + std::to_string(i) + ": " + std::string(40, 'b') + "\r\n";
    request += "\r\n";
    ASSERT_TRUE(conn.send(request));
    auto res = conn.read_response();
    ASSERT_TRUE(res) << "expected an answer before close";
    EXPECT_EQ(res->status, 431);
    EXPECT_TRUE(conn.wait_closed(3s));
  }
  {
    // Garbage is a 400 and a closed connection, not a hang.
    RawConn conn(server->port());
    ASSERT_TRUE(conn.send("BREW /pot HTCPCP/1.0\r\n\r\n"));
    auto res = conn.read_response();
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 400);
    EXPECT_TRUE(conn.wait_closed(3s));
  }
  {
    // A declared body larger than the budget is refused without reading it.
    RawConn conn(server->port());
    ASSERT_TRUE(conn.send("POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"));
    auto res = conn.read_response();
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 413);
    EXPECT_TRUE(conn.wait_closed(3s));
  }
  auto ok = client(server->port()).Get("/metrics");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
}

TEST(HttpServer, MalformedContentLengthIs400AndTheConnectionCloses) {
  auto server = start_server(test_options(), default_routes);
  for (const char* length : {"-5", "5, 5", "0x10", "abc"}) {
    RawConn conn(server->port());
    ASSERT_TRUE(
        conn.send(std::string("GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: ") + length + "\r\n\r\n"));
    auto res = conn.read_response();
    ASSERT_TRUE(res) << length;
    EXPECT_EQ(res->status, 400) << length;
    EXPECT_EQ(res->header("connection"), "close") << length;
    EXPECT_TRUE(conn.wait_closed(3s)) << length;
  }
  RawConn huge(server->port());
  ASSERT_TRUE(
      huge.send("GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n"));
  auto res = huge.read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 413) << "a well-formed length too large for any budget";
}

TEST(HttpServer, SlowlorisIsCutAtTheRequestDeadlineWhileOthersAreServed) {
  // The bounds below follow from causality, not from how fast this machine is: the server starts the
  // slow client's clock when it accepts it (after `slow_start`), and only the request deadline (3 s)
  // can cut it before the other timers (30 s) and the client's own give-up (30 s).
  constexpr auto kDeadline = 3s;
  auto options = test_options();
  options.request_timeout_seconds = 3;
  options.idle_timeout_seconds = 30;
  options.write_timeout_seconds = 30;
  options.worker_threads = 2;
  auto server = start_server(options, default_routes);

  std::atomic<bool> trickling{false};
  std::atomic<double> cut_after{-1};
  std::atomic<bool> got_408{false};
  const auto slow_start = Clock::now();
  std::thread slow([&] {
    RawConn conn(server->port());
    const std::string request = "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: " + std::string(2000, 'z');
    for (std::size_t i = 0; i < request.size() && Clock::now() - slow_start < 30s; ++i) {
      if (!conn.send(std::string_view(&request[i], 1))) break;
      trickling = true;
      if (conn.read_some(200ms) != -1) break;  // the server answered or closed
    }
    cut_after = std::chrono::duration<double>(Clock::now() - slow_start).count();
    got_408 = conn.buffered().rfind("HTTP/1.1 408", 0) == 0;
  });

  // The other client asks once the slow one holds a worker; a server that served one connection at a
  // time would answer it only after cutting the slow one, at least kDeadline after slow_start.
  while (!trickling && cut_after < 0) std::this_thread::yield();
  auto res = client(server->port()).Get("/metrics");
  const auto answered = Clock::now();
  slow.join();

  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_LT(answered - slow_start, kDeadline) << "a trickling client must not hold up others";
  EXPECT_TRUE(got_408.load()) << "the slow client was not cut by the request deadline";
  EXPECT_GE(cut_after.load(), std::chrono::duration<double>(kDeadline).count());
  EXPECT_LT(cut_after.load(), 30.0);
}

TEST(HttpServer, ConnectionsOverTheLimitGet503AndAreCounted) {
  // Policy under test: beyond max_connections a connection is answered 503 and closed at once, never
  // queued; once one of the held connections closes, new ones are served again.
  auto options = test_options();
  options.max_connections = 3;
  options.worker_threads = 3;
  options.request_timeout_seconds = 10;
  auto server = start_server(options, default_routes);

  std::vector<std::unique_ptr<RawConn>> held;
  held.reserve(3);
  for (int i = 0; i < 3; ++i) held.push_back(std::make_unique<RawConn>(server->port()));
  std::this_thread::sleep_for(200ms);  // let the accept loop take them in
  EXPECT_EQ(server->rejected_connections(), 0U);

  RawConn extra(server->port());
  auto res = extra.read_response();
  ASSERT_TRUE(res) << "the connection over the limit got no answer";
  EXPECT_EQ(res->status, 503);
  EXPECT_EQ(res->header("connection"), "close");
  EXPECT_TRUE(extra.wait_closed(2s));
  EXPECT_EQ(server->rejected_connections(), 1U);

  held.front()->close();
  // The worker sees the close on its own time; until then a new connection is still one too many.
  std::optional<int> status;
  const auto deadline = Clock::now() + 30s;
  while (Clock::now() < deadline) {
    auto r = client(server->port()).Get("/metrics");
    if (r && r->status == 200) {
      status = r->status;
      break;
    }
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(status, 200) << "a freed slot was not reused";
}

TEST(HttpServer, TwoHundredParallelRequestsAllGetAnswers) {
  auto options = test_options();
  options.max_connections = 256;
  options.worker_threads = 4;
  const std::string body = metrics_body(200);
  auto server = start_server(options, [&](Server& s) {
    s.route("/metrics", [&](const httplib::Request&) { return Response{200, kPrometheusType, body}; });
  });

  constexpr int kClients = 200;
  std::atomic<int> ok{0};
  std::mutex mu;
  std::vector<std::string> failures;
  std::vector<std::thread> threads;
  threads.reserve(kClients);
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&] {
      auto c = client(server->port());
      // 200 connects at once can overflow the accept queue while the machine is busy; the kernel then
      // retries the handshake after 1 s and 3 s, so the client waits for more than that.
      c.set_connection_timeout(30, 0);
      c.set_read_timeout(30, 0);
      auto res = c.Get("/metrics");
      if (res && res->status == 200 && res->body == body) {
        ok.fetch_add(1);
      } else {
        std::lock_guard lock(mu);
        failures.push_back(res ? "status " + std::to_string(res->status) : httplib::to_string(res.error()));
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), kClients) << (failures.empty() ? "" : failures.front());
  EXPECT_EQ(server->rejected_connections(), 0U);
}

TEST(HttpServer, StopReturnsQuicklyWithClientsConnected) {
  auto options = test_options();
  options.request_timeout_seconds = 30;
  options.write_timeout_seconds = 30;
  options.idle_timeout_seconds = 30;
  options.worker_threads = 4;
  const std::string huge(32 << 20, 'x');
  auto server = start_server(options, [&](Server& s) {
    default_routes(s);
    s.route("/huge", [&](const httplib::Request&) {
      return Response{200, "application/octet-stream", huge};
    });
  });
  const int port = server->port();

  RawConn idle(port);         // never sends
  RawConn keep_alive(port);   // one request, then idle
  RawConn trickle(port);      // half a request head
  RawConn not_reading(port);  // asks for 32 MiB and never reads
  ASSERT_TRUE(keep_alive.send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(keep_alive.read_response());
  ASSERT_TRUE(trickle.send("GET /metrics HTTP/1.1\r\nHo"));
  ASSERT_TRUE(not_reading.send("GET /huge HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::this_thread::sleep_for(300ms);

  const auto before = Clock::now();
  server->stop();
  const auto took = Clock::now() - before;
  EXPECT_LT(took, 2s);
  EXPECT_FALSE(server->serving());
  server->stop();  // idempotent

  EXPECT_TRUE(idle.wait_closed(1s));
  EXPECT_TRUE(keep_alive.wait_closed(1s));
  EXPECT_THROW(RawConn{port}, std::runtime_error) << "still accepting after stop()";
}

// A response whose body is written through Response::stream, `piece` bytes at a time.
Response streamed(const char* type, std::string text, std::size_t piece) {
  Response r{200, type, ""};
  r.stream = [text = std::move(text), piece](BodySink& sink) {
    sink.expect(text.size());
    for (std::size_t at = 0; at < text.size(); at += piece) sink.write(std::string_view(text).substr(at, piece));
  };
  return r;
}

// Whole bodies and streamed ones (Response::stream, gzip-encoded as their pieces come) are the same
// bytes on the wire: gzip when the client accepts it and the body is large, plain otherwise; HEAD
// announces what GET sends.
TEST(HttpServer, LargeMetricsAreGzippedWhenTheClientAcceptsIt) {
  const std::string body = metrics_body(500);
  ASSERT_GT(body.size(), 4096U);
  auto server = start_server(test_options(), [&](Server& s) {
    s.route("/metrics", [&](const httplib::Request&) { return Response{200, kPrometheusType, body}; });
    s.route("/openmetrics", [&](const httplib::Request&) { return Response{200, kOpenMetricsType, body}; });
    s.route("/small", [](const httplib::Request&) { return Response{200, kPrometheusType, "up 1\n"}; });
    s.route("/streamed/metrics", [&](const httplib::Request&) { return streamed(kPrometheusType, body, 100); });
    s.route("/streamed/openmetrics", [&](const httplib::Request&) { return streamed(kOpenMetricsType, body, 100); });
    s.route("/streamed/one-piece",
            [&](const httplib::Request&) { return streamed(kPrometheusType, body, body.size()); });
    s.route("/streamed/small", [](const httplib::Request&) { return streamed(kPrometheusType, "up 1\n", 2); });
  });
  auto c = client(server->port());
  c.set_decompress(false);  // see the bytes on the wire
  const httplib::Headers prometheus{{"Accept-Encoding", "gzip"}};

  for (const char* path :
       {"/metrics", "/openmetrics", "/streamed/metrics", "/streamed/openmetrics", "/streamed/one-piece"}) {
    auto res = c.Get(path, prometheus);
    ASSERT_TRUE(res) << path;
    EXPECT_EQ(res->status, 200);
    EXPECT_EQ(res->get_header_value("Content-Encoding"), "gzip") << path;
    EXPECT_EQ(res->get_header_value("Vary"), "Accept-Encoding") << path;
    EXPECT_LT(res->body.size(), body.size() / 2) << path;
    EXPECT_EQ(gunzip(res->body), body) << path;
  }

  for (const std::string prefix : {"", "/streamed"}) {
    const std::string metrics = prefix + "/metrics";
    auto head = c.Head(metrics, prometheus);
    ASSERT_TRUE(head) << metrics;
    EXPECT_EQ(head->get_header_value("Content-Encoding"), "gzip") << metrics;
    auto get = c.Get(metrics, prometheus);
    ASSERT_TRUE(get) << metrics;
    EXPECT_EQ(head->get_header_value("Content-Length"), std::to_string(get->body.size())) << metrics;

    auto plain = c.Get(metrics, {{"Accept-Encoding", "identity"}});
    ASSERT_TRUE(plain) << metrics;
    EXPECT_EQ(plain->get_header_value("Content-Encoding"), "") << metrics;
    EXPECT_EQ(plain->body, body) << metrics;

    auto refused = c.Get(metrics, {{"Accept-Encoding", "br, gzip;q=0"}});
    ASSERT_TRUE(refused) << metrics;
    EXPECT_EQ(refused->get_header_value("Content-Encoding"), "") << metrics;
    EXPECT_EQ(refused->body, body) << metrics;

    auto small = c.Get(prefix + "/small", prometheus);
    ASSERT_TRUE(small) << prefix;
    EXPECT_EQ(small->get_header_value("Content-Encoding"), "") << prefix;
    EXPECT_EQ(small->body, "up 1\n") << prefix;
  }
}

// A stream that throws halfway is a 500 that shows nothing of the exception, and serving goes on.
TEST(HttpServer, StreamThatThrowsIsA500AndServingContinues) {
  const std::string body = metrics_body(500);
  auto server = start_server(test_options(), [&](Server& s) {
    s.route("/metrics", [&](const httplib::Request&) { return streamed(kPrometheusType, body, 100); });
    s.route("/boom", [&](const httplib::Request&) {
      Response r{200, kPrometheusType, ""};
      r.stream = [&](BodySink& sink) {
        sink.write(body);
        throw std::runtime_error("collector failed");
      };
      return r;
    });
  });
  auto c = client(server->port());
  c.set_decompress(false);
  const httplib::Headers prometheus{{"Accept-Encoding", "gzip"}};
  auto boom = c.Get("/boom", prometheus);
  ASSERT_TRUE(boom);
  EXPECT_EQ(boom->status, 500);
  EXPECT_EQ(boom->get_header_value("Content-Encoding"), "");
  EXPECT_EQ(boom->body.find("collector failed"), std::string::npos) << "exception text must not leak";
  auto after = c.Get("/metrics", prometheus);
  ASSERT_TRUE(after);
  EXPECT_EQ(gunzip(after->body), body);
}

TEST(HttpServer, KeepAliveServesSeveralRequestsOnOneConnection) {
  auto options = test_options();
  options.keep_alive_max_requests = 4;
  options.max_request_bytes = 512;  // per request: four requests together exceed it
  auto server = start_server(options, default_routes);
  RawConn conn(server->port());
  const std::string request =
      "GET /metrics HTTP/1.1\r\nHost: x\r\nUser-Agent: " + std::string(300, 'u') + "\r\n\r\n";

  ASSERT_TRUE(conn.send(request));
  auto first = conn.read_response();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->status, 200);
  EXPECT_NE(first->header("connection"), "close");

  ASSERT_TRUE(conn.send("HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto second = conn.read_response(/*head_only=*/true);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->status, 200);

  // Pipelined: both requests in one segment, both answered in order.
  ASSERT_TRUE(conn.send(request + "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto third = conn.read_response();
  ASSERT_TRUE(third);
  EXPECT_EQ(third->status, 200);
  auto fourth = conn.read_response();
  ASSERT_TRUE(fourth);
  EXPECT_EQ(fourth->status, 404);
  EXPECT_EQ(fourth->header("connection"), "close") << "keep_alive_max_requests reached";
  EXPECT_TRUE(conn.wait_closed(2s));
}

TEST(HttpServer, IdleKeepAliveConnectionsAreClosed) {
  auto options = test_options();
  options.idle_timeout_seconds = 1;
  auto server = start_server(options, default_routes);
  RawConn conn(server->port());
  // Taken before the request: the server starts the idle clock after answering it, so it cannot close
  // sooner than a second after this, however late this thread runs.
  const auto before = Clock::now();
  ASSERT_TRUE(conn.send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(conn.read_response());
  EXPECT_TRUE(conn.wait_closed(30s));
  EXPECT_GE(Clock::now() - before, 1s);
}

TEST(HttpServer, IdleKeepAliveConnectionMakesWayForAQueuedOne) {
  // One worker: a scraper that keeps its connection open between scrapes must not lock out the kubelet.
  auto options = test_options();
  options.worker_threads = 1;
  options.idle_timeout_seconds = 30;
  auto server = start_server(options, default_routes);
  RawConn scraper(server->port());
  ASSERT_TRUE(scraper.send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(scraper.read_response());

  // The client gives up after 5 s without an answer, long before the scraper's 30 s idle timeout would
  // free the worker: an answer at all means the idle connection made way.
  auto probe = client(server->port()).Get("/healthz");
  ASSERT_TRUE(probe) << httplib::to_string(probe.error());
  EXPECT_EQ(probe->status, 200);
  // It was closed before the worker took the probe, so its EOF is already here.
  EXPECT_TRUE(scraper.wait_closed(5s)) << "the idle connection should have been closed to free the worker";
}

TEST(HttpServer, ObserverSeesEachAnsweredRequest) {
  std::mutex mu;
  std::condition_variable arrived;
  std::vector<std::tuple<std::string, std::string, int, std::size_t>> events;
  auto server = start_server(test_options(), [&](Server& s) {
    default_routes(s);
    s.on_request([&](const RequestEvent& e) {
      std::lock_guard lock(mu);
      EXPECT_GE(e.seconds, 0.0);
      events.emplace_back(std::string(e.method), std::string(e.path), e.status, e.response_bytes);
      arrived.notify_all();
    });
  });
  // An event is emitted after its answer is flushed, so the client can see the answer first: wait for
  // each event before the next request, or two connections' events could arrive in either order.
  auto events_reach = [&](std::size_t n) {
    std::unique_lock lock(mu);
    return arrived.wait_for(lock, 30s, [&] { return events.size() >= n; });
  };
  auto c = client(server->port());
  ASSERT_TRUE(c.Get("/metrics"));
  ASSERT_TRUE(events_reach(1));
  ASSERT_TRUE(c.Get("/nope/with/a/long/unbounded/path"));
  ASSERT_TRUE(events_reach(2));
  ASSERT_TRUE(c.Post("/metrics", "", "text/plain"));
  ASSERT_TRUE(events_reach(3));
  ASSERT_TRUE(c.Get("/boom"));
  ASSERT_TRUE(events_reach(4));
  {
    RawConn conn(server->port());
    ASSERT_TRUE(conn.send("GET /" + std::string(20000, 'a') + " HTTP/1.1\r\n\r\n"));
    ASSERT_TRUE(conn.read_response());
  }
  ASSERT_TRUE(events_reach(5));
  std::this_thread::sleep_for(50ms);  // and no sixth one comes

  std::lock_guard lock(mu);
  ASSERT_EQ(events.size(), 5U);
  EXPECT_EQ(std::get<0>(events[0]), "GET");
  EXPECT_EQ(std::get<1>(events[0]), "/metrics");
  EXPECT_EQ(std::get<2>(events[0]), 200);
  EXPECT_GT(std::get<3>(events[0]), 5U);
  EXPECT_EQ(std::get<1>(events[1]), "other");
  EXPECT_EQ(std::get<2>(events[1]), 404);
  EXPECT_EQ(std::get<0>(events[2]), "POST");
  EXPECT_EQ(std::get<1>(events[2]), "/metrics");
  EXPECT_EQ(std::get<2>(events[2]), 405);
  EXPECT_EQ(std::get<2>(events[3]), 500);
  EXPECT_EQ(std::get<1>(events[4]), "other");
  EXPECT_EQ(std::get<2>(events[4]), 431);
}

TEST(HttpServer, ReportsBindFailureWithAddressAndErrno) {
  auto first = start_server(test_options(), default_routes);
  Options taken = test_options();
  taken.listen = "127.0.0.1:" + std::to_string(first->port());
  Server second(taken);
  auto status = second.start();
  ASSERT_FALSE(status);
  EXPECT_EQ(status.error().what, "bind");
  EXPECT_EQ(status.error().object, taken.listen);
  EXPECT_EQ(status.error().err, EADDRINUSE);
  EXPECT_FALSE(second.serving());

  Options bad = test_options();
  bad.listen = "127.0.0.1:99999";
  auto invalid = Server(bad).start();
  ASSERT_FALSE(invalid);
  EXPECT_NE(invalid.error().what.find("out of range"), std::string::npos) << invalid.error().what;
}

void peer_route(Server& s) {
  s.route("/peer", [](const httplib::Request& req) {
    return Response{200, "text/plain", req.remote_addr + " " + req.local_addr};
  });
}

TEST(HttpServer, ReportsPeerAddressesOverIpv4) {
  auto server = start_server(test_options(), peer_route);
  auto res = client(server->port()).Get("/peer");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->body, "127.0.0.1 127.0.0.1");
}

TEST(HttpServer, ServesIpv6AndDualStack) {
  Options loopback = test_options();
  loopback.listen = "[::1]:0";
  Server v6(loopback);
  peer_route(v6);
  auto status = v6.start();
  if (!status) GTEST_SKIP() << "no IPv6 loopback here: " << status.error().message();
  {
    RawConn conn(v6.port(), AF_INET6);
    ASSERT_TRUE(conn.send("GET /peer HTTP/1.1\r\nHost: x\r\n\r\n"));
    auto res = conn.read_response();
    ASSERT_TRUE(res);
    EXPECT_EQ(res->body, "::1 ::1");
  }

  // "[::]:PORT" takes IPv4 clients too; they show as plain dotted quads, not ::ffff:127.0.0.1.
  Options any = test_options();
  any.listen = "[::]:0";
  auto dual = start_server(any, peer_route);
  RawConn conn(dual->port(), AF_INET);
  ASSERT_TRUE(conn.send("GET /peer HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto res = conn.read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->body, "127.0.0.1 127.0.0.1");
}

TEST(HttpListenAddress, ParsesAndRejects) {
  struct Ok {
    const char* in;
    const char* host;
    int port;
  };
  for (const Ok& c : {Ok{"0.0.0.0:10795", "0.0.0.0", 10795}, Ok{":9100", "0.0.0.0", 9100},
                      Ok{"127.0.0.1:0", "127.0.0.1", 0}, Ok{"[::]:8080", "::", 8080},
                      Ok{"[::1]:65535", "::1", 65535}, Ok{"localhost:80", "localhost", 80}}) {
    auto r = parse_listen_address(c.in);
    ASSERT_TRUE(r) << c.in << ": " << r.error().message();
    EXPECT_EQ(r->first, c.host) << c.in;
    EXPECT_EQ(r->second, c.port) << c.in;
  }

  struct Bad {
    const char* in;
    const char* says;
  };
  for (const Bad& c :
       {Bad{"", "empty"}, Bad{"0.0.0.0", "missing ':PORT'"}, Bad{"0.0.0.0:", "missing port"},
        Bad{":", "missing port"}, Bad{"host:http", "not a number"}, Bad{"host:-1", "not a number"},
        Bad{"host:+80", "not a number"}, Bad{"host:65536", "out of range"},
        Bad{"host:123456", "out of range"}, Bad{"[]:80", "empty IPv6"}, Bad{"[::1]", "missing ':PORT'"},
        Bad{"[::1]80", "missing ':PORT'"}, Bad{"[::1:80", "missing ']'"}, Bad{"[1.2.3.4]:80", "not an IPv6"},
        Bad{"::1:80", "brackets"}, Bad{"ho st:80", "not a valid host"}, Bad{"a/b:80", "not a valid host"},
        Bad{"host:8 0", "not a number"}}) {
    auto r = parse_listen_address(c.in);
    ASSERT_FALSE(r) << "accepted '" << c.in << "'";
    EXPECT_NE(r.error().what.find(c.says), std::string::npos) << c.in << " -> " << r.error().what;
    EXPECT_EQ(r.error().object, c.in);
  }
}

}  // namespace
}  // namespace podsight::http
