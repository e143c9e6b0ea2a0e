// The agent's HTTP server: httplib parses and answers; this file owns sockets, deadlines and workers.
#include "http/server.hpp"

#include "http/auth.hpp"
#include "http/tls.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <deque>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <vector>

namespace podsight::http {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr std::size_t kReadBufferSize = 4096;
// Headers and small bodies leave in one segment instead of two (which with Nagle and delayed ACKs can
// cost a round trip per response).
constexpr std::size_t kWriteBufferSize = 16384;
constexpr std::size_t kGzipMinBytes = 1024;
// Responses being written when stop() is called get this long to finish, so stop() stays well under 2 s.
constexpr auto kStopWriteGrace = 1s;
// After an error answer the client may still be sending; reading a little of it before close() keeps the
// kernel from answering with a RST that can destroy our answer before the client reads it.
constexpr auto kLingerTime = 500ms;
constexpr std::size_t kLingerMaxBytes = std::size_t{64} << 10;
// How often a connection waiting for a request checks whether other connections wait for a worker.
constexpr auto kYieldCheckInterval = 100ms;
// A new connection that has sent nothing for this long gives its worker up when others are queued.
constexpr auto kFirstRequestYieldAfter = 1s;
// httplib listens with a backlog of 5, which drops SYNs when a few clients connect at once.
constexpr int kListenBacklog = 128;
constexpr const char* kTextPlain = "text/plain; charset=utf-8";
constexpr std::string_view kOther = "other";

enum class Wait { kReady, kTimeout, kStop, kError };

int poll_timeout_ms(Clock::time_point deadline) {
  if (deadline == Clock::time_point::max()) return -1;
  const auto now = Clock::now();
  if (deadline <= now) return 0;
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(deadline - now).count();
  return static_cast<int>(std::min<std::int64_t>(ms, INT_MAX));
}

// Waits for `events` on fd until `deadline`; wake_fd (or -1) becomes readable when the server stops.
// POLLERR/POLLHUP count as ready: the recv/send that follows reports what happened.
Wait wait_fd(int fd, short events, Clock::time_point deadline, int wake_fd) {
  for (;;) {
    std::array<pollfd, 2> fds{pollfd{fd, events, 0}, pollfd{wake_fd, POLLIN, 0}};
    const nfds_t count = wake_fd >= 0 ? 2 : 1;
    const int rc = ::poll(fds.data(), count, poll_timeout_ms(deadline));
    if (rc < 0) {
      if (errno == EINTR) continue;
      return Wait::kError;
    }
    if (count == 2 && (fds[1].revents & POLLIN) != 0) return Wait::kStop;
    if (rc == 0) {
      if (Clock::now() >= deadline) return Wait::kTimeout;
      continue;
    }
    return Wait::kReady;
  }
}

void format_address(const sockaddr_storage& addr, std::string& ip, int& port) {
  std::array<char, INET6_ADDRSTRLEN> buf{};
  ip.clear();
  port = 0;
  if (addr.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&addr);
    if (inet_ntop(AF_INET, &in->sin_addr, buf.data(), buf.size()) == nullptr) return;
    port = ntohs(in->sin_port);
  } else if (addr.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&addr);
    // A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d; logs and metrics want a.b.c.d.
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
      if (inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], buf.data(), buf.size()) == nullptr) return;
    } else if (inet_ntop(AF_INET6, &in6->sin6_addr, buf.data(), buf.size()) == nullptr) {
      return;
    }
    port = ntohs(in6->sin6_port);
  } else {
    return;
  }
  ip = buf.data();
}

char lower(char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); }

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return lower(x) == lower(y); });
}

bool istarts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Calls fn(item) for each comma-separated, trimmed, non-empty item of a header value.
template <typename Fn>
void for_each_item(std::string_view value, Fn fn) {
  while (!value.empty()) {
    const auto comma = value.find(',');
    const auto item = trim(value.substr(0, comma));
    if (!item.empty()) fn(item);
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
}

bool has_token(std::string_view value, std::string_view token) {
  bool found = false;
  for_each_item(value, [&](std::string_view item) { found = found || iequals(item, token); });
  return found;
}

// RFC 9110 content negotiation, reduced to the one question we ask: may the body be gzip-encoded?
bool accepts_gzip(std::string_view accept_encoding) {
  std::optional<bool> gzip;
  std::optional<bool> any;
  for_each_item(accept_encoding, [&](std::string_view item) {
    const auto semi = item.find(';');
    const auto coding = trim(item.substr(0, semi));
    double q = 1.0;
    if (semi != std::string_view::npos) {
      auto params = item.substr(semi + 1);
      while (!params.empty()) {
        const auto next = params.find(';');
        const auto param = trim(params.substr(0, next));
        if (param.size() > 2 && lower(param[0]) == 'q' && param[1] == '=') {
          double parsed = 0;
          const auto* begin = param.data() + 2;
          const auto* end = param.data() + param.size();
          if (std::from_chars(begin, end, parsed).ec == std::errc()) q = parsed;
        }
        if (next == std::string_view::npos) break;
        params.remove_prefix(next + 1);
      }
    }
    if (iequals(coding, "gzip") || iequals(coding, "x-gzip")) {
      gzip = q > 0;
    } else if (coding == "*") {
      any = q > 0;
    }
  });
  return gzip.value_or(any.value_or(false));
}

bool compressible(std::string_view content_type) {
  return istarts_with(content_type, "text/") || istarts_with(content_type, "application/openmetrics-text") ||
         istarts_with(content_type, "application/json");
}

// A gzip member at level 1, fed in pieces. Level 1: this runs on every node at every scrape; CPU there
// costs more than a few percent of bytes.
class Gzip {
 public:
  Gzip() { ok_ = deflateInit2(&zs_, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK; }
  ~Gzip() {
    if (ok_) deflateEnd(&zs_);
  }
  Gzip(const Gzip&) = delete;
  Gzip& operator=(const Gzip&) = delete;

  // False once zlib has failed (it could not even start, or ran out of memory): nothing more is added.
  bool add(std::string_view in) { return run(in, Z_NO_FLUSH); }
  // Ends the member and hands out its bytes; nullopt if zlib failed.
  std::optional<std::string> finish() {
    if (!run({}, Z_FINISH)) return std::nullopt;
    out_.resize(used_);
    return std::move(out_);
  }

 private:
  bool run(std::string_view in, int flush) {
    // zlib counts in uInt; metrics bodies are megabytes, so a piece near 4 GiB is a bug, not a scrape.
    if (!ok_ || in.size() > (1U << 30)) return ok_ = false;
    // httplib.h includes zlib.h without ZLIB_CONST; deflate() does not write through next_in.
    zs_.next_in = const_cast<Bytef*>(reinterpret_cast<const Bytef*>(in.data()));
    zs_.avail_in = static_cast<uInt>(in.size());
    for (;;) {
      // Room grows with what comes out (about a tenth of a metrics body), never with what goes in.
      if (out_.size() - used_ < kMinRoom) out_.resize(std::max(2 * out_.size(), used_ + kMinRoom));
      zs_.next_out = reinterpret_cast<Bytef*>(out_.data() + used_);
      zs_.avail_out = static_cast<uInt>(out_.size() - used_);
      const int rc = deflate(&zs_, flush);
      used_ = out_.size() - zs_.avail_out;
      if (rc == Z_STREAM_END) return true;
      if (rc != Z_OK && rc != Z_BUF_ERROR) return ok_ = false;
      // Without Z_FINISH, done once all input is taken and zlib did not fill the room it had.
      if (flush == Z_NO_FLUSH && zs_.avail_in == 0 && zs_.avail_out != 0) return true;
    }
  }

  static constexpr std::size_t kMinRoom = 16 << 10;
  z_stream zs_{};
  bool ok_ = false;
  std::string out_;
  std::size_t used_ = 0;
};

std::optional<std::string> gzip(std::string_view in) {
  Gzip z;
  if (!z.add(in)) return std::nullopt;
  return z.finish();
}

// A streamed response body (Response::stream): kept as it comes while it is small, then, when the
// client accepts gzip, compressed piece by piece, so a big body never exists uncompressed in full.
class StreamedBody final : public BodySink {
 public:
  explicit StreamedBody(bool gzip_allowed) : gzip_allowed_(gzip_allowed) {}

  void expect(std::size_t bytes) override {
    if (!gzip_allowed_ || bytes < kGzipMinBytes) plain_.reserve(bytes);
  }
  void write(std::string_view piece) override {
    if (zipped_) {
      if (!zipped_->add(piece)) throw std::runtime_error("gzip failed");
      return;
    }
    plain_.append(piece);
    if (gzip_allowed_ && plain_.size() >= kGzipMinBytes) start_gzip();
  }
  // The body, and whether it is gzip-encoded.
  std::string finish(bool& gzipped) {
    gzipped = zipped_ != nullptr;
    if (!zipped_) return std::move(plain_);
    auto out = zipped_->finish();
    if (!out) throw std::runtime_error("gzip failed");
    return std::move(*out);
  }

 private:
  void start_gzip() {
    auto z = std::make_unique<Gzip>();
    // zlib that cannot start leaves the body plain, as for an unstreamed body.
    if (!z->add(plain_)) {
      gzip_allowed_ = false;
      return;
    }
    zipped_ = std::move(z);
    std::string().swap(plain_);
  }

  bool gzip_allowed_;
  std::string plain_;
  std::unique_ptr<Gzip> zipped_;
};

// Only methods httplib accepts reach routing; anything else is "other" so metric labels stay bounded.
std::string_view method_label(std::string_view method) {
  static constexpr std::array<std::string_view, 9> kMethods{"GET",     "HEAD",    "POST",  "PUT",  "DELETE",
                                                            "CONNECT", "OPTIONS", "TRACE", "PATCH"};
  for (const auto m : kMethods) {
    if (m == method) return m;
  }
  return kOther;
}

void set_text(httplib::Response& res, int status, const char* body) {
  res.status = status;
  res.set_content(body, kTextPlain);
}

class Engine;

// One accepted connection, seen by httplib as its Stream. All I/O is non-blocking and bounded by
// deadlines: the whole request head within request_timeout, the whole response within write_timeout.
class Connection final : public httplib::Stream {
 public:
  // Per request; filled in by the httplib callbacks, which run on this connection's worker thread.
  struct RequestState {
    bool setup = false;        // httplib parsed the head and handed us the request
    bool responded = false;    // httplib is writing (or wrote) an answer
    bool close_after = false;  // close the connection once this answer is out
    bool linger = false;       // the client may still be sending: drain before close
    bool body_too_large = false;
    bool bad_content_length = false;  // not a decimal number: the message framing cannot be trusted
    int status = 0;
    std::string_view method = kOther;
    std::string_view path = kOther;
    std::string accept_encoding;
  };

  Connection(Engine& engine, int fd);
  ~Connection() override;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // TLS only: completes the server handshake by `deadline`. False: the connection is to be closed (a
  // plain HTTP request got a plain 400 first).
  bool handshake(SSL_CTX* ctx, Clock::time_point deadline);

  [[nodiscard]] bool is_readable() const override;
  [[nodiscard]] bool is_writable() const override;
  ssize_t read(char* ptr, size_t size) override;
  ssize_t write(const char* ptr, size_t size) override;
  using httplib::Stream::write;
  void get_remote_ip_and_port(std::string& ip, int& port) const override;
  void get_local_ip_and_port(std::string& ip, int& port) const override;
  [[nodiscard]] socket_t socket() const override { return fd_; }

  // Waits for the first byte of the next request. False: deadline passed, client gone, server stopping,
  // or (after yield_after) other connections are waiting for a worker.
  bool wait_for_request(Clock::time_point deadline, Clock::time_point yield_after);
  void begin_request(Clock::time_point read_deadline);
  bool flush();
  // Answers with a bodyless status when httplib gave up on the request without answering.
  void answer_and_close(int status);
  void linger();

  RequestState& state() { return state_; }
  [[nodiscard]] bool budget_exceeded() const { return budget_exceeded_; }
  [[nodiscard]] bool timed_out() const { return timed_out_; }
  [[nodiscard]] bool interrupted() const { return interrupted_; }
  [[nodiscard]] bool write_failed() const { return write_failed_; }
  [[nodiscard]] std::size_t consumed() const { return consumed_; }
  [[nodiscard]] std::size_t bytes_written() const { return written_; }

 private:
  // What a read or write on the transport (the socket, or TLS over it) needs before it can go on.
  enum class Io { kDone, kWantRead, kWantWrite, kEof, kError };
  Io transport_read(char* buf, std::size_t size, std::size_t& got);
  Io transport_write(const char* buf, std::size_t size, std::size_t& put);
  Io tls_result(int rc);
  [[nodiscard]] bool buffered_input() const {
    return in_pos_ < in_len_ || (ssl_ != nullptr && SSL_pending(ssl_) > 0);
  }
  // Sends TLS close_notify once, if the session is still sound.
  void close_tls();
  // 1: data buffered, 0: EOF, -1: error, timeout, stop.
  int fill();
  bool send_all(const char* data, std::size_t size);
  void start_writing();
  [[nodiscard]] Clock::time_point write_deadline() const;

  Engine& engine_;
  int fd_;
  std::array<char, kReadBufferSize> in_{};
  std::size_t in_pos_ = 0;
  std::size_t in_len_ = 0;
  std::string out_;
  RequestState state_;
  Clock::time_point read_deadline_ = Clock::time_point::max();
  Clock::time_point write_deadline_ = Clock::time_point::max();
  bool writing_ = false;
  std::size_t consumed_ = 0;
  std::size_t written_ = 0;
  bool budget_exceeded_ = false;
  bool timed_out_ = false;
  bool interrupted_ = false;
  bool write_failed_ = false;
  SSL* ssl_ = nullptr;
  bool tls_broken_ = false;  // a fatal TLS error: no close_notify may follow
};

// httplib calls our routing hooks with only (request, response); they find their connection here.
thread_local Connection* t_connection = nullptr;
// Set by the task queue around a connection it runs inline to turn it away.
thread_local bool t_reject_next = false;

// httplib::Server has a member named Options (the HTTP method), which hides ours inside Engine.
using ServerOptions = podsight::http::Options;

class Engine final : public httplib::Server {
 public:
  explicit Engine(ServerOptions options);
  ~Engine() override;
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  void add_route(const std::string& path, podsight::http::Server::Handler handler, Access access) {
    routes_[path] = Route{std::move(handler), access};
  }
  void set_observer(std::function<void(const RequestEvent&)> observer) { observer_ = std::move(observer); }
  void set_reload_observer(ReloadObserver observer) { reload_observer_ = std::move(observer); }
  // Reads the TLS and credential files; before the first connection.
  Status prepare_security();
  [[nodiscard]] const TlsContext* tls() const { return tls_.get(); }

  // Counts a connection in; false (and counted as rejected) when max_connections are already in flight.
  bool admit() {
    if (in_flight_.fetch_add(1) >= options_.max_connections) {
      in_flight_.fetch_sub(1);
      rejected_.fetch_add(1);
      return false;
    }
    return true;
  }
  void begin_stop();
  [[nodiscard]] bool stopping() const { return stopping_.load(); }
  [[nodiscard]] int wake_fd() const { return stopping() ? -1 : wake_fd_; }
  [[nodiscard]] Clock::time_point write_cutoff() const {
    if (!stopping()) return Clock::time_point::max();
    return Clock::time_point(Clock::duration(stop_at_.load())) + kStopWriteGrace;
  }
  [[nodiscard]] std::uint64_t rejected() const { return rejected_.load(); }
  [[nodiscard]] const ServerOptions& options() const { return options_; }
  std::atomic<std::size_t>& queued() { return queued_; }
  // Closes the listening socket when listen_after_bind() never ran to do it.
  void close_listener() {
    const int sock = svr_sock_.exchange(INVALID_SOCKET);
    if (sock != INVALID_SOCKET) ::close(sock);
  }
  // httplib listens with a tiny fixed backlog; listen() again on the bound socket only resizes it.
  void widen_backlog() { (void)::listen(svr_sock_.load(), kListenBacklog); }

 private:
  bool process_and_close_socket(socket_t sock) override;
  void serve(int fd);
  void reject(int fd);
  void setup_request(Connection& conn, httplib::Request& req);
  HandlerResponse route_request(const httplib::Request& req, httplib::Response& res);
  void emit(Connection& conn, Clock::time_point started);

  struct Route {
    podsight::http::Server::Handler handler;
    Access access = Access::kAuthenticated;
  };

  ServerOptions options_;
  std::map<std::string, Route, std::less<>> routes_;
  std::function<void(const RequestEvent&)> observer_;
  ReloadObserver reload_observer_;
  std::unique_ptr<TlsContext> tls_;
  std::unique_ptr<Authenticator> auth_;
  int wake_fd_ = -1;
  std::atomic<bool> stopping_{false};
  std::atomic<Clock::rep> stop_at_{0};
  std::atomic<std::size_t> in_flight_{0};
  std::atomic<std::size_t> queued_{0};
  std::atomic<std::uint64_t> rejected_{0};
};

// httplib's ThreadPool queues without limit; this one only ever holds admitted connections (at most
// max_connections) and turns the rest away at once, on the accept thread, without blocking it.
class WorkerPool final : public httplib::TaskQueue {
 public:
  WorkerPool(Engine& engine, std::size_t threads) : engine_(engine) {
    workers_.reserve(threads);
    try {
      for (std::size_t i = 0; i < threads; ++i) workers_.emplace_back([this] { run(); });
    } catch (...) {
      shutdown();  // joinable threads must not be destroyed by the unwinding
      throw;
    }
  }
  ~WorkerPool() override { shutdown(); }
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  void enqueue(std::function<void()> fn) override {
    if (!engine_.admit()) {
      t_reject_next = true;
      run_guarded(fn);
      t_reject_next = false;
      return;
    }
    {
      std::lock_guard lock(mu_);
      jobs_.push_back(std::move(fn));
      engine_.queued().fetch_add(1);
    }
    cv_.notify_one();
  }

  // Runs every job still queued (each one closes its socket), then joins.
  void shutdown() override {
    {
      std::lock_guard lock(mu_);
      shutdown_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) {
      if (t.joinable()) t.join();
    }
  }

 private:
  static void run_guarded(const std::function<void()>& fn) {
    try {
      fn();
    } catch (...) {  // NOLINT(bugprone-empty-catch): a worker must outlive any one connection
    }
  }

  void run() {
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [this] { return shutdown_ || !jobs_.empty(); });
        if (jobs_.empty()) return;
        fn = std::move(jobs_.front());
        jobs_.pop_front();
        engine_.queued().fetch_sub(1);
      }
      run_guarded(fn);
    }
  }

  Engine& engine_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool shutdown_ = false;
  std::vector<std::thread> workers_;
};

// ---- Connection ----

Connection::Connection(Engine& engine, int fd) : engine_(engine), fd_(fd) {}

Connection::~Connection() {
  close_tls();
  if (ssl_ != nullptr) SSL_free(ssl_);
}

void Connection::close_tls() {
  if (ssl_ == nullptr || tls_broken_ || !SSL_is_init_finished(ssl_)) return;
  // One non-blocking try: a client that does not read gets its connection closed anyway.
  (void)SSL_shutdown(ssl_);
  tls_broken_ = true;  // never twice
  ERR_clear_error();
}

Connection::Io Connection::tls_result(int rc) {
  switch (SSL_get_error(ssl_, rc)) {
    case SSL_ERROR_WANT_READ:
      return Io::kWantRead;
    case SSL_ERROR_WANT_WRITE:
      return Io::kWantWrite;
    case SSL_ERROR_ZERO_RETURN:
      return Io::kEof;  // close_notify, or (SSL_OP_IGNORE_UNEXPECTED_EOF) a plain close
    default:
      tls_broken_ = true;
      ERR_clear_error();  // the queue is per thread; leave it clean for the next connection
      return Io::kError;
  }
}

Connection::Io Connection::transport_read(char* buf, std::size_t size, std::size_t& got) {
  if (ssl_ != nullptr) {
    const int rc = SSL_read(ssl_, buf, static_cast<int>(std::min<std::size_t>(size, INT_MAX)));
    if (rc > 0) {
      got = static_cast<std::size_t>(rc);
      return Io::kDone;
    }
    return tls_result(rc);
  }
  for (;;) {
    const ssize_t n = ::recv(fd_, buf, size, 0);
    if (n > 0) {
      got = static_cast<std::size_t>(n);
      return Io::kDone;
    }
    if (n == 0) return Io::kEof;
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EWOULDBLOCK ? Io::kWantRead : Io::kError;
  }
}

Connection::Io Connection::transport_write(const char* buf, std::size_t size, std::size_t& put) {
  if (ssl_ != nullptr) {
    const int rc = SSL_write(ssl_, buf, static_cast<int>(std::min<std::size_t>(size, INT_MAX)));
    if (rc > 0) {
      put = static_cast<std::size_t>(rc);
      return Io::kDone;
    }
    return tls_result(rc);
  }
  for (;;) {
    // MSG_NOSIGNAL: a client that went away must cost us an EPIPE, never a SIGPIPE.
    const ssize_t n = ::send(fd_, buf, size, MSG_NOSIGNAL);
    if (n >= 0) {
      put = static_cast<std::size_t>(n);
      return Io::kDone;
    }
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EWOULDBLOCK ? Io::kWantWrite : Io::kError;
  }
}

bool Connection::handshake(SSL_CTX* ctx, Clock::time_point deadline) {
  ssl_ = SSL_new(ctx);
  if (ssl_ == nullptr || SSL_set_fd(ssl_, fd_) != 1) {
    tls_broken_ = true;
    ERR_clear_error();
    return false;
  }
  for (;;) {
    const int rc = SSL_accept(ssl_);
    if (rc == 1) return true;
    const int err = SSL_get_error(ssl_, rc);
    short events = 0;
    if (err == SSL_ERROR_WANT_READ) {
      events = POLLIN;
    } else if (err == SSL_ERROR_WANT_WRITE) {
      events = POLLOUT;
    } else {
      tls_broken_ = true;
      // A plain HTTP request on the TLS port is a configuration mistake worth a readable answer.
      const unsigned long reason = ERR_GET_REASON(ERR_peek_error());
      ERR_clear_error();
      if (reason == SSL_R_HTTP_REQUEST) {
        static constexpr std::string_view kPlain =
            "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 47\r\n"
            "Connection: close\r\n\r\nthis port speaks TLS: use https:// to reach it\n";
        (void)::send(fd_, kPlain.data(), kPlain.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      }
      return false;
    }
    if (wait_fd(fd_, events, deadline, engine_.wake_fd()) != Wait::kReady) {
      tls_broken_ = true;  // a client that stalls the handshake gets no close_notify either
      return false;
    }
  }
}

bool Connection::is_readable() const {
  if (buffered_input()) return true;
  if (engine_.stopping()) return false;
  return wait_fd(fd_, POLLIN, read_deadline_, engine_.wake_fd()) == Wait::kReady;
}

bool Connection::is_writable() const {
  if (write_failed_) return false;
  return wait_fd(fd_, POLLOUT, write_deadline(), engine_.wake_fd()) == Wait::kReady;
}

int Connection::fill() {
  for (;;) {
    if (engine_.stopping()) {
      interrupted_ = true;
      return -1;
    }
    std::size_t got = 0;
    const Io io = transport_read(in_.data(), in_.size(), got);
    if (io == Io::kDone) {
      in_pos_ = 0;
      in_len_ = got;
      return 1;
    }
    if (io == Io::kEof) return 0;
    if (io == Io::kError) return -1;
    switch (wait_fd(fd_, io == Io::kWantWrite ? POLLOUT : POLLIN, read_deadline_, engine_.wake_fd())) {
      case Wait::kReady:
        continue;
      case Wait::kTimeout:
        timed_out_ = true;
        return -1;
      case Wait::kStop:
        interrupted_ = true;
        return -1;
      case Wait::kError:
        return -1;
    }
  }
}

ssize_t Connection::read(char* ptr, size_t size) {
  if (size == 0) return 0;
  // The budget is checked before waiting for more: a client past it gets no more of our time.
  const std::size_t budget = engine_.options().max_request_bytes;
  const std::size_t allowed = budget - std::min(consumed_, budget);
  if (allowed == 0) {
    budget_exceeded_ = true;
    return -1;
  }
  if (in_pos_ == in_len_) {
    const int rc = fill();
    if (rc <= 0) return rc;
  }
  const std::size_t n = std::min({size, in_len_ - in_pos_, allowed});
  std::copy_n(in_.data() + in_pos_, n, ptr);
  in_pos_ += n;
  consumed_ += n;
  return static_cast<ssize_t>(n);
}

void Connection::start_writing() {
  if (writing_) return;
  writing_ = true;
  write_deadline_ = Clock::now() + std::chrono::seconds(engine_.options().write_timeout_seconds);
}

Clock::time_point Connection::write_deadline() const {
  const auto own = writing_ ? write_deadline_
                            : Clock::now() + std::chrono::seconds(engine_.options().write_timeout_seconds);
  return std::min(own, engine_.write_cutoff());
}

ssize_t Connection::write(const char* ptr, size_t size) {
  if (write_failed_) return -1;
  start_writing();
  if (out_.size() + size > kWriteBufferSize) {
    if (!flush()) return -1;
    if (size > kWriteBufferSize) {
      if (!send_all(ptr, size)) return -1;
      return static_cast<ssize_t>(size);
    }
  }
  out_.append(ptr, size);
  return static_cast<ssize_t>(size);
}

bool Connection::flush() {
  if (out_.empty()) return !write_failed_;
  const bool ok = send_all(out_.data(), out_.size());
  out_.clear();
  return ok;
}

bool Connection::send_all(const char* data, std::size_t size) {
  if (write_failed_) return false;
  std::size_t sent = 0;
  while (sent < size) {
    std::size_t put = 0;
    const Io io = transport_write(data + sent, size - sent, put);
    if (io == Io::kDone) {
      sent += put;
      written_ += put;
      continue;
    }
    if (io != Io::kWantRead && io != Io::kWantWrite) break;
    // After stop() the wake fd stays readable, so it is left out and only the grace deadline applies.
    const Wait w = wait_fd(fd_, io == Io::kWantRead ? POLLIN : POLLOUT, write_deadline(), engine_.wake_fd());
    if (w == Wait::kReady || w == Wait::kStop) continue;
    break;
  }
  if (sent < size) write_failed_ = true;
  return !write_failed_;
}

bool Connection::wait_for_request(Clock::time_point deadline, Clock::time_point yield_after) {
  if (buffered_input()) return true;  // pipelined: the next request is already here
  for (;;) {
    if (engine_.stopping()) return false;
    const auto now = Clock::now();
    if (now >= deadline) return false;
    if (now >= yield_after && engine_.queued().load() > 0) return false;
    const auto slice = std::min(deadline, now < yield_after ? yield_after : now + kYieldCheckInterval);
    switch (wait_fd(fd_, POLLIN, slice, engine_.wake_fd())) {
      case Wait::kReady:
        return true;  // data or EOF: read() tells which
      case Wait::kTimeout:
        continue;
      case Wait::kStop:
      case Wait::kError:
        return false;
    }
  }
}

void Connection::begin_request(Clock::time_point read_deadline) {
  state_ = RequestState{};
  read_deadline_ = read_deadline;
  write_deadline_ = Clock::time_point::max();
  writing_ = false;
  consumed_ = 0;
  written_ = 0;
  budget_exceeded_ = false;
  timed_out_ = false;
}

void Connection::answer_and_close(int status) {
  const char* reason = status == 408   ? "Request Timeout"
                       : status == 431 ? "Request Header Fields Too Large"
                       : status == 503 ? "Service Unavailable"
                                       : "Error";
  const std::string head = "HTTP/1.1 " + std::to_string(status) + " " + reason +
                           "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
  start_writing();
  out_.clear();
  state_.status = status;
  (void)send_all(head.data(), head.size());
}

void Connection::linger() {
  close_tls();
  ::shutdown(fd_, SHUT_WR);
  const auto deadline = std::min(Clock::now() + kLingerTime, engine_.write_cutoff());
  std::array<char, 4096> sink{};
  std::size_t drained = 0;
  while (drained < kLingerMaxBytes) {
    const ssize_t n = ::recv(fd_, sink.data(), sink.size(), 0);
    if (n > 0) {
      drained += static_cast<std::size_t>(n);
      continue;
    }
    if (n == 0) return;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return;
    if (wait_fd(fd_, POLLIN, deadline, engine_.wake_fd()) != Wait::kReady) return;
  }
}

void Connection::get_remote_ip_and_port(std::string& ip, int& port) const {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (::getpeername(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ip.clear();
    port = 0;
    return;
  }
  format_address(addr, ip, port);
}

void Connection::get_local_ip_and_port(std::string& ip, int& port) const {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ip.clear();
    port = 0;
    return;
  }
  format_address(addr, ip, port);
}

// ---- Engine ----

Engine::Engine(ServerOptions options) : options_(std::move(options)) {
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

  set_keep_alive_timeout(options_.idle_timeout_seconds);
  set_keep_alive_max_count(options_.keep_alive_max_requests);
  // httplib's default sets only SO_REUSEPORT, which lets a second agent on the node bind the same port
  // and silently take half the scrapes. SO_REUSEADDR alone allows a quick restart and nothing more.
  set_socket_options([](socket_t sock) {
    int one = 1;
    (void)::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  });
  const std::size_t workers = options_.worker_threads;
  new_task_queue = [this, workers] { return new WorkerPool(*this, workers); };

  set_pre_routing_handler(
      [this](const httplib::Request& req, httplib::Response& res) { return route_request(req, res); });
  set_error_handler(HandlerWithResponse([this](const httplib::Request&, httplib::Response& res) {
    Connection* conn = t_connection;
    // Only answers httplib made before handing us the request (bad head, URI too long, bad Range).
    if (conn == nullptr || conn->state().setup) return HandlerResponse::Unhandled;
    if (stopping() || conn->interrupted()) {
      res.status = 503;
    } else if (conn->budget_exceeded()) {
      res.status = 431;
    } else if (conn->timed_out()) {
      res.status = 408;
    }
    conn->state().close_after = true;
    conn->state().linger = true;
    return HandlerResponse::Unhandled;
  }));
  set_post_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    Connection* conn = t_connection;
    if (conn == nullptr) return;
    auto& st = conn->state();
    st.responded = true;
    st.status = res.status;
    if (!st.setup) st.method = method_label(req.method);
    if (stopping()) st.close_after = true;
    if (st.close_after) {
      res.headers.erase("Keep-Alive");
      res.headers.erase("Connection");
      res.set_header("Connection", "close");
    }
    res.headers.erase("Accept-Ranges");  // Range requests are ignored (see setup_request)
  });
  set_exception_handler([](const httplib::Request&, httplib::Response& res, const std::exception_ptr&) {
    res.headers.clear();
    set_text(res, 500, "internal server error\n");
  });
}

Engine::~Engine() {
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void Engine::begin_stop() {
  bool expected = false;
  if (!stopping_.compare_exchange_strong(expected, true)) return;
  stop_at_.store(Clock::now().time_since_epoch().count());
  if (wake_fd_ >= 0) {
    const std::uint64_t one = 1;
    while (::write(wake_fd_, &one, sizeof(one)) < 0 && errno == EINTR) {
    }
  }
}

bool Engine::process_and_close_socket(socket_t sock) {
  if (std::exchange(t_reject_next, false)) {
    reject(sock);
    return false;
  }
  try {
    if (!stopping()) serve(sock);
  } catch (...) {  // NOLINT(bugprone-empty-catch): the connection is closed below either way
  }
  ::close(sock);
  in_flight_.fetch_sub(1);
  return true;
}

Status Engine::prepare_security() {
  if (options_.tls.enabled()) {
    auto tls = TlsContext::create(options_.tls, reload_observer_);
    if (!tls) return tls.error();
    tls_ = std::move(*tls);
  }
  auto auth = Authenticator::create(options_.auth, reload_observer_);
  if (!auth) return auth.error();
  auth_ = std::move(*auth);
  return {};
}

void Engine::reject(int fd) {
  if (tls_) {
    // No plain-text answer on a TLS port, and no handshake on the accept thread: just close.
    ::close(fd);
    return;
  }
  static constexpr std::string_view kBusy =
      "HTTP/1.1 503 Service Unavailable\r\n"
      "Content-Type: text/plain; charset=utf-8\r\n"
      "Content-Length: 21\r\n"
      "Retry-After: 1\r\n"
      "Connection: close\r\n"
      "\r\n"
      "too many connections\n";
  // On the accept thread: nothing here may block. A fresh socket's send buffer takes this at once.
  (void)::send(fd, kBusy.data(), kBusy.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  ::shutdown(fd, SHUT_WR);
  std::array<char, 4096> sink{};
  for (int i = 0; i < 4 && ::recv(fd, sink.data(), sink.size(), MSG_DONTWAIT) > 0; ++i) {
  }
  ::close(fd);
}

void Engine::serve(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) return;
  (void)::fcntl(fd, F_SETFD, FD_CLOEXEC);
  int one = 1;
  (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

  Connection conn(*this, fd);
  t_connection = &conn;
  struct Reset {
    ~Reset() { t_connection = nullptr; }
  } reset;

  const auto request_timeout = std::chrono::seconds(options_.request_timeout_seconds);
  const auto idle_timeout = std::chrono::seconds(options_.idle_timeout_seconds);
  const auto accepted = Clock::now();
  // The first request's clock starts at accept, so a silent client is cut like a slow one.
  auto wait_deadline = accepted + request_timeout;
  auto yield_after = accepted + kFirstRequestYieldAfter;
  const std::function<void(httplib::Request&)> setup = [this, &conn](httplib::Request& req) {
    setup_request(conn, req);
  };
  // The handshake counts against the first request's deadline, so a stalling TLS client is cut like
  // a slow plain one.
  // Waiting for the ClientHello yields to queued connections like waiting for a request does.
  if (tls_ && (!conn.wait_for_request(wait_deadline, yield_after) ||
               !conn.handshake(tls_->current().get(), accepted + request_timeout))) {
    return;
  }

  for (std::size_t served = 0;; ++served) {
    if (!conn.wait_for_request(wait_deadline, yield_after)) return;
    const auto started = Clock::now();
    conn.begin_request(served == 0 ? accepted + request_timeout : started + request_timeout);
    const bool last = served + 1 >= options_.keep_alive_max_requests || stopping();
    bool client_closes = false;
    bool ok = false;
    try {
      ok = process_request(conn, last, client_closes, setup);
    } catch (...) {
      ok = false;
    }
    ok = conn.flush() && ok;
    if (!conn.state().responded) {
      // httplib gave up before answering: say why when we know, as long as the client can still hear it.
      int status = 0;
      if (conn.interrupted()) {
        status = 503;
      } else if (conn.budget_exceeded()) {
        status = 431;
      } else if (conn.timed_out() && conn.consumed() > 0) {
        status = 408;
      }
      if (status != 0 && !conn.write_failed()) {
        conn.answer_and_close(status);
        emit(conn, started);
        conn.linger();
      }
      return;
    }
    emit(conn, started);
    if (!ok || last || client_closes || conn.state().close_after || conn.write_failed()) {
      if (conn.state().linger && !conn.write_failed()) conn.linger();
      return;
    }
    const auto now = Clock::now();
    wait_deadline = now + idle_timeout;
    yield_after = now;  // an idle keep-alive connection makes way as soon as another one waits
  }
}

void Engine::setup_request(Connection& conn, httplib::Request& req) {
  auto& st = conn.state();
  st.setup = true;
  st.method = method_label(req.method);
  const auto connection = req.get_header_value("Connection");
  if (has_token(connection, "close") || (req.version == "HTTP/1.0" && !has_token(connection, "keep-alive"))) {
    st.close_after = true;
  }
  // Routing answers before httplib would read a body, and no route wants one; unread body bytes would be
  // parsed as the next request, so such a connection is answered and closed.
  const auto content_length = req.get_header_value("Content-Length");
  if (req.has_header("Transfer-Encoding") || (!content_length.empty() && content_length != "0")) {
    st.close_after = true;
    st.linger = true;
    // A body that could not fit the request budget gets 413; a chunked one (no length) is answered as
    // usual, since its bytes are never read anyway.
    if (!content_length.empty()) {
      std::size_t declared = 0;
      const auto* end = content_length.data() + content_length.size();
      const auto parsed = std::from_chars(content_length.data(), end, declared);
      const std::size_t room =
          options_.max_request_bytes - std::min(conn.consumed(), options_.max_request_bytes);
      st.bad_content_length = parsed.ec == std::errc::invalid_argument || parsed.ptr != end;
      st.body_too_large = !st.bad_content_length && (parsed.ec != std::errc() || declared > room);
    }
  }
  // Compression is ours (httplib would pick brotli, or skip openmetrics); Range would let one small
  // request make httplib build a multipart response many times the size of the body.
  st.accept_encoding = req.get_header_value("Accept-Encoding");
  req.headers.erase("Accept-Encoding");
  req.headers.erase("Range");
  req.ranges.clear();
  req.headers.erase("Expect");  // no 100-continue: we never want the body
  if (stopping()) st.close_after = true;
}

httplib::Server::HandlerResponse Engine::route_request(const httplib::Request& req, httplib::Response& res) {
  Connection* conn = t_connection;
  if (conn == nullptr) {
    set_text(res, 500, "internal server error\n");
    return HandlerResponse::Handled;
  }
  auto& st = conn->state();
  if (st.bad_content_length) {
    set_text(res, 400, "invalid Content-Length\n");
    return HandlerResponse::Handled;
  }
  if (st.body_too_large) {
    set_text(res, 413, "request body too large\n");
    return HandlerResponse::Handled;
  }
  const auto it = routes_.find(req.path);
  if (it == routes_.end()) {
    set_text(res, 404, "not found\n");
    return HandlerResponse::Handled;
  }
  st.path = it->first;
  if (req.method != "GET" && req.method != "HEAD") {
    set_text(res, 405, "method not allowed\n");
    res.set_header("Allow", "GET, HEAD");
    return HandlerResponse::Handled;
  }
  if (auth_ && it->second.access == Access::kAuthenticated &&
      auth_->check(req.get_header_value("Authorization")) != Authenticator::Verdict::kAllowed) {
    set_text(res, 401, "unauthorized\n");
    for (const auto& challenge : auth_->challenges()) res.headers.emplace("WWW-Authenticate", challenge);
    return HandlerResponse::Handled;
  }
  Response out;
  bool gzipped = false;
  try {
    out = it->second.handler(req);
    if (out.stream) {
      StreamedBody body(compressible(out.content_type) && accepts_gzip(st.accept_encoding));
      out.stream(body);
      out.body = body.finish(gzipped);
    }
  } catch (...) {
    out = Response{500, kTextPlain, "internal server error\n"};
    gzipped = false;
  }
  if (compressible(out.content_type)) {
    res.set_header("Vary", "Accept-Encoding");
    // HEAD is compressed too so that its Content-Length is the one GET would send.
    if (gzipped) {
      res.set_header("Content-Encoding", "gzip");
    } else if (out.body.size() >= kGzipMinBytes && accepts_gzip(st.accept_encoding)) {
      if (auto zipped = gzip(out.body)) {
        out.body = std::move(*zipped);
        res.set_header("Content-Encoding", "gzip");
      }
    }
  }
  res.status = out.status;
  res.body = std::move(out.body);
  res.set_header("Content-Type", out.content_type);
  return HandlerResponse::Handled;
}

void Engine::emit(Connection& conn, Clock::time_point started) {
  if (!observer_) return;
  const auto& st = conn.state();
  RequestEvent event;
  event.method = st.method;
  event.path = st.path;
  event.status = st.status;
  event.seconds = std::chrono::duration<double>(Clock::now() - started).count();
  event.response_bytes = conn.bytes_written();
  try {
    observer_(event);
  } catch (...) {  // NOLINT(bugprone-empty-catch): self-metrics must not break serving
  }
}

Options sanitize(Options o) {
  o.request_timeout_seconds = std::max(1, o.request_timeout_seconds);
  o.write_timeout_seconds = std::max(1, o.write_timeout_seconds);
  o.idle_timeout_seconds = std::max(0, o.idle_timeout_seconds);
  o.max_connections = std::max<std::size_t>(1, o.max_connections);
  o.worker_threads = std::max<std::size_t>(1, o.worker_threads);
  o.max_request_bytes = std::max<std::size_t>(64, o.max_request_bytes);
  o.keep_alive_max_requests = std::max<std::size_t>(1, o.keep_alive_max_requests);
  return o;
}

bool valid_hostname(std::string_view host) {
  return std::all_of(host.begin(), host.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '.' || c == '-' || c == '_';
  });
}

Error listen_error(std::string_view listen, const std::string& why) {
  return Error{"invalid listen address: " + why, std::string(listen), 0};
}

}  // namespace

Result<std::pair<std::string, int>> parse_listen_address(std::string_view listen) {
  if (listen.empty()) return listen_error(listen, "empty");
  std::string host;
  std::string_view port;
  if (listen.front() == '[') {
    const auto close = listen.find(']');
    if (close == std::string_view::npos) return listen_error(listen, "missing ']' after IPv6 address");
    host = std::string(listen.substr(1, close - 1));
    if (host.empty()) return listen_error(listen, "empty IPv6 address in brackets");
    in6_addr addr{};
    if (inet_pton(AF_INET6, host.c_str(), &addr) != 1) {
      return listen_error(listen, "'" + host + "' is not an IPv6 address");
    }
    const auto rest = listen.substr(close + 1);
    if (rest.empty() || rest.front() != ':') return listen_error(listen, "missing ':PORT' after ']'");
    port = rest.substr(1);
  } else {
    const auto colon = listen.rfind(':');
    if (colon == std::string_view::npos) return listen_error(listen, "missing ':PORT'");
    host = std::string(listen.substr(0, colon));
    port = listen.substr(colon + 1);
    if (host.find(':') != std::string::npos) {
      return listen_error(listen, "an IPv6 address must be written in brackets, as [ADDR]:PORT");
    }
    if (host.empty()) host = "0.0.0.0";
    if (!valid_hostname(host)) return listen_error(listen, "'" + host + "' is not a valid host");
  }
  if (port.empty()) return listen_error(listen, "missing port");
  if (!std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return listen_error(listen, "port '" + std::string(port) + "' is not a number");
  }
  if (port.size() > 5) return listen_error(listen, "port " + std::string(port) + " is out of range 0..65535");
  int value = 0;
  std::from_chars(port.data(), port.data() + port.size(), value);
  if (value > 65535) return listen_error(listen, "port " + std::string(port) + " is out of range 0..65535");
  return std::pair<std::string, int>{std::move(host), value};
}

class Server::Impl {
 public:
  explicit Impl(Options options) : options_(sanitize(std::move(options))), engine_(options_) {}

  Options options_;
  Engine engine_;
  std::mutex mu_;  // start() and stop() against each other
  std::thread listener_;
  std::atomic<bool> started_{false};
  std::atomic<bool> stopped_{false};
  std::atomic<int> port_{0};
  std::atomic<bool> listener_done_{false};
};

Server::Server(Options options) : impl_(std::make_unique<Impl>(std::move(options))) {}

Server::~Server() { stop(); }

void Server::route(const std::string& path, Handler handler, Access access) {
  std::lock_guard lock(impl_->mu_);
  // Workers read the routes without a lock; that is only safe while nothing can change them.
  if (impl_->started_) throw std::logic_error("http::Server::route() called after start()");
  impl_->engine_.add_route(path, std::move(handler), access);
}

void Server::on_reload(ReloadObserver observer) {
  std::lock_guard lock(impl_->mu_);
  if (impl_->started_) throw std::logic_error("http::Server::on_reload() called after start()");
  impl_->engine_.set_reload_observer(std::move(observer));
}

std::int64_t Server::tls_certificate_not_after() const {
  const TlsContext* tls = impl_->engine_.tls();
  return tls == nullptr ? 0 : tls->not_after();
}

Status check_security_files(const Options& options) {
  if (options.tls.enabled()) {
    if (auto tls = TlsContext::create(options.tls); !tls) return tls.error();
  }
  if (auto auth = Authenticator::create(options.auth); !auth) return auth.error();
  return {};
}

void Server::on_request(std::function<void(const RequestEvent&)> observer) {
  std::lock_guard lock(impl_->mu_);
  if (impl_->started_) throw std::logic_error("http::Server::on_request() called after start()");
  impl_->engine_.set_observer(std::move(observer));
}

Status Server::start() {
  std::lock_guard lock(impl_->mu_);
  const std::string& listen = impl_->options_.listen;
  if (impl_->started_ || impl_->stopped_) return Error{"start http server: already started", listen, 0};
  auto parsed = parse_listen_address(listen);
  if (!parsed) return parsed.error();
  const auto& [host, port] = parsed.value();
  if (auto st = impl_->engine_.prepare_security(); !st) return st;

  auto& engine = impl_->engine_;
  const bool v6 = host.find(':') != std::string::npos;
  in_addr v4{};
  engine.set_address_family(v6 ? AF_INET6
                               : (inet_pton(AF_INET, host.c_str(), &v4) == 1 ? AF_INET : AF_UNSPEC));
  const std::string where = (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
  errno = 0;
  const int bound = port == 0 ? engine.bind_to_any_port(host) : (engine.bind_to_port(host, port) ? port : -1);
  if (bound <= 0) {
    // httplib reports only failure; errno is bind()'s, unless resolving the host failed first.
    const int err = errno != 0 ? errno : EADDRNOTAVAIL;
    engine.close_listener();
    return errno_error("bind", where, err);
  }
  engine.widen_backlog();
  impl_->port_ = bound;
  impl_->started_ = true;
  try {
    impl_->listener_ = std::thread([impl = impl_.get()] {
      try {
        impl->engine_.listen_after_bind();
      } catch (...) {  // NOLINT(bugprone-empty-catch): serving() reports it
      }
      impl->listener_done_ = true;
    });
  } catch (const std::system_error& e) {
    engine.close_listener();
    impl_->listener_done_ = true;
    return Error{"start http server thread", where, e.code().value()};
  }
  // httplib's stop() does nothing until the accept loop has marked itself running; wait for that so a
  // stop() right after start() cannot leave the loop behind.
  while (!engine.is_running() && !impl_->listener_done_) std::this_thread::sleep_for(1ms);
  return {};
}

void Server::stop() {
  std::lock_guard lock(impl_->mu_);
  if (impl_->stopped_) return;
  impl_->stopped_ = true;
  auto& engine = impl_->engine_;
  engine.begin_stop();
  if (impl_->listener_.joinable()) {
    engine.stop();  // httplib's: closes the listening socket, so accept() returns and workers drain
    impl_->listener_.join();
  } else if (impl_->started_) {
    engine.close_listener();
  }
}

int Server::port() const { return impl_->port_.load(); }

std::uint64_t Server::rejected_connections() const { return impl_->engine_.rejected(); }

bool Server::serving() const {
  return impl_->started_ && !impl_->stopped_ && !impl_->listener_done_.load() && impl_->engine_.is_running();
}

}  // namespace podsight::http
