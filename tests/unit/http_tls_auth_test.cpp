// TLS and authentication of the agent's HTTP server against real TLS clients (cpp-httplib's SSLClient,
// verifying against a CA made at test time with the openssl tool): rotation of the certificate files
// while serving, half-done rotations, stalled handshakes, bearer and basic credentials and their
// rotation, and the pieces underneath (base64, secret files).
#include "http/auth.hpp"
#include "http/server.hpp"
#include "http/tls.hpp"
#include "support/certificates.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace podsight::http {
namespace {

using namespace std::chrono_literals;
using testing::CertificateFiles;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = "/tmp/podsight-tls-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp");
    path_ = tmpl;
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] std::string write(const std::string& name, const std::string& content) const {
    const std::string p = path_ + "/" + name;
    std::ofstream(p, std::ios::binary | std::ios::trunc) << content;
    return p;
  }

 private:
  std::string path_;
};

Options base_options() {
  Options o;
  o.listen = "127.0.0.1:0";
  return o;
}

struct Events {
  std::mutex mu;
  std::vector<SecretReload> seen;
  bool has(const std::string& secret, bool ok) {
    std::lock_guard lock(mu);
    return std::any_of(seen.begin(), seen.end(),
                       [&](const auto& e) { return e.secret == secret && e.ok == ok; });
  }
};

std::unique_ptr<Server> start(const Options& options, Events* events = nullptr) {
  auto server = std::make_unique<Server>(options);
  server->route("/metrics", [](const httplib::Request&) { return Response{200, "text/plain", "up 1\n"}; });
  server->route(
      "/healthz",
      [](const httplib::Request&) {
        return Response{200, "text/plain", "ok\n"};
      },
      Access::kPublic);
  if (events != nullptr) {
    server->on_reload([events](const SecretReload& e) {
      std::lock_guard lock(events->mu);
      events->seen.push_back(e);
    });
  }
  if (auto st = server->start(); !st) throw std::runtime_error(st.error().message());
  return server;
}

// GET over TLS, verifying the server against `ca`; status 0 when the connection or verification failed.
int tls_get(int port, const std::string& ca, const std::string& path = "/metrics",
            const httplib::Headers& h = {}) {
  httplib::SSLClient c("127.0.0.1", port);
  c.set_ca_cert_path(ca);
  c.enable_server_certificate_verification(true);
  c.set_connection_timeout(5, 0);
  c.set_read_timeout(5, 0);
  auto res = c.Get(path, h);
  return res ? res->status : 0;
}

// Polls `ok` for up to 10 s: rotations are noticed by a stat() at most once a second.
bool eventually(const std::function<bool()>& ok) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline) {
    if (ok()) return true;
    std::this_thread::sleep_for(100ms);
  }
  return ok();
}

struct TlsSetup {
  TempDir dir;
  CertificateFiles ca1 = testing::make_ca(dir.path(), "one");
  CertificateFiles ca2 = testing::make_ca(dir.path(), "two");
  CertificateFiles first = testing::make_server_certificate(dir.path(), ca1, "first", 2);
  CertificateFiles second = testing::make_server_certificate(dir.path(), ca2, "second", 30);
  std::string cert = dir.path() + "/tls.crt";  // what the server is configured with
  std::string key = dir.path() + "/tls.key";
  TlsSetup() {
    testing::replace_file(first.cert, cert);
    testing::replace_file(first.key, key);
  }
  Options options() const {
    Options o = base_options();
    o.tls.cert_file = cert;
    o.tls.key_file = key;
    return o;
  }
};

TEST(HttpTls, ServesVerifiableTlsAndTellsPlainHttpClientsToUseHttps) {
  TlsSetup t;
  auto server = start(t.options());
  EXPECT_EQ(tls_get(server->port(), t.ca1.cert), 200);
  EXPECT_EQ(tls_get(server->port(), t.ca2.cert), 0) << "a client trusting another CA must fail verification";
  EXPECT_GT(server->tls_certificate_not_after(), std::chrono::duration_cast<std::chrono::seconds>(
                                                     std::chrono::system_clock::now().time_since_epoch())
                                                     .count());
  httplib::Client plain("127.0.0.1", server->port());
  auto res = plain.Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  EXPECT_NE(res->body.find("https://"), std::string::npos) << res->body;
  EXPECT_EQ(tls_get(server->port(), t.ca1.cert, "/healthz"), 200) << "still serving";
}

TEST(HttpTls, RotatedCertificateIsServedWithoutRestart) {
  TlsSetup t;
  Events events;
  auto server = start(t.options(), &events);
  ASSERT_EQ(tls_get(server->port(), t.ca1.cert), 200);
  const auto first_expiry = server->tls_certificate_not_after();
  testing::replace_file(t.second.key, t.key);
  testing::replace_file(t.second.cert, t.cert);
  EXPECT_TRUE(eventually([&] { return tls_get(server->port(), t.ca2.cert) == 200; }))
      << "the rotated certificate was never served";
  EXPECT_EQ(tls_get(server->port(), t.ca1.cert), 0) << "the old certificate is still served";
  EXPECT_GT(server->tls_certificate_not_after(), first_expiry + 20 * 86400);
  EXPECT_TRUE(events.has("tls_certificate", true));
}

TEST(HttpTls, HalfDoneRotationKeepsServingTheOldCertificateUntilTheKeyMatches) {
  TlsSetup t;
  Events events;
  auto server = start(t.options(), &events);
  testing::replace_file(t.second.cert, t.cert);  // the key is still the first one: they do not match
  ASSERT_TRUE(eventually([&] {
    (void)tls_get(server->port(), t.ca1.cert);  // connections are what trigger the check
    return events.has("tls_certificate", false);
  }));
  EXPECT_EQ(tls_get(server->port(), t.ca1.cert), 200) << "a failed reload must keep the working certificate";
  testing::replace_file(t.second.key, t.key);
  EXPECT_TRUE(eventually([&] { return tls_get(server->port(), t.ca2.cert) == 200; }));
  EXPECT_TRUE(events.has("tls_certificate", true));
}

TEST(HttpTls, StalledHandshakeIsCutAtTheRequestTimeoutAndOthersAreServed) {
  TlsSetup t;
  Options o = t.options();
  o.worker_threads = 1;
  o.request_timeout_seconds = 2;
  auto server = start(o);
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(server->port()));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::send(fd, "\x16\x03\x01", 3, MSG_NOSIGNAL), 3);  // the start of a record, then nothing
  EXPECT_EQ(tls_get(server->port(), t.ca1.cert), 200) << "served once the stalled handshake was cut";
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char buf[64];
  EXPECT_EQ(::recv(fd, buf, sizeof buf, 0), 0) << "the stalled handshake was not cut";
  ::close(fd);
}

TEST(HttpTls, MissingOrMismatchedFilesAreNamedAtStart) {
  TlsSetup t;
  Options missing = t.options();
  missing.tls.cert_file = t.dir.path() + "/absent.crt";
  auto st = check_security_files(missing);
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message().find("absent.crt"), std::string::npos) << st.error().message();
  Server server(missing);
  ASSERT_FALSE(server.start());

  Options mismatched = t.options();
  mismatched.tls.key_file = t.second.key;
  st = check_security_files(mismatched);
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message().find("does not match"), std::string::npos) << st.error().message();

  Options no_token = base_options();
  no_token.auth.bearer_token_file = t.dir.path() + "/no-token";
  st = check_security_files(no_token);
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message().find("no-token"), std::string::npos) << st.error().message();
}

int plain_get(int port, const std::string& path, const httplib::Headers& h,
              std::string* challenge = nullptr) {
  httplib::Client c("127.0.0.1", port);
  auto res = c.Get(path, h);
  if (!res) return 0;
  if (challenge != nullptr) *challenge = res->get_header_value("WWW-Authenticate");
  return res->status;
}

TEST(HttpAuth, BearerTokenGuardsAuthenticatedRoutesOnlyAndFollowsItsFile) {
  TempDir dir;
  Options o = base_options();
  o.auth.bearer_token_file = dir.write("token", "s3cret-token\n");  // the newline is trimmed
  Events events;
  auto server = start(o, &events);
  const int port = server->port();
  std::string challenge;
  EXPECT_EQ(plain_get(port, "/metrics", {}, &challenge), 401);
  EXPECT_EQ(challenge, "Bearer realm=\"podsight\"");
  EXPECT_EQ(plain_get(port, "/metrics", {{"Authorization", "Bearer wrong"}}), 401);
  EXPECT_EQ(plain_get(port, "/metrics", {{"Authorization", "Bearer s3cret-tok"}}), 401)
      << "a prefix is not enough";
  EXPECT_EQ(plain_get(port, "/metrics", {{"Authorization", "Bearer s3cret-token-and-more"}}), 401);
  EXPECT_EQ(plain_get(port, "/metrics", {{"Authorization", "Basic czNjcmV0LXRva2Vu"}}), 401)
      << "wrong scheme";
  EXPECT_EQ(plain_get(port, "/metrics", {{"Authorization", "s3cret-token"}}), 401);
  EXPECT_EQ(plain_get(port, "/metrics", {{"Authorization", "Bearer s3cret-token"}}), 200);
  EXPECT_EQ(plain_get(port, "/metrics", {{"Authorization", "bearer s3cret-token"}}), 200)
      << "schemes ignore case";
  EXPECT_EQ(plain_get(port, "/healthz", {}), 200) << "public routes need no credentials";

  testing::replace_file(dir.write("token.next", "rotated-token"), dir.path() + "/token");
  EXPECT_TRUE(eventually([&] {
    return plain_get(port, "/metrics", {{"Authorization", "Bearer rotated-token"}}) == 200;
  }));
  EXPECT_EQ(plain_get(port, "/metrics", {{"Authorization", "Bearer s3cret-token"}}), 401)
      << "the old token still works";
  EXPECT_TRUE(events.has("bearer_token", true));

  // An emptied file is a failed reload: the token in use stays.
  (void)dir.write("token", "");
  EXPECT_TRUE(eventually([&] {
    (void)plain_get(port, "/metrics", {});
    return events.has("bearer_token", false);
  }));
  EXPECT_EQ(plain_get(port, "/metrics", {{"Authorization", "Bearer rotated-token"}}), 200);
}

std::string basic(const std::string& user_pass) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < user_pass.size(); i += 3) {
    const auto n = static_cast<unsigned>(static_cast<unsigned char>(user_pass[i])) << 16 |
                   static_cast<unsigned>(static_cast<unsigned char>(user_pass[i + 1])) << 8 |
                   static_cast<unsigned char>(user_pass[i + 2]);
    for (int k = 18; k >= 0; k -= 6) out += kAlphabet[(n >> k) & 63];
  }
  if (i < user_pass.size()) {
    unsigned n = static_cast<unsigned>(static_cast<unsigned char>(user_pass[i])) << 16;
    if (i + 1 < user_pass.size())
      n |= static_cast<unsigned>(static_cast<unsigned char>(user_pass[i + 1])) << 8;
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += i + 1 < user_pass.size() ? kAlphabet[(n >> 6) & 63] : '=';
    out += '=';
  }
  return "Basic " + out;
}

TEST(HttpAuth, BasicCredentialsNeedTheRightUserAndPassword) {
  TempDir dir;
  Options o = base_options();
  o.auth.basic_username = "prometheus";
  o.auth.basic_password_file = dir.write("password", "pa:ss word");
  auto server = start(o);
  const int port = server->port();
  std::string challenge;
  EXPECT_EQ(plain_get(port, "/metrics", {}, &challenge), 401);
  EXPECT_EQ(challenge, "Basic realm=\"podsight\", charset=\"UTF-8\"");
  EXPECT_EQ(plain_get(port, "/metrics", {{"Authorization", basic("prometheus:pa:ss word")}}), 200);
  EXPECT_EQ(plain_get(port, "/metrics", {{"Authorization", basic("prometheus:pa:ss")}}), 401);
  EXPECT_EQ(plain_get(port, "/metrics", {{"Authorization", basic("grafana:pa:ss word")}}), 401);
  EXPECT_EQ(plain_get(port, "/metrics", {{"Authorization", basic("prometheuspa:ss word")}}), 401);
  EXPECT_EQ(plain_get(port, "/metrics", {{"Authorization", "Basic !!notbase64!!"}}), 401);
  EXPECT_EQ(plain_get(port, "/metrics", {{"Authorization", "Bearer pa:ss word"}}), 401);
}

TEST(HttpAuth, BothSchemesWhenBothAreConfigured) {
  TempDir dir;
  Options o = base_options();
  o.auth.bearer_token_file = dir.write("token", "t");
  o.auth.basic_username = "u";
  o.auth.basic_password_file = dir.write("password", "p");
  auto server = start(o);
  EXPECT_EQ(plain_get(server->port(), "/metrics", {{"Authorization", "Bearer t"}}), 200);
  EXPECT_EQ(plain_get(server->port(), "/metrics", {{"Authorization", basic("u:p")}}), 200);
  EXPECT_EQ(plain_get(server->port(), "/metrics", {{"Authorization", basic("u:t")}}), 401);
}

TEST(HttpAuth, Base64DecodesOnlyCanonicalInput) {
  EXPECT_EQ(decode_base64(""), "");
  EXPECT_EQ(decode_base64("Zg=="), "f");
  EXPECT_EQ(decode_base64("Zm8="), "fo");
  EXPECT_EQ(decode_base64("Zm9v"), "foo");
  EXPECT_EQ(decode_base64("dTpw"), "u:p");
  EXPECT_EQ(decode_base64("AP8A"), std::string("\0\xff\0", 3));
  for (const char* bad : {"Zg", "Zg=", "Z===", "====", "Zg==Zg==", "Zm9v\n", "Zm 9", "Zm9-", "Zm9_"}) {
    EXPECT_FALSE(decode_base64(bad).has_value()) << bad;
  }
}

TEST(HttpAuth, SecretFilesAreTrimmedAndCheckedWhenRead) {
  TempDir dir;
  EXPECT_EQ(read_secret_file(dir.write("a", "  tok en \r\n")).value(), "tok en");
  auto empty = read_secret_file(dir.write("b", " \n\t"));
  ASSERT_FALSE(empty);
  EXPECT_NE(empty.error().message().find("empty"), std::string::npos);
  auto big = read_secret_file(dir.write("c", std::string(70000, 'x')));
  ASSERT_FALSE(big);
  EXPECT_NE(big.error().message().find("64 KiB"), std::string::npos);
  auto missing = read_secret_file(dir.path() + "/missing");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message().find(dir.path() + "/missing"), std::string::npos);
}

}  // namespace
}  // namespace podsight::http
