// /metrics over TLS with credentials, against the real agent binary and real TLS clients (openssl
// s_client, cpp-httplib's SSLClient), with certificates made at test time by the openssl tool:
// verification, 401 for missing or wrong credentials, public probes, rotation of the certificate and
// the token on disk while the agent runs, and a clear exit 2 for a missing file.
#include "fuzz/strict_exposition.hpp"
#include "integration/support/harness.hpp"
#include "support/certificates.hpp"

#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

namespace podsight::testing {
namespace {

using namespace std::chrono_literals;

class TlsAuth : public ::testing::Test {
 protected:
  void SetUp() override {
    PODSIGHT_REQUIRE_PRIVILEGES();
    ensure_kernel_mounts();
    dir_ = make_temp_dir("podsight-tls");
    ca1_ = make_ca(dir_, "one");
    ca2_ = make_ca(dir_, "two");
    first_ = make_server_certificate(dir_, ca1_, "first", 2);
    second_ = make_server_certificate(dir_, ca2_, "second", 30);
    replace_file(first_.cert, cert());
    replace_file(first_.key, key());
    write_file(token(), "first-token\n");
    write_file(password(), "hunter2");
  }
  void TearDown() override {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  [[nodiscard]] std::string cert() const { return dir_ + "/tls.crt"; }
  [[nodiscard]] std::string key() const { return dir_ + "/tls.key"; }
  [[nodiscard]] std::string token() const { return dir_ + "/token"; }
  [[nodiscard]] std::string password() const { return dir_ + "/password"; }
  [[nodiscard]] std::string config() const {
    return R"({"http": {"tls": {"cert_file": ")" + cert() + R"(", "key_file": ")" + key() +
           R"("}, "auth": {"bearer_token_file": ")" + token() +
           R"(", "basic_username": "prometheus", "basic_password_file": ")" + password() + R"("}}})";
  }

  // One request through `openssl s_client`, verifying against `ca`; its whole output (the handshake
  // summary of -brief, then the HTTP response).
  static std::string s_client(int port, const std::string& ca, const std::string& path,
                              const std::string& authorization = "") {
    std::string request = "GET " + path + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n";
    if (!authorization.empty()) request += "Authorization: " + authorization + "\r\n";
    request += "\r\n";
    return run_command({"openssl", "s_client", "-connect", "127.0.0.1:" + std::to_string(port), "-CAfile", ca,
                        "-verify_return_error", "-verify_ip", "127.0.0.1", "-brief", "-ign_eof"},
                       request)
        .out;
  }

  std::string dir_;
  CertificateFiles ca1_, ca2_, first_, second_;
};

bool has_status(const std::string& out, int status) {
  return out.find("HTTP/1.1 " + std::to_string(status) + " ") != std::string::npos;
}

httplib::Result ssl_get(int port, const std::string& ca, const std::string& path, const httplib::Headers& h) {
  httplib::SSLClient c("127.0.0.1", port);
  c.set_ca_cert_path(ca);
  c.enable_server_certificate_verification(true);
  c.set_connection_timeout(10, 0);
  c.set_read_timeout(10, 0);
  return c.Get(path, h);
}

TEST_F(TlsAuth, MetricsNeedCredentialsOverVerifiedTlsAndProbesStayOpen) {
  AgentProcess agent(config());
  ASSERT_TRUE(agent.wait_serving()) << agent.logs();
  const int port = agent.port();

  const auto denied = s_client(port, ca1_.cert, "/metrics");
  EXPECT_NE(denied.find("Verification: OK"), std::string::npos) << denied;
  EXPECT_NE(denied.find("CN = first"), std::string::npos) << denied;
  EXPECT_TRUE(has_status(denied, 401)) << denied;
  EXPECT_NE(denied.find("WWW-Authenticate: Bearer realm=\"podsight\""), std::string::npos) << denied;
  EXPECT_NE(denied.find("WWW-Authenticate: Basic realm=\"podsight\""), std::string::npos) << denied;
  EXPECT_EQ(denied.find("podsight_build_info"), std::string::npos) << "metrics leaked without credentials";
  EXPECT_TRUE(has_status(s_client(port, ca1_.cert, "/metrics", "Bearer wrong-token"), 401));
  EXPECT_TRUE(has_status(s_client(port, ca1_.cert, "/metrics", "Bearer first-toke"), 401));
  EXPECT_TRUE(
      has_status(s_client(port, ca1_.cert, "/metrics", "Basic cHJvbWV0aGV1czpodW50ZXIz"), 401));  // hunter3
  EXPECT_TRUE(has_status(s_client(port, ca1_.cert, "/", ""), 401)) << "the landing page is not a probe";

  const auto allowed = s_client(port, ca1_.cert, "/metrics", "Bearer first-token");
  EXPECT_TRUE(has_status(allowed, 200)) << allowed;
  EXPECT_NE(allowed.find("podsight_build_info"), std::string::npos);
  // prometheus:hunter2
  EXPECT_TRUE(has_status(s_client(port, ca1_.cert, "/metrics", "Basic cHJvbWV0aGV1czpodW50ZXIy"), 200));
  EXPECT_TRUE(has_status(s_client(port, ca1_.cert, "/healthz"), 200));
  EXPECT_TRUE(has_status(s_client(port, ca1_.cert, "/readyz"), 200));
  EXPECT_FALSE(has_status(s_client(port, ca2_.cert, "/healthz"), 200))
      << "verification against the wrong CA passed";

  auto res = ssl_get(port, ca1_.cert, "/metrics", {{"Authorization", "Bearer first-token"}});
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  ASSERT_EQ(res->status, 200);
  const auto parsed = parse_exposition_strictly(res->body, false);
  EXPECT_TRUE(parsed.ok()) << parsed.error;
  EXPECT_EQ(promtool_problems(res->body), "");
  EXPECT_EQ(undocumented_metrics(res->body), std::vector<std::string>{});
  Scrape s(res->body);
  EXPECT_EQ(s.value("podsight_http_requests_total", {{"path", "/metrics"}, {"code", "401"}}), 4);
  const auto expiry = s.value("podsight_http_tls_certificate_expiry_timestamp_seconds");
  ASSERT_TRUE(expiry.has_value());
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  EXPECT_GT(*expiry, now + 86400);
  EXPECT_LT(*expiry, now + 3 * 86400);

  // A plain HTTP client on the TLS port is told what to do.
  const auto plain = http_get(port, "/metrics");
  EXPECT_EQ(plain.status, 400);
  EXPECT_NE(plain.body.find("https://"), std::string::npos) << plain.body;
}

TEST_F(TlsAuth, CertificateAndTokenRotatedOnDiskAreUsedWithoutRestart) {
  AgentProcess agent(config());
  ASSERT_TRUE(agent.wait_serving()) << agent.logs();
  const int port = agent.port();
  ASSERT_TRUE(has_status(s_client(port, ca1_.cert, "/healthz"), 200));
  const pid_t pid = agent.pid();

  // As cert-manager or a Secret volume would: new key and certificate, each replaced atomically.
  replace_file(second_.key, key());
  replace_file(second_.cert, cert());
  write_file(dir_ + "/token.next", "second-token");
  replace_file(dir_ + "/token.next", token());

  std::string out;
  for (int i = 0; i < 100 && !has_status(out, 200); ++i) {
    std::this_thread::sleep_for(100ms);
    out = s_client(port, ca2_.cert, "/metrics", "Bearer second-token");
  }
  ASSERT_TRUE(has_status(out, 200)) << "the rotated certificate and token were never used:\n" << out;
  EXPECT_NE(out.find("CN = second"), std::string::npos) << out;
  EXPECT_FALSE(has_status(s_client(port, ca1_.cert, "/healthz"), 200))
      << "the old certificate is still served";
  EXPECT_TRUE(has_status(s_client(port, ca2_.cert, "/metrics", "Bearer first-token"), 401))
      << "the old token works";
  EXPECT_EQ(agent.pid(), pid);
  EXPECT_TRUE(agent.running());

  auto res = ssl_get(port, ca2_.cert, "/metrics", {{"Authorization", "Bearer second-token"}});
  ASSERT_TRUE(res);
  Scrape s(res->body);
  EXPECT_EQ(
      s.value("podsight_http_secret_reloads_total", {{"secret", "tls_certificate"}, {"result", "success"}}),
      1);
  EXPECT_EQ(
      s.value("podsight_http_secret_reloads_total", {{"secret", "bearer_token"}, {"result", "success"}}), 1);
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  const auto expiry = s.value("podsight_http_tls_certificate_expiry_timestamp_seconds");
  ASSERT_TRUE(expiry.has_value());
  EXPECT_GT(*expiry, now + 29 * 86400) << "the gauge still shows the old certificate";
  EXPECT_NE(agent.logs().find("TLS certificate reloaded"), std::string::npos);
}

TEST_F(TlsAuth, MissingOrEmptySecretFilesStopTheAgentBeforeItLoadsAnything) {
  const std::string cfg = dir_ + "/bad.json";
  write_file(cfg, R"({"http": {"tls": {"cert_file": ")" + dir_ + R"(/absent.crt", "key_file": ")" + key() +
                      R"("}}})");
  auto r = run_command({PODSIGHT_AGENT_BINARY, "--config", cfg});
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find(dir_ + "/absent.crt"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("program family attached"), std::string::npos) << "programs were loaded first";

  write_file(token(), "\n");
  write_file(cfg, R"({"http": {"auth": {"bearer_token_file": ")" + token() + R"("}}})");
  r = run_command({PODSIGHT_AGENT_BINARY, "--config", cfg});
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("secret file is empty (" + token() + ")"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace podsight::testing
