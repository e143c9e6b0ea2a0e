// Connection settings: in-cluster environment and files, kubeconfig (YAML and JSON) with every way of
// naming a CA and credentials, and the configurations podsight refuses, each with an error that says why.
#include "metadata/kube_config.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>

namespace podsight::metadata {
namespace {

const std::string kDir = std::string(PODSIGHT_FIXTURES_DIR) + "/kubeconfig";

GetEnv env(std::map<std::string, std::string> vars) {
  auto shared = std::make_shared<std::map<std::string, std::string>>(std::move(vars));
  return [shared](const char* name) -> const char* {
    auto it = shared->find(name);
    return it == shared->end() ? nullptr : it->second.c_str();
  };
}

class InCluster : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/podsight-sa-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    files_.token_file = dir_ + "/token";
    files_.ca_file = dir_ + "/ca.crt";
    std::ofstream(files_.token_file) << "token-one\n";
    std::ofstream(files_.ca_file) << "-----BEGIN CERTIFICATE-----\n";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
  InClusterFiles files_;
};

TEST_F(InCluster, FromEnvironmentAndFiles) {
  auto api =
      in_cluster(files_, env({{"KUBERNETES_SERVICE_HOST", "10.96.0.1"}, {"KUBERNETES_SERVICE_PORT", "443"}}));
  ASSERT_TRUE(api.ok()) << api.error().message();
  EXPECT_EQ(api->url(), "https://10.96.0.1:443");
  EXPECT_EQ(api->source, "in-cluster");
  auto creds = load_credentials(*api);
  ASSERT_TRUE(creds.ok()) << creds.error().message();
  EXPECT_EQ(creds->bearer, "token-one");  // trailing newline gone
  EXPECT_EQ(creds->target.host, "10.96.0.1");
  // The token is read again for every request: a rotated token is used at once.
  std::ofstream(files_.token_file) << "token-two";
  EXPECT_EQ(load_credentials(*api)->bearer, "token-two");
  std::ofstream(files_.token_file) << "  \n";
  EXPECT_FALSE(load_credentials(*api).ok());  // an empty token is an error, not anonymous access

  auto v6 = in_cluster(
      files_, env({{"KUBERNETES_SERVICE_HOST", "fd00:10:96::1"}, {"KUBERNETES_SERVICE_PORT", "6443"}}));
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->url(), "https://[fd00:10:96::1]:6443");
}

TEST_F(InCluster, ErrorsNameWhatIsMissing) {
  auto none = in_cluster(files_, env({}));
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.error().what.find("KUBERNETES_SERVICE_HOST"), std::string::npos);
  auto port = in_cluster(
      files_, env({{"KUBERNETES_SERVICE_HOST", "10.96.0.1"}, {"KUBERNETES_SERVICE_PORT", "https"}}));
  ASSERT_FALSE(port.ok());
  EXPECT_NE(port.error().what.find("KUBERNETES_SERVICE_PORT"), std::string::npos);
  InClusterFiles missing = files_;
  missing.token_file = dir_ + "/absent";
  auto token = in_cluster(missing, env({{"KUBERNETES_SERVICE_HOST", "10.96.0.1"}}));
  ASSERT_FALSE(token.ok());
  EXPECT_EQ(token.error().object, dir_ + "/absent");
  EXPECT_EQ(token.error().err, ENOENT);
}

TEST(Kubeconfig, CurrentContextWithTokenAndRelativeCa) {
  auto api = from_kubeconfig(kDir + "/kubeconfig.yaml", "");
  ASSERT_TRUE(api.ok()) << api.error().message();
  EXPECT_EQ(api->host, "127.0.0.1");
  EXPECT_EQ(api->port, 6443);
  EXPECT_EQ(api->base_path, "");
  EXPECT_EQ(api->ca_file, kDir + "/certs/ca.crt");  // relative to the kubeconfig's directory
  EXPECT_EQ(api->token, "abc.def.ghi");
  EXPECT_EQ(api->source, "kubeconfig " + kDir + "/kubeconfig.yaml (context dev)");
}

TEST(Kubeconfig, NamedContextWithInlineCaAndClientCertificate) {
  auto api = from_kubeconfig(kDir + "/kubeconfig.yaml", "prod");
  ASSERT_TRUE(api.ok()) << api.error().message();
  EXPECT_EQ(api->host, "fd00::1");
  EXPECT_EQ(api->port, 443);
  EXPECT_EQ(api->base_path, "/k8s/clusters/c-m-4x2");
  EXPECT_EQ(api->server_name, "api.prod.example");
  EXPECT_EQ(api->ca_pem, "-----BEGIN CERTIFICATE-----\nfixture\n-----END CERTIFICATE-----\n");
  EXPECT_EQ(api->client_key_pem, "-----BEGIN PRIVATE KEY-----\nfixture\n-----END PRIVATE KEY-----\n");
  EXPECT_TRUE(api->token.empty());
  auto creds = load_credentials(*api);
  ASSERT_TRUE(creds.ok());
  EXPECT_EQ(creds->bearer, "");
  EXPECT_EQ(creds->target.server_name, "api.prod.example");
}

TEST(Kubeconfig, TokenFileAndJsonAndSystemCa) {
  auto file = from_kubeconfig(kDir + "/kubeconfig.yaml", "dev-file-token");
  ASSERT_TRUE(file.ok());
  EXPECT_EQ(file->token_file, "/var/run/secrets/tokens/podsight");
  auto json = from_kubeconfig(kDir + "/kubeconfig.json", "");
  ASSERT_TRUE(json.ok()) << json.error().message();
  EXPECT_EQ(json->host, "api.example");
  EXPECT_EQ(json->port, 8443);
  EXPECT_EQ(json->token, "json-token");
  EXPECT_EQ(json->ca_file, kSystemCaBundle);  // no CA named: the system's, still verified
}

TEST(Kubeconfig, RefusedConfigurationsSayWhy) {
  const std::string f = kDir + "/refused.yaml";
  const std::map<std::string, std::string> why = {{"exec", "credential plugin"},
                                                  {"auth-provider", "credential plugin"},
                                                  {"basic", "basic authentication"},
                                                  {"insecure", "insecure-skip-tls-verify"},
                                                  {"plain", "plain http"},
                                                  {"proxied", "proxy-url"},
                                                  {"no-such-cluster", "cluster \"missing\" not found"},
                                                  {"nonexistent", "context \"nonexistent\" not found"},
                                                  {"half-cert", "client certificate"}};
  for (const auto& [ctx, reason] : why) {
    auto api = from_kubeconfig(f, ctx);
    ASSERT_FALSE(api.ok()) << ctx;
    EXPECT_NE(api.error().message().find(reason), std::string::npos) << ctx << ": " << api.error().message();
    EXPECT_EQ(api.error().object, f);
  }
  auto broken = from_kubeconfig(kDir + "/broken.yaml", "");
  ASSERT_FALSE(broken.ok());
  EXPECT_NE(broken.error().message().find("kubeconfig"), std::string::npos);
  auto missing = from_kubeconfig(kDir + "/absent.yaml", "");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().err, ENOENT);
}

TEST(Kubeconfig, ServerUrls) {
  EXPECT_EQ(parse_server_url("https://api.example")->port, 443);
  EXPECT_EQ(parse_server_url("https://api.example:6443/")->base_path, "");
  EXPECT_EQ(parse_server_url("https://[::1]:8443/x/y/")->base_path, "/x/y");
  EXPECT_EQ(parse_server_url("https://[::1]:8443/x")->host, "::1");
  for (const char* bad :
       {"api.example", "http://api.example", "https://", "https://:443", "https://h:0", "https://h:99999",
        "https://h:12ab", "https://[::1", "https://[::1]x", "https://u@h", "https://h/?q=1"}) {
    EXPECT_FALSE(parse_server_url(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace podsight::metadata
