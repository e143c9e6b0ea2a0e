// HTTPS GET over a non-blocking socket and OpenSSL: poll() on the socket and the Canceller's eventfd
// for every wait, so DNS, connect, handshake and reads all end at a deadline or at once when cancelled.
#include "metadata/kube_http.hpp"

#include "podsight/version.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstring>
#include <memory>
#include <mutex>

namespace podsight::metadata {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kMaxHeadBytes = 64 * 1024;
constexpr std::size_t kReadChunk = 16 * 1024;
constexpr std::size_t kMaxChunkLine = 1024;
constexpr std::size_t kMaxTrailerBytes = 16 * 1024;
// Sanity bound on one chunk's declared size; the caller's own byte budget is far below it.
constexpr std::uint64_t kMaxChunkSize = std::uint64_t{1} << 40;
// Dead peers on an idle watch are found by TCP keepalive: ~30 s idle + 3 probes 10 s apart.
constexpr int kKeepIdleSeconds = 30;
constexpr int kKeepIntervalSeconds = 10;
constexpr int kKeepCount = 3;

enum class Wait { kReady, kTimeout, kCancelled };

Wait wait_fd(int fd, short events, Clock::time_point deadline, const Canceller& cancel) {
  for (;;) {
    const auto now = Clock::now();
    if (now >= deadline) return Wait::kTimeout;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count() + 1;
    pollfd p[2] = {{fd, events, 0}, {cancel.fd(), POLLIN, 0}};
    const int rc = ::poll(p, 2, static_cast<int>(std::min<long long>(left, INT_MAX)));
    if (rc < 0 && errno == EINTR) continue;
    if (p[1].revents & POLLIN) return Wait::kCancelled;
    if (rc != 0) return Wait::kReady;  // ready, or an error the next operation will report
  }
}

bool is_ip_literal(const std::string& s) {
  unsigned char buf[sizeof(in6_addr)];
  return ::inet_pton(AF_INET, s.c_str(), buf) == 1 || ::inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

std::string ssl_errors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

// Lookups still running in glibc's resolver thread when we gave up on them (cancelled or timed out):
// freed by a later call once the resolver is done with them.
struct Lookup {
  gaicb cb{};
  addrinfo hints{};
  std::string host;
  std::string service;
};
std::mutex g_abandoned_mu;
std::vector<Lookup*> g_abandoned;

void reap_abandoned() {
  std::lock_guard lock(g_abandoned_mu);
  for (auto it = g_abandoned.begin(); it != g_abandoned.end();) {
    if (::gai_error(&(*it)->cb) == EAI_INPROGRESS) {
      ++it;
      continue;
    }
    if ((*it)->cb.ar_result != nullptr) ::freeaddrinfo((*it)->cb.ar_result);
    delete *it;
    it = g_abandoned.erase(it);
  }
}

struct AddrInfoDeleter {
  void operator()(addrinfo* ai) const {
    if (ai != nullptr) ::freeaddrinfo(ai);
  }
};
using AddrInfoPtr = std::unique_ptr<addrinfo, AddrInfoDeleter>;

struct CtxDeleter {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
struct SslDeleter {
  void operator()(SSL* s) const { SSL_free(s); }
};
struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
using BioPtr = std::unique_ptr<BIO, BioDeleter>;

BioPtr mem_bio(const std::string& pem) {
  return BioPtr(BIO_new_mem_buf(pem.data(), static_cast<int>(std::min<std::size_t>(pem.size(), INT_MAX))));
}

class Exchange {
 public:
  Exchange(const HttpsTarget& server, const HttpTimeouts& timeouts, const Canceller& cancel)
      : server_(server), timeouts_(timeouts), cancel_(cancel), start_(Clock::now()) {
    total_deadline_ = timeouts.total.count() > 0 ? start_ + timeouts.total : Clock::time_point::max();
  }
  ~Exchange() {
    ssl_.reset();
    if (fd_ >= 0) ::close(fd_);
  }

  HttpOutcome run(const std::string& request, const HeadHandler& on_head, const BodyHandler& on_body) {
    reap_abandoned();
    if (cancel_.cancelled()) return fail(HttpFailure::kCancelled, "cancelled");
    const auto connect_deadline = std::min(start_ + timeouts_.connect, total_deadline_);
    AddrInfoPtr addrs;
    // Each step records its failure in out_; the first one that fails ends the exchange.
    (void)(resolve(connect_deadline, addrs) && connect(addrs.get(), connect_deadline) &&
           handshake(connect_deadline) && write_all(request) && read_response(on_head, on_body));
    return out_;
  }

 private:
  HttpOutcome fail(HttpFailure kind, std::string message) {
    if (!out_.failure) {
      out_.failure = kind;
      out_.message = std::move(message);
    }
    return out_;
  }
  bool fail_wait(Wait w, const std::string& what) {
    if (w == Wait::kCancelled)
      fail(HttpFailure::kCancelled, "cancelled");
    else
      fail(HttpFailure::kTimeout, what + ": timed out");
    return false;
  }
  [[nodiscard]] Clock::time_point read_deadline() const {
    return std::min(Clock::now() + timeouts_.idle, total_deadline_);
  }
  [[nodiscard]] std::string where() const { return server_.host + ":" + std::to_string(server_.port); }

  bool resolve(Clock::time_point deadline, AddrInfoPtr& out) {
    const std::string service = std::to_string(server_.port);
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    if (is_ip_literal(server_.host)) {
      hints.ai_flags |= AI_NUMERICHOST;
      addrinfo* ai = nullptr;
      if (int rc = ::getaddrinfo(server_.host.c_str(), service.c_str(), &hints, &ai); rc != 0) {
        fail(HttpFailure::kResolve, "resolve " + server_.host + ": " + ::gai_strerror(rc));
        return false;
      }
      out.reset(ai);
      return true;
    }
    // A name: glibc's asynchronous lookup, so that a hanging DNS server cannot hold up a stop.
    auto* l = new Lookup;
    l->host = server_.host;
    l->service = service;
    l->hints = hints;
    l->cb.ar_name = l->host.c_str();
    l->cb.ar_service = l->service.c_str();
    l->cb.ar_request = &l->hints;
    gaicb* list[1] = {&l->cb};
    if (int rc = ::getaddrinfo_a(GAI_NOWAIT, list, 1, nullptr); rc != 0) {
      delete l;
      fail(HttpFailure::kResolve, "resolve " + server_.host + ": " + ::gai_strerror(rc));
      return false;
    }
    Wait w = Wait::kReady;
    while (::gai_error(&l->cb) == EAI_INPROGRESS) {
      const auto slice = std::min(deadline, Clock::now() + std::chrono::milliseconds(20));
      w = wait_fd(-1, 0, slice, cancel_);
      if (w == Wait::kCancelled || Clock::now() >= deadline) break;
      w = Wait::kReady;
    }
    const int rc = ::gai_error(&l->cb);
    if (rc == EAI_INPROGRESS) {
      if (::gai_cancel(&l->cb) == EAI_CANCELED) {
        delete l;
      } else {
        std::lock_guard lock(g_abandoned_mu);
        g_abandoned.push_back(l);
      }
      return fail_wait(w == Wait::kCancelled ? Wait::kCancelled : Wait::kTimeout, "resolve " + server_.host);
    }
    if (rc != 0) {
      delete l;
      fail(HttpFailure::kResolve, "resolve " + server_.host + ": " + ::gai_strerror(rc));
      return false;
    }
    out.reset(l->cb.ar_result);
    delete l;
    return true;
  }

  bool connect(const addrinfo* addrs, Clock::time_point deadline) {
    std::string last = "no address";
    for (const addrinfo* a = addrs; a != nullptr; a = a->ai_next) {
      int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
      if (fd < 0) {
        last = std::strerror(errno);
        continue;
      }
      int rc = ::connect(fd, a->ai_addr, a->ai_addrlen);
      if (rc != 0 && errno != EINPROGRESS) {
        last = std::strerror(errno);
        ::close(fd);
        continue;
      }
      if (rc != 0) {
        Wait w = wait_fd(fd, POLLOUT, deadline, cancel_);
        if (w != Wait::kReady) {
          ::close(fd);
          return fail_wait(w, "connect to " + where());
        }
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
          last = std::strerror(err);
          ::close(fd);
          continue;
        }
      }
      const int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
      ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &kKeepIdleSeconds, sizeof kKeepIdleSeconds);
      ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &kKeepIntervalSeconds, sizeof kKeepIntervalSeconds);
      ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &kKeepCount, sizeof kKeepCount);
      fd_ = fd;
      return true;
    }
    fail(HttpFailure::kConnect, "connect to " + where() + ": " + last);
    return false;
  }

  bool setup_tls() {
    ERR_clear_error();
    ctx_.reset(SSL_CTX_new(TLS_client_method()));
    if (!ctx_) {
      fail(HttpFailure::kTls, "SSL_CTX_new: " + ssl_errors());
      return false;
    }
    SSL_CTX_set_min_proto_version(ctx_.get(), TLS1_2_VERSION);
    // An EOF without close_notify is judged by HTTP framing (a watch cut mid-chunk is an error anyway).
    SSL_CTX_set_options(ctx_.get(), SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_verify(ctx_.get(), SSL_VERIFY_PEER, nullptr);
    int cas = 0;
    {
      auto bio = mem_bio(server_.ca_pem);
      X509_STORE* store = SSL_CTX_get_cert_store(ctx_.get());
      while (X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
        if (X509_STORE_add_cert(store, x) == 1) ++cas;
        X509_free(x);
      }
      ERR_clear_error();  // the read loop ends with "no start line"
    }
    if (cas == 0) {
      fail(HttpFailure::kTls, "no CA certificate to verify the API server with");
      return false;
    }
    if (!server_.client_cert_pem.empty() || !server_.client_key_pem.empty()) {
      auto cert_bio = mem_bio(server_.client_cert_pem);
      X509* cert = PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr);
      bool ok = cert != nullptr && SSL_CTX_use_certificate(ctx_.get(), cert) == 1;
      X509_free(cert);
      while (ok) {  // the rest of the PEM is the chain
        X509* extra = PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr);
        if (extra == nullptr) break;
        if (SSL_CTX_add0_chain_cert(ctx_.get(), extra) != 1) X509_free(extra);
      }
      ERR_clear_error();
      auto key_bio = mem_bio(server_.client_key_pem);
      EVP_PKEY* key = ok ? PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr) : nullptr;
      ok = key != nullptr && SSL_CTX_use_PrivateKey(ctx_.get(), key) == 1 &&
           SSL_CTX_check_private_key(ctx_.get()) == 1;
      EVP_PKEY_free(key);
      if (!ok) {
        fail(HttpFailure::kTls, "client certificate or key unusable: " + ssl_errors());
        return false;
      }
    }
    ssl_.reset(SSL_new(ctx_.get()));
    if (!ssl_ || SSL_set_fd(ssl_.get(), fd_) != 1) {
      fail(HttpFailure::kTls, "SSL_new: " + ssl_errors());
      return false;
    }
    const std::string& name = server_.server_name.empty() ? server_.host : server_.server_name;
    if (is_ip_literal(name)) {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_.get()), name.c_str());
    } else {
      SSL_set_tlsext_host_name(ssl_.get(), name.c_str());
      X509_VERIFY_PARAM_set_hostflags(SSL_get0_param(ssl_.get()), X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      SSL_set1_host(ssl_.get(), name.c_str());
    }
    return true;
  }

  // Waits for what OpenSSL asked for after `rc`; false (with out_ set) when it is an error.
  bool ssl_wait(int rc, Clock::time_point deadline, const std::string& what) {
    const int e = SSL_get_error(ssl_.get(), rc);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      Wait w = wait_fd(fd_, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline, cancel_);
      return w == Wait::kReady || fail_wait(w, what);
    }
    if (e == SSL_ERROR_SYSCALL) {
      fail(HttpFailure::kConnect,
           what + ": connection lost" + (errno != 0 ? std::string(": ") + std::strerror(errno) : ""));
      return false;
    }
    fail(HttpFailure::kTls, what + ": " + ssl_errors());
    return false;
  }

  bool handshake(Clock::time_point deadline) {
    if (!setup_tls()) return false;
    for (;;) {
      ERR_clear_error();
      errno = 0;
      const int rc = SSL_connect(ssl_.get());
      if (rc == 1) return true;
      const long verify = SSL_get_verify_result(ssl_.get());
      if (verify != X509_V_OK) {
        fail(HttpFailure::kTls, "TLS handshake with " + where() +
                                    ": certificate verify failed: " + X509_verify_cert_error_string(verify));
        return false;
      }
      if (!ssl_wait(rc, deadline, "TLS handshake with " + where())) return false;
    }
  }

  bool write_all(const std::string& data) {
    std::size_t off = 0;
    const auto deadline = read_deadline();
    while (off < data.size()) {
      ERR_clear_error();
      errno = 0;
      const int n = SSL_write(ssl_.get(), data.data() + off,
                              static_cast<int>(std::min<std::size_t>(data.size() - off, INT_MAX)));
      if (n > 0) {
        off += static_cast<std::size_t>(n);
        continue;
      }
      if (!ssl_wait(n, deadline, "send request to " + where())) return false;
    }
    return true;
  }

  // Bytes into buf; 0 at the end of the stream; -1 on failure (out_ set).
  long read_some(char* buf, std::size_t size) {
    const auto deadline = read_deadline();
    for (;;) {
      ERR_clear_error();
      errno = 0;
      const int n = SSL_read(ssl_.get(), buf, static_cast<int>(size));
      if (n > 0) return n;
      const int e = SSL_get_error(ssl_.get(), n);
      if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && errno == 0)) return 0;
      if (!ssl_wait(n, deadline, "read response from " + where())) return -1;
    }
  }

  bool parse_head(std::string_view head, const HeadHandler& on_head) {
    auto line_end = head.find("\r\n");
    std::string_view status_line = head.substr(0, line_end);
    if (!status_line.starts_with("HTTP/1.") || status_line.size() < 12 || status_line[8] != ' ') {
      fail(HttpFailure::kProtocol, "response from " + where() + " is not HTTP/1.x");
      return false;
    }
    int status = 0;
    for (std::size_t i = 9; i < 12; ++i) {
      if (status_line[i] < '0' || status_line[i] > '9') {
        fail(HttpFailure::kProtocol, "malformed status line from " + where());
        return false;
      }
      status = status * 10 + (status_line[i] - '0');
    }
    out_.status = status;
    HttpHead h;
    h.status = status;
    std::size_t pos = line_end + 2;
    while (pos < head.size()) {
      auto end = head.find("\r\n", pos);
      if (end == std::string_view::npos) end = head.size();
      std::string_view line = head.substr(pos, end - pos);
      pos = end + 2;
      auto colon = line.find(':');
      if (colon == std::string_view::npos) continue;
      std::string name(line.substr(0, colon));
      std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
      std::string_view value = line.substr(colon + 1);
      while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
      while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
      std::string lower(value);
      std::transform(lower.begin(), lower.end(), lower.begin(),
                     [](unsigned char c) { return std::tolower(c); });
      if (name == "transfer-encoding") {
        chunked_ = lower.ends_with("chunked");
        if (!chunked_) {
          fail(HttpFailure::kProtocol, "unsupported Transfer-Encoding \"" + lower + "\" from " + where());
          return false;
        }
      } else if (name == "content-length") {
        std::uint64_t n = 0;
        if (lower.empty() || lower.size() > 18 ||
            lower.find_first_not_of("0123456789") != std::string::npos) {
          fail(HttpFailure::kProtocol, "malformed Content-Length from " + where());
          return false;
        }
        for (char c : lower) n = n * 10 + static_cast<std::uint64_t>(c - '0');
        content_length_ = n;
      } else if (name == "content-encoding" && lower != "identity") {
        fail(HttpFailure::kProtocol, "unrequested Content-Encoding \"" + lower + "\" from " + where());
        return false;
      } else if (name == "content-type") {
        h.content_type = std::string(value);
      }
    }
    if (on_head && !on_head(h)) {
      fail(HttpFailure::kAborted, "stopped after the response head");
      return false;
    }
    return true;
  }

  bool read_response(const HeadHandler& on_head, const BodyHandler& on_body) {
    std::string buf;
    char chunk[kReadChunk];
    std::size_t head_end = std::string::npos;
    while (head_end == std::string::npos) {
      const long n = read_some(chunk, sizeof chunk);
      if (n < 0) return false;
      if (n == 0) {
        fail(HttpFailure::kProtocol, "connection to " + where() + " closed before a response");
        return false;
      }
      buf.append(chunk, static_cast<std::size_t>(n));
      head_end = buf.find("\r\n\r\n");
      if ((head_end == std::string::npos && buf.size() > kMaxHeadBytes) ||
          (head_end != std::string::npos && head_end > kMaxHeadBytes)) {
        fail(HttpFailure::kProtocol, "response head from " + where() + " is larger than 64 KiB");
        return false;
      }
    }
    if (!parse_head(std::string_view(buf).substr(0, head_end), on_head)) return false;
    std::string_view rest = std::string_view(buf).substr(head_end + 4);
    if (out_.status == 204 || out_.status == 304 || (!chunked_ && content_length_ && *content_length_ == 0)) {
      return true;
    }

    ChunkedDecoder chunks;
    std::uint64_t remaining = content_length_.value_or(0);
    auto deliver = [&](std::string_view data) -> int {  // 1 more, 0 done, -1 failed
      if (chunked_) {
        switch (chunks.feed(data, on_body)) {
          case ChunkedDecoder::State::kMore:
            return 1;
          case ChunkedDecoder::State::kDone:
            return 0;
          case ChunkedDecoder::State::kAborted:
            fail(HttpFailure::kAborted, "stopped by the reader");
            return -1;
          case ChunkedDecoder::State::kError:
            fail(HttpFailure::kProtocol, "chunked body from " + where() + ": " + chunks.error());
            return -1;
        }
      }
      if (content_length_) {
        data = data.substr(0, static_cast<std::size_t>(std::min<std::uint64_t>(remaining, data.size())));
        remaining -= data.size();
      }
      if (!data.empty() && !on_body(data)) {
        fail(HttpFailure::kAborted, "stopped by the reader");
        return -1;
      }
      return content_length_ && remaining == 0 ? 0 : 1;
    };
    int st = rest.empty() ? 1 : deliver(rest);
    buf.clear();
    buf.shrink_to_fit();
    while (st == 1) {
      const long n = read_some(chunk, sizeof chunk);
      if (n < 0) return false;
      if (n == 0) {
        if (!chunked_ && !content_length_) return true;  // delimited by the end of the connection
        fail(HttpFailure::kProtocol, "connection to " + where() + " closed before the end of the response");
        return false;
      }
      st = deliver(std::string_view(chunk, static_cast<std::size_t>(n)));
    }
    return st == 0;
  }

  const HttpsTarget& server_;
  const HttpTimeouts& timeouts_;
  const Canceller& cancel_;
  Clock::time_point start_;
  Clock::time_point total_deadline_;
  int fd_ = -1;
  std::unique_ptr<SSL_CTX, CtxDeleter> ctx_;
  std::unique_ptr<SSL, SslDeleter> ssl_;
  bool chunked_ = false;
  std::optional<std::uint64_t> content_length_;
  HttpOutcome out_;
};

}  // namespace

Canceller::Canceller() : fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

Canceller::~Canceller() {
  if (fd_ >= 0) ::close(fd_);
}

void Canceller::cancel() {
  const std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(fd_, &one, sizeof one);
}

bool Canceller::cancelled() const {
  pollfd p{fd_, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0 && (p.revents & POLLIN) != 0;
}

bool Canceller::sleep_for(std::chrono::milliseconds d) const {
  return wait_fd(-1, 0, Clock::now() + d, *this) == Wait::kTimeout;
}

std::string_view to_string(HttpFailure f) {
  switch (f) {
    case HttpFailure::kCancelled:
      return "cancelled";
    case HttpFailure::kResolve:
      return "resolve";
    case HttpFailure::kConnect:
      return "connect";
    case HttpFailure::kTls:
      return "tls";
    case HttpFailure::kTimeout:
      return "timeout";
    case HttpFailure::kProtocol:
      return "protocol";
    case HttpFailure::kAborted:
      return "aborted";
  }
  return "unknown";
}

std::string url_encode(std::string_view s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

HttpOutcome https_get(const HttpsTarget& server, const std::string& target,
                      const std::vector<std::pair<std::string, std::string>>& headers,
                      const HttpTimeouts& timeouts, const Canceller& cancel, const HeadHandler& on_head,
                      const BodyHandler& on_body) {
  const bool v6 = server.host.find(':') != std::string::npos;
  std::string request =
      "GET " + target + " HTTP/1.1\r\nHost: " + (v6 ? "[" + server.host + "]" : server.host) +
      (server.port == 443 ? "" : ":" + std::to_string(server.port)) + "\r\nUser-Agent: podsight/" + kVersion +
      "\r\nAccept: application/json\r\nConnection: close\r\n";
  for (const auto& [name, value] : headers) {
    if (name.find_first_of("\r\n:") != std::string::npos ||
        value.find_first_of("\r\n") != std::string::npos) {
      HttpOutcome out;
      out.failure = HttpFailure::kProtocol;
      out.message = "header " + name + " contains a line break";
      return out;
    }
    request += name + ": " + value + "\r\n";
  }
  request += "\r\n";
  Exchange ex(server, timeouts, cancel);
  return ex.run(request, on_head, on_body);
}

ChunkedDecoder::State ChunkedDecoder::feed(std::string_view in, const BodyHandler& on_data) {
  std::size_t i = 0;
  auto take_line = [&](std::size_t max) -> int {  // 1 complete line in line_, 0 need more, -1 too long
    const auto nl = in.find('\n', i);
    const std::size_t n = (nl == std::string_view::npos ? in.size() : nl) - i;
    if (line_.size() + n > max) return -1;
    line_.append(in.substr(i, n));
    if (nl == std::string_view::npos) {
      i = in.size();
      return 0;
    }
    i = nl + 1;
    if (!line_.empty() && line_.back() == '\r') line_.pop_back();
    return 1;
  };
  while (i < in.size() && phase_ != Phase::kDone) {
    switch (phase_) {
      case Phase::kSize: {
        const int got = take_line(kMaxChunkLine);
        if (got < 0) {
          error_ = "chunk size line longer than 1 KiB";
          return State::kError;
        }
        if (got == 0) return State::kMore;
        std::string_view size = std::string_view(line_).substr(0, line_.find(';'));
        while (!size.empty() && (size.back() == ' ' || size.back() == '\t')) size.remove_suffix(1);
        std::uint64_t n = 0;
        if (size.empty()) {
          error_ = "empty chunk size";
          return State::kError;
        }
        for (char c : size) {
          int d = (c >= '0' && c <= '9')   ? c - '0'
                  : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                  : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                           : -1;
          if (d < 0 || n > kMaxChunkSize) {
            error_ = "malformed chunk size";
            return State::kError;
          }
          n = n * 16 + static_cast<std::uint64_t>(d);
        }
        line_.clear();
        remaining_ = n;
        phase_ = n == 0 ? Phase::kTrailer : Phase::kData;
        break;
      }
      case Phase::kData: {
        const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, in.size() - i));
        if (!on_data(in.substr(i, n))) return State::kAborted;
        i += n;
        remaining_ -= n;
        if (remaining_ == 0) phase_ = Phase::kDataEnd;
        break;
      }
      case Phase::kDataEnd: {
        const int got = take_line(2);
        if (got < 0 || (got == 1 && !line_.empty())) {
          error_ = "chunk data not followed by CRLF";
          return State::kError;
        }
        if (got == 0) return State::kMore;
        phase_ = Phase::kSize;
        break;
      }
      case Phase::kTrailer: {
        const std::size_t before = line_.size();
        const int got = take_line(kMaxTrailerBytes);
        trailer_bytes_ += line_.size() - before;
        if (got < 0 || trailer_bytes_ > kMaxTrailerBytes) {
          error_ = "trailers longer than 16 KiB";
          return State::kError;
        }
        if (got == 0) return State::kMore;
        if (line_.empty()) phase_ = Phase::kDone;
        line_.clear();
        break;
      }
      case Phase::kDone:
        break;
    }
  }
  return phase_ == Phase::kDone ? State::kDone : State::kMore;
}

}  // namespace podsight::metadata
