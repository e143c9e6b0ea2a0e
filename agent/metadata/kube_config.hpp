// Where the Kubernetes API server is and how to authenticate to it: in-cluster (service-account token,
// cluster CA, KUBERNETES_SERVICE_HOST/PORT) or a kubeconfig file. Files named here (token, CA) are read
// again for every connection, so a rotated token or CA is picked up without a restart.
#pragma once

#include "metadata/kube_http.hpp"
#include "util/result.hpp"

#include <functional>
#include <string>

namespace podsight::metadata {

struct ApiServer {
  std::string host;  // DNS name or IP literal
  int port = 443;
  std::string base_path;    // "" or a path prefix from the kubeconfig server URL ("/k8s/clusters/c-1")
  std::string server_name;  // tls-server-name; empty: host
  std::string ca_file;      // read at every connection; used when ca_pem is empty
  std::string ca_pem;
  std::string token;       // a static bearer token
  std::string token_file;  // read at every request (projected service-account tokens rotate)
  std::string client_cert_pem;
  std::string client_key_pem;
  std::string source;  // for logs and /readyz: "in-cluster" or "kubeconfig FILE (context NAME)"

  [[nodiscard]] std::string url() const;  // https://host:port/base
};

// The CA bundle of the system, used when a kubeconfig names no CA (the server then has a public cert).
inline constexpr const char* kSystemCaBundle = "/etc/ssl/certs/ca-certificates.crt";

struct InClusterFiles {
  std::string token_file = "/var/run/secrets/kubernetes.io/serviceaccount/token";
  std::string ca_file = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";
};

using GetEnv = std::function<const char*(const char*)>;

// From KUBERNETES_SERVICE_HOST / KUBERNETES_SERVICE_PORT and the two files (which must be readable).
Result<ApiServer> in_cluster(const InClusterFiles& files, const GetEnv& getenv);
// From a kubeconfig (YAML or JSON); `context` empty: its current-context. Relative file names in it are
// relative to the file's directory. exec/auth-provider plugins, basic auth and
// insecure-skip-tls-verify are refused with an error that says so.
Result<ApiServer> from_kubeconfig(const std::string& path, const std::string& context);

// "https://host[:port][/path]" -> host, port, base path. Only https.
Result<ApiServer> parse_server_url(const std::string& url);

struct Credentials {
  HttpsTarget target;
  std::string bearer;  // empty: no Authorization header
};
// Reads the token and CA files now.
Result<Credentials> load_credentials(const ApiServer& api);

// Whole file, at most `max_bytes` (a larger file is an error, not a truncation).
Result<std::string> read_small_file(const std::string& path, std::size_t max_bytes);

}  // namespace podsight::metadata
