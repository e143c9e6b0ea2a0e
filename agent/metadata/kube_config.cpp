// In-cluster and kubeconfig connection settings. kubeconfig is YAML (yaml-cpp); a JSON kubeconfig is
// valid YAML and takes the same path.
#include "metadata/kube_config.hpp"

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>

namespace podsight::metadata {
namespace {

constexpr std::size_t kMaxKubeconfigBytes = 16 << 20;
constexpr std::size_t kMaxTokenBytes = 64 << 10;
constexpr std::size_t kMaxCaBytes = 4 << 20;

std::string trim(std::string s) {
  const char* ws = " \t\r\n";
  s.erase(0, s.find_first_not_of(ws));
  s.erase(s.find_last_not_of(ws) + 1);
  return s;
}

Result<std::string> base64_decode(const std::string& in, const std::string& what) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
  };
  std::string out;
  unsigned buf = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=' || c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    const int v = value(c);
    if (v < 0) return Error{what + " is not valid base64", {}, EINVAL};
    buf = (buf << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((buf >> bits) & 0xff);
    }
  }
  return out;
}

std::string dir_of(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
}

std::string resolve_path(const std::string& base_dir, const std::string& p) {
  return p.empty() || p.front() == '/' ? p : base_dir + "/" + p;
}

// The named entry of a kubeconfig list ("clusters", "users", "contexts"): its inner map.
YAML::Node find_named(const YAML::Node& doc, const char* list, const char* inner, const std::string& name) {
  const YAML::Node items = doc[list];
  if (!items || !items.IsSequence()) return YAML::Node(YAML::NodeType::Undefined);
  for (const auto& item : items) {
    if (item.IsMap() && item["name"] && item["name"].as<std::string>() == name) return item[inner];
  }
  return YAML::Node(YAML::NodeType::Undefined);
}

std::string str(const YAML::Node& map, const char* key) {
  if (!map || !map.IsMap()) return {};
  const YAML::Node v = map[key];
  return v && v.IsScalar() ? v.as<std::string>() : std::string();
}

}  // namespace

std::string ApiServer::url() const {
  const bool v6 = host.find(':') != std::string::npos;
  return "https://" + (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port) + base_path;
}

Result<std::string> read_small_file(const std::string& path, std::size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return errno_error("read", path);
  std::string out;
  char buf[8192];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    out.append(buf, static_cast<std::size_t>(in.gcount()));
    if (out.size() > max_bytes)
      return Error{"file larger than " + std::to_string(max_bytes) + " bytes", path, EFBIG};
  }
  if (in.bad()) return errno_error("read", path);
  return out;
}

Result<ApiServer> parse_server_url(const std::string& url) {
  constexpr std::string_view kScheme = "https://";
  if (url.rfind("http://", 0) == 0) {
    return Error{
        "API server URL " + url + " is plain http: podsight only talks TLS to the API server", {}, EINVAL};
  }
  if (url.rfind(kScheme, 0) != 0)
    return Error{"API server URL " + url + " does not start with https://", {}, EINVAL};
  ApiServer api;
  std::string rest = url.substr(kScheme.size());
  if (rest.find_first_of("?#@") != std::string::npos) {
    return Error{"API server URL " + url + " has a query, fragment or user part", {}, EINVAL};
  }
  std::string authority = rest.substr(0, rest.find('/'));
  if (auto slash = rest.find('/'); slash != std::string::npos) {
    api.base_path = rest.substr(slash);
    while (!api.base_path.empty() && api.base_path.back() == '/') api.base_path.pop_back();
  }
  std::string port;
  if (!authority.empty() && authority.front() == '[') {
    auto close = authority.find(']');
    if (close == std::string::npos)
      return Error{"API server URL " + url + " has an unterminated [IPv6]", {}, EINVAL};
    api.host = authority.substr(1, close - 1);
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') return Error{"API server URL " + url + " is malformed", {}, EINVAL};
      port = authority.substr(close + 2);
    }
  } else {
    auto colon = authority.find(':');
    api.host = authority.substr(0, colon);
    if (colon != std::string::npos) port = authority.substr(colon + 1);
  }
  if (api.host.empty()) return Error{"API server URL " + url + " has no host", {}, EINVAL};
  if (!port.empty()) {
    if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos || std::stoi(port) < 1 ||
        std::stoi(port) > 65535) {
      return Error{"API server URL " + url + " has an invalid port", {}, EINVAL};
    }
    api.port = std::stoi(port);
  }
  return api;
}

Result<ApiServer> in_cluster(const InClusterFiles& files, const GetEnv& getenv) {
  const char* host = getenv("KUBERNETES_SERVICE_HOST");
  const char* port = getenv("KUBERNETES_SERVICE_PORT");
  if (host == nullptr || *host == '\0') {
    return Error{"not running in a Kubernetes pod: KUBERNETES_SERVICE_HOST is not set", {}, 0};
  }
  ApiServer api;
  api.host = host;
  std::string p = port != nullptr ? port : "443";
  if (p.empty() || p.size() > 5 || p.find_first_not_of("0123456789") != std::string::npos ||
      std::stoi(p) < 1 || std::stoi(p) > 65535) {
    return Error{"KUBERNETES_SERVICE_PORT is not a port: \"" + p + "\"", {}, EINVAL};
  }
  api.port = std::stoi(p);
  api.token_file = files.token_file;
  api.ca_file = files.ca_file;
  api.source = "in-cluster";
  // Fail now, with the file named, rather than at every retry.
  if (auto t = read_small_file(api.token_file, kMaxTokenBytes); !t) return t.error();
  if (auto c = read_small_file(api.ca_file, kMaxCaBytes); !c) return c.error();
  return api;
}

Result<ApiServer> from_kubeconfig(const std::string& path, const std::string& context) {
  auto text = read_small_file(path, kMaxKubeconfigBytes);
  if (!text) return text.error();
  const std::string dir = dir_of(path);
  auto fail = [&](const std::string& what) { return Error{"kubeconfig: " + what, path, EINVAL}; };
  try {
    const YAML::Node doc = YAML::Load(*text);
    if (!doc.IsMap()) return fail("not a YAML mapping");
    const std::string ctx_name = context.empty() ? str(doc, "current-context") : context;
    if (ctx_name.empty()) return fail("no context given and no current-context");
    const YAML::Node ctx = find_named(doc, "contexts", "context", ctx_name);
    if (!ctx || !ctx.IsMap()) return fail("context \"" + ctx_name + "\" not found");
    const std::string cluster_name = str(ctx, "cluster");
    const std::string user_name = str(ctx, "user");
    const YAML::Node cluster = find_named(doc, "clusters", "cluster", cluster_name);
    if (!cluster || !cluster.IsMap()) return fail("cluster \"" + cluster_name + "\" not found");

    auto api = parse_server_url(str(cluster, "server"));
    if (!api) return fail(api.error().what);
    api->source = "kubeconfig " + path + " (context " + ctx_name + ")";
    if (str(cluster, "insecure-skip-tls-verify") == "true") {
      return fail("insecure-skip-tls-verify is set: podsight always verifies the API server certificate");
    }
    if (!str(cluster, "proxy-url").empty()) return fail("proxy-url is not supported");
    api->server_name = str(cluster, "tls-server-name");
    if (auto data = str(cluster, "certificate-authority-data"); !data.empty()) {
      auto pem = base64_decode(data, "certificate-authority-data");
      if (!pem) return fail(pem.error().what);
      api->ca_pem = *pem;
    } else if (auto file = str(cluster, "certificate-authority"); !file.empty()) {
      api->ca_file = resolve_path(dir, file);
    } else {
      api->ca_file = kSystemCaBundle;
    }

    if (!user_name.empty()) {
      const YAML::Node user = find_named(doc, "users", "user", user_name);
      if (!user || !user.IsMap()) return fail("user \"" + user_name + "\" not found");
      if (user["exec"] || user["auth-provider"]) {
        return fail(
            "user \"" + user_name +
            "\" uses a credential plugin (exec/auth-provider), which podsight does not run: give it a "
            "token, tokenFile or client certificate");
      }
      if (!str(user, "username").empty() || !str(user, "password").empty()) {
        return fail("user \"" + user_name + "\" uses basic authentication, which podsight does not support");
      }
      api->token = str(user, "token");
      if (auto f = str(user, "tokenFile"); !f.empty()) api->token_file = resolve_path(dir, f);
      auto pem_of = [&](const char* data_key, const char* file_key) -> Result<std::string> {
        if (auto data = str(user, data_key); !data.empty()) return base64_decode(data, data_key);
        if (auto file = str(user, file_key); !file.empty())
          return read_small_file(resolve_path(dir, file), kMaxCaBytes);
        return std::string();
      };
      auto cert = pem_of("client-certificate-data", "client-certificate");
      if (!cert) return fail(cert.error().message());
      auto key = pem_of("client-key-data", "client-key");
      if (!key) return fail(key.error().message());
      if (cert->empty() != key->empty())
        return fail("user \"" + user_name +
                    "\" has a client certificate without a key or a key without a certificate");
      api->client_cert_pem = std::move(*cert);
      api->client_key_pem = std::move(*key);
    }
    return std::move(*api);
  } catch (const YAML::Exception& e) {
    return fail(e.what());
  }
}

Result<Credentials> load_credentials(const ApiServer& api) {
  Credentials c;
  c.target.host = api.host;
  c.target.port = api.port;
  c.target.server_name = api.server_name;
  c.target.client_cert_pem = api.client_cert_pem;
  c.target.client_key_pem = api.client_key_pem;
  if (!api.ca_pem.empty()) {
    c.target.ca_pem = api.ca_pem;
  } else {
    auto ca = read_small_file(api.ca_file, kMaxCaBytes);
    if (!ca) return ca.error();
    c.target.ca_pem = std::move(*ca);
  }
  if (!api.token_file.empty()) {
    auto t = read_small_file(api.token_file, kMaxTokenBytes);
    if (!t) return t.error();
    c.bearer = trim(std::move(*t));
    if (c.bearer.empty()) return Error{"token file is empty", api.token_file, 0};
  } else {
    c.bearer = api.token;
  }
  return c;
}

}  // namespace podsight::metadata
