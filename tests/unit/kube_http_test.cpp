// The API client's HTTPS layer against a real TLS server (cpp-httplib) with test certificates: bodies
// framed by length and by chunks, certificate verification (wrong CA, wrong name), client
// certificates, a server that never answers (cancelled, timed out), and the chunked decoder on its own.
#include "metadata/kube_http.hpp"

#include "support/http_listen.hpp"
#include "support/kube_api.hpp"

#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <future>
#include <thread>

namespace podsight::metadata {
namespace {

using testing::listen_in_background;
using testing::TestPki;

class TlsServer {
 public:
  explicit TlsServer(const TestPki& pki, const char* client_ca = nullptr)
      : server_(pki.server_cert().c_str(), pki.server_key().c_str(), client_ca) {
    server_.Get("/length", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("{\"hello\":\"world\"}", "application/json");
    });
    server_.Get("/chunked", [](const httplib::Request&, httplib::Response& res) {
      res.set_chunked_content_provider("application/json", [](std::size_t, httplib::DataSink& sink) {
        for (int i = 0; i < 100; ++i) sink.write("0123456789", 10);
        sink.done();
        return true;
      });
    });
    server_.Get("/missing", [](const httplib::Request&, httplib::Response& res) {
      res.status = 404;
      res.set_content("{\"kind\":\"Status\",\"message\":\"not here\"}", "application/json");
    });
    server_.Get("/bighead", [](const httplib::Request&, httplib::Response& res) {
      res.set_header("X-Padding", std::string(70000, 'x'));
      res.set_content("x", "text/plain");
    });
    server_.Get("/echo-auth", [](const httplib::Request& req, httplib::Response& res) {
      res.set_content(req.get_header_value("Authorization"), "text/plain");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = listen_in_background(server_);
  }
  ~TlsServer() {
    server_.stop();
    thread_.join();
  }
  [[nodiscard]] int port() const { return port_; }

 private:
  httplib::SSLServer server_;
  int port_ = 0;
  std::thread thread_;
};

struct Got {
  HttpOutcome outcome;
  std::string body;
  int pieces = 0;
};

Got get(const HttpsTarget& t, const std::string& path, const Canceller& cancel, HttpTimeouts timeouts = {},
        std::vector<std::pair<std::string, std::string>> headers = {}) {
  Got g;
  g.outcome = https_get(t, path, headers, timeouts, cancel, nullptr, [&](std::string_view piece) {
    g.body.append(piece);
    ++g.pieces;
    return true;
  });
  return g;
}

class KubeHttp : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { pki_ = new TestPki(); }
  static void TearDownTestSuite() { delete pki_; }
  HttpsTarget target(int port) const {
    HttpsTarget t;
    t.host = "127.0.0.1";
    t.port = port;
    t.ca_pem = TestPki::read(pki_->ca_cert());
    return t;
  }
  static TestPki* pki_;
  Canceller cancel_;
};
TestPki* KubeHttp::pki_ = nullptr;

TEST_F(KubeHttp, BodiesByLengthAndByChunks) {
  TlsServer server(*pki_);
  auto length = get(target(server.port()), "/length", cancel_);
  ASSERT_TRUE(length.outcome.ok()) << length.outcome.message;
  EXPECT_EQ(length.outcome.status, 200);
  EXPECT_EQ(length.body, "{\"hello\":\"world\"}");
  auto chunked = get(target(server.port()), "/chunked", cancel_);
  ASSERT_TRUE(chunked.outcome.ok()) << chunked.outcome.message;
  EXPECT_EQ(chunked.body.size(), 1000u);
  EXPECT_EQ(chunked.body.substr(0, 20), "01234567890123456789");
  auto missing = get(target(server.port()), "/missing", cancel_);
  ASSERT_TRUE(missing.outcome.ok());
  EXPECT_EQ(missing.outcome.status, 404);
  EXPECT_NE(missing.body.find("not here"), std::string::npos);
  auto auth = get(target(server.port()), "/echo-auth", cancel_, {}, {{"Authorization", "Bearer t0k3n"}});
  EXPECT_EQ(auth.body, "Bearer t0k3n");
  // A header value with a line break would be request smuggling: refused before anything is sent.
  auto smuggle =
      get(target(server.port()), "/echo-auth", cancel_, {}, {{"Authorization", "Bearer x\r\nX-Evil: 1"}});
  EXPECT_EQ(smuggle.outcome.failure, HttpFailure::kProtocol);
}

TEST_F(KubeHttp, HostNameVerificationByDnsName) {
  TlsServer server(*pki_);
  HttpsTarget t = target(server.port());
  t.host = "localhost";  // in the certificate as DNS:localhost
  auto ok = get(t, "/length", cancel_);
  EXPECT_TRUE(ok.outcome.ok()) << ok.outcome.message;
  t.server_name = "kubernetes.default.svc";  // not in the certificate
  auto wrong = get(t, "/length", cancel_);
  EXPECT_EQ(wrong.outcome.failure, HttpFailure::kTls);
  EXPECT_NE(wrong.outcome.message.find("certificate verify failed"), std::string::npos)
      << wrong.outcome.message;
}

TEST_F(KubeHttp, WrongCaIsRefused) {
  TlsServer server(*pki_);
  HttpsTarget t = target(server.port());
  t.ca_pem = TestPki::read(pki_->other_ca_cert());
  auto g = get(t, "/length", cancel_);
  EXPECT_EQ(g.outcome.failure, HttpFailure::kTls);
  EXPECT_NE(g.outcome.message.find("certificate verify failed"), std::string::npos) << g.outcome.message;
  EXPECT_EQ(g.body, "");
  t.ca_pem = "not a certificate";
  EXPECT_EQ(get(t, "/length", cancel_).outcome.failure, HttpFailure::kTls);
}

TEST_F(KubeHttp, ClientCertificates) {
  const std::string ca = pki_->ca_cert();
  TlsServer server(*pki_, ca.c_str());
  HttpsTarget t = target(server.port());
  EXPECT_FALSE(get(t, "/length", cancel_).outcome.ok());  // the server wants a certificate
  t.client_cert_pem = TestPki::read(pki_->client_cert());
  t.client_key_pem = TestPki::read(pki_->client_key());
  auto g = get(t, "/length", cancel_);
  EXPECT_TRUE(g.outcome.ok()) << g.outcome.message;
  t.client_key_pem = TestPki::read(pki_->server_key());  // a key that does not match
  auto bad = get(t, "/length", cancel_);
  EXPECT_EQ(bad.outcome.failure, HttpFailure::kTls);
  EXPECT_NE(bad.outcome.message.find("client certificate"), std::string::npos);
}

TEST_F(KubeHttp, OversizedHeadIsAProtocolError) {
  TlsServer server(*pki_);
  auto g = get(target(server.port()), "/bighead", cancel_);
  EXPECT_EQ(g.outcome.failure, HttpFailure::kProtocol);
  EXPECT_NE(g.outcome.message.find("64 KiB"), std::string::npos) << g.outcome.message;
}

// A listening socket that never accepts: the kernel completes the TCP handshake, TLS never starts.
class Silent {
 public:
  Silent() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(fd_, 16);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~Silent() { ::close(fd_); }
  [[nodiscard]] int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

TEST_F(KubeHttp, SilentServerTimesOut) {
  Silent silent;
  HttpTimeouts t;
  t.connect = std::chrono::milliseconds(300);
  auto g = get(target(silent.port()), "/length", cancel_, t);
  EXPECT_EQ(g.outcome.failure, HttpFailure::kTimeout);
  EXPECT_NE(g.outcome.message.find("TLS handshake"), std::string::npos) << g.outcome.message;
}

TEST_F(KubeHttp, CancelWakesABlockedRequest) {
  Silent silent;
  Canceller cancel;
  HttpTimeouts t;
  t.connect = std::chrono::hours(1);
  auto pending =
      std::async(std::launch::async, [&] { return get(target(silent.port()), "/length", cancel, t); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  cancel.cancel();
  // Without the cancel this would wait an hour (and the test time out): the result is what matters.
  EXPECT_EQ(pending.get().outcome.failure, HttpFailure::kCancelled);
  EXPECT_TRUE(cancel.cancelled());
  EXPECT_FALSE(cancel.sleep_for(std::chrono::hours(1)));
  EXPECT_EQ(get(target(silent.port()), "/length", cancel, t).outcome.failure, HttpFailure::kCancelled);
}

TEST_F(KubeHttp, ConnectionRefused) {
  int port = 0;
  {
    Silent s;  // a free port, closed again: nothing listens there now
    port = s.port();
  }
  auto g = get(target(port), "/length", cancel_);
  EXPECT_EQ(g.outcome.failure, HttpFailure::kConnect);
}

TEST(ChunkedDecoder, ByteByByteWithExtensionsAndTrailers) {
  const std::string body = "5;name=value\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: yes\r\n\r\nafter";
  ChunkedDecoder d;
  std::string out;
  ChunkedDecoder::State st = ChunkedDecoder::State::kMore;
  for (std::size_t i = 0; i < body.size() && st == ChunkedDecoder::State::kMore; ++i) {
    st = d.feed(body.substr(i, 1), [&](std::string_view s) {
      out.append(s);
      return true;
    });
  }
  EXPECT_EQ(st, ChunkedDecoder::State::kDone);
  EXPECT_EQ(out, "hello, world");
}

TEST(ChunkedDecoder, MalformedFramingIsAnError) {
  auto run = [](const std::string& body) {
    ChunkedDecoder d;
    return d.feed(body, [](std::string_view) { return true; });
  };
  EXPECT_EQ(run("zz\r\n"), ChunkedDecoder::State::kError);
  EXPECT_EQ(run("\r\n"), ChunkedDecoder::State::kError);
  EXPECT_EQ(run("3\r\nabcX\r\n"), ChunkedDecoder::State::kError);
  EXPECT_EQ(run(std::string(2000, '1')), ChunkedDecoder::State::kError);
  EXPECT_EQ(run("fffffffffffffffffff\r\n"), ChunkedDecoder::State::kError);
  EXPECT_EQ(run("0\r\n" + std::string(20000, 'x')), ChunkedDecoder::State::kError);
  EXPECT_EQ(run("3\r\nab"), ChunkedDecoder::State::kMore);
  ChunkedDecoder d;
  EXPECT_EQ(d.feed("3\r\nabc\r\n", [](std::string_view) { return false; }), ChunkedDecoder::State::kAborted);
}

TEST(UrlEncode, QueryValues) {
  EXPECT_EQ(url_encode("spec.nodeName=node-a"), "spec.nodeName%3Dnode-a");
  EXPECT_EQ(url_encode("a+b/c=="), "a%2Bb%2Fc%3D%3D");
  EXPECT_EQ(url_encode("~_-."), "~_-.");
}

}  // namespace
}  // namespace podsight::metadata
