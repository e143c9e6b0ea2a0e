// Parsing and validation of the agent's configuration file and command line.
#include "config/config.hpp"

#include "config/reader.hpp"
#include "net/interfaces.hpp"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>

namespace podsight::config {
namespace {

Error config_error(const std::vector<std::string>& problems) {
  std::string what;
  for (const auto& p : problems) what += (what.empty() ? "" : "; ") + p;
  return Error{"invalid configuration: " + what, {}, 0};
}

// http.tls and http.auth. The files are only named here; the agent reads them before it loads anything
// (http::check_security_files), and the HTTP server re-reads them when they change.
void read_http_security(ObjectReader& http, http::Options& h) {
  auto tls = http.object("tls");
  tls.string("cert_file", h.tls.cert_file);
  tls.string("key_file", h.tls.key_file);
  tls.choice("min_version", {"1.2", "1.3"}, h.tls.min_version);
  tls.reject_unknown();
  if (h.tls.cert_file.empty() != h.tls.key_file.empty()) {
    tls.fail(h.tls.cert_file.empty() ? "cert_file" : "key_file",
             "must be set together with " + std::string(h.tls.cert_file.empty() ? "key_file" : "cert_file"));
  }
  auto auth = http.object("auth");
  auth.string("bearer_token_file", h.auth.bearer_token_file);
  auth.string("basic_username", h.auth.basic_username);
  auth.string("basic_password_file", h.auth.basic_password_file);
  auth.reject_unknown();
  if (h.auth.basic_username.empty() != h.auth.basic_password_file.empty()) {
    auth.fail(h.auth.basic_username.empty() ? "basic_username" : "basic_password_file",
              "must be set together with " +
                  std::string(h.auth.basic_username.empty() ? "basic_password_file" : "basic_username"));
  }
  if (h.auth.basic_username.find(':') != std::string::npos) {
    auth.fail("basic_username", "must not contain ':' (RFC 7617)");
  }
}

void read_http(ObjectReader r, http::Options& h) {
  r.string("listen", h.listen);
  r.integer("request_timeout_seconds", 1, 300, h.request_timeout_seconds);
  r.integer("write_timeout_seconds", 1, 300, h.write_timeout_seconds);
  r.integer("idle_timeout_seconds", 1, 3600, h.idle_timeout_seconds);
  r.integer("max_connections", 1, 4096, h.max_connections);
  r.integer("worker_threads", 1, 64, h.worker_threads);
  r.integer("max_request_bytes", 1024, 1 << 20, h.max_request_bytes);
  r.integer("keep_alive_max_requests", 1, 100000, h.keep_alive_max_requests);
  read_http_security(r, h);
  r.reject_unknown();
  if (auto a = http::parse_listen_address(h.listen); !a) r.fail("listen", a.error().what);
}

// programs.xdp: interface names and patterns are checked here, so a typo never reaches the kernel.
void read_xdp(ObjectReader r, XdpConfig& x) {
  constexpr std::size_t kMaxListed = 256;
  r.boolean("enabled", x.enabled);
  r.choice("variant", {"auto", "link"}, x.variant);
  r.choice("mode", {"auto", "native", "generic"}, x.mode);
  r.integer("max_interfaces", 1, 4096, x.max_interfaces);
  auto check = [&](std::string_view key, std::vector<std::string>& list, auto&& why_invalid) {
    r.string_list(key, list);
    if (list.size() > kMaxListed) {
      r.fail(key, "at most " + std::to_string(kMaxListed) + " entries, got " + std::to_string(list.size()));
      return;
    }
    for (std::size_t i = 0; i < list.size(); ++i) {
      if (auto why = why_invalid(list[i]); !why.empty()) {
        const auto shown =
            nlohmann::json(list[i]).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        r.fail(key, "element " + std::to_string(i) + " " + shown + ": " + why);
      }
    }
  };
  check("interfaces", x.interfaces, net::invalid_interface_name);
  const bool include_given = r.has("include");
  check("include", x.include, net::invalid_interface_pattern);
  check("exclude", x.exclude, net::invalid_interface_pattern);
  // Naming interfaces means "these": the uplink patterns only apply when asked for explicitly.
  if (!x.interfaces.empty() && !include_given) x.include.clear();
  r.reject_unknown();
}

void read_programs(ObjectReader r, ProgramsConfig& p) {
  auto exec = r.object("exec");
  exec.boolean("enabled", p.exec.enabled);
  exec.choice("variant", {"auto", "tp_btf", "tracepoint"}, p.exec.variant);
  exec.integer("max_entries", 1, 1 << 20, p.exec.max_entries);
  exec.reject_unknown();
  auto cgroup_skb = r.object("cgroup_skb");
  cgroup_skb.boolean("enabled", p.cgroup_skb.enabled);
  cgroup_skb.choice("variant", {"auto", "link"}, p.cgroup_skb.variant);
  cgroup_skb.integer("max_entries", 1, 1 << 20, p.cgroup_skb.max_entries);
  cgroup_skb.reject_unknown();
  read_xdp(r.object("xdp"), p.xdp);
  auto tcp = r.object("tcp");
  tcp.boolean("enabled", p.tcp.enabled);
  tcp.choice("variant", {"auto", "tp_btf", "fentry", "tracepoint", "kprobe"}, p.tcp.variant);
  tcp.integer("max_connections", 1, 1 << 20, p.tcp.max_connections);
  tcp.integer("max_entries", 1, 1 << 20, p.tcp.max_entries);
  tcp.choice("open_connections", {"auto", "sk_storage", "iter_tcp"}, p.tcp.open_connections);
  auto remote = tcp.object("remote");
  remote.boolean("enabled", p.tcp.remote.enabled);
  remote.integer("max_entries", 1, 1 << 20, p.tcp.remote.max_entries);
  remote.integer("max_addresses", 1, 1 << 22, p.tcp.remote.max_addresses);
  remote.reject_unknown();
  tcp.reject_unknown();
  r.reject_unknown();
}

bool is_label_name(std::string_view s) {
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
}

bool is_metric_name(std::string_view s) {
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == ':';
  });
}

void read_kubernetes(ObjectReader r, KubernetesConfig& k) {
  r.choice("source", {"auto", "in_cluster", "kubeconfig", "off"}, k.source);
  r.string("kubeconfig", k.kubeconfig);
  r.string("context", k.context);
  r.string("node_name", k.node_name);
  r.string("token_file", k.token_file);
  r.string("ca_file", k.ca_file);
  r.string_list("pod_labels", k.pod_labels);
  r.integer("request_timeout_seconds", 1, 600, k.request_timeout_seconds);
  r.integer("list_page_size", 1, 10000, k.list_page_size);
  r.integer("max_response_bytes", 1 << 16, std::int64_t{1} << 30, k.max_response_bytes);
  r.integer("max_pods", 1, 1000000, k.max_pods);
  r.reject_unknown();
  if (k.source == "kubeconfig" && k.kubeconfig.empty())
    r.fail("kubeconfig", "is required when source is kubeconfig");
  for (const auto& l : k.pod_labels) {
    // A label key: [prefix/]name, prefix a DNS subdomain (<= 253), name <= 63.
    if (l.empty() || l.size() > 317 || l.find_first_of(" \t\n\"") != std::string::npos) {
      r.fail("pod_labels", "\"" + l + "\" is not a Kubernetes label key");
    }
  }
}

void read_cardinality(ObjectReader r, CardinalityConfig& c) {
  r.integer("max_series", 1, 10000000, c.max_series);
  r.integer_map("family_max_series", 1, 10000000, c.family_max_series);
  r.string_list("drop_labels", c.drop_labels);
  r.integer_map("label_max_bytes", 1, 65536, c.label_max_bytes);
  r.reject_unknown();
  for (const auto& [name, limit] : c.family_max_series) {
    if (!is_metric_name(name)) r.fail("family_max_series", "\"" + name + "\" is not a metric name");
  }
  for (const auto& l : c.drop_labels) {
    if (!is_label_name(l)) r.fail("drop_labels", "\"" + l + "\" is not a label name");
  }
  for (const auto& [l, bytes] : c.label_max_bytes) {
    if (!is_label_name(l)) r.fail("label_max_bytes", "\"" + l + "\" is not a label name");
  }
}

void read_gc(ObjectReader r, GcConfig& g) {
  r.integer("grace_period_seconds", 0, 86400, g.grace_period_seconds);
  r.integer("interval_seconds", 1, 3600, g.interval_seconds);
  r.integer("max_deletes_per_pass", 1, 1000000, g.max_deletes_per_pass);
  r.reject_unknown();
}

// Reads every key of `doc` into a Config; `known` (optional) collects the key paths asked for.
Result<Config> read_document(const nlohmann::json& doc, std::vector<std::string>* known) {
  Config c;
  std::vector<std::string> problems;
  ObjectReader root(&doc, "", problems, known);
  if (!problems.empty()) return config_error(problems);

  read_http(root.object("http"), c.http);
  auto log = root.object("log");
  std::string format = c.log_format == log::Format::kJson ? "json" : "text";
  log.choice("format", {"json", "text"}, format);
  log::parse_format(format, c.log_format);
  log.choice("level", {"trace", "debug", "info", "warn", "error"}, c.log_level);
  log.reject_unknown();
  root.boolean("bpf_stats", c.bpf_stats);
  root.string("cgroup_root", c.cgroup_root);
  if (!c.cgroup_root.empty() && c.cgroup_root.front() != '/') {
    root.fail("cgroup_root", "must be an absolute path, got \"" + c.cgroup_root + "\"");
  }
  read_programs(root.object("programs"), c.programs);
  read_kubernetes(root.object("kubernetes"), c.kubernetes);
  read_cardinality(root.object("cardinality"), c.cardinality);
  read_gc(root.object("gc"), c.gc);
  root.reject_unknown();

  if (!problems.empty()) return config_error(problems);
  return c;
}

}  // namespace

std::vector<std::string> XdpConfig::default_xdp_include() {
  return {"eth*", "en*", "em*", "bond*", "team*", "vlan*"};
}

std::vector<std::string> XdpConfig::default_xdp_exclude() {
  return {"lo",      "veth*", "eni*",         "cali*",  "lxc*",  "cilium_*", "flannel*", "cni*",
          "docker*", "br-*",  "virbr*",       "kube-*", "tunl*", "vxlan*",   "genev*",   "weave*",
          "azv*",    "gke*",  "nodelocaldns", "tap*",   "tun*",  "ifb*",     "dummy*",   "wg*"};
}

Result<Config> parse(std::string_view json_text) {
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(json_text, nullptr, true, /*ignore_comments=*/false);
  } catch (const nlohmann::json::exception& e) {
    // parse_error, and out_of_range for numbers beyond a double ("1e400"): both are malformed input.
    return Error{std::string("invalid configuration: malformed JSON: ") + e.what(), {}, 0};
  }
  return read_document(doc, nullptr);
}

std::vector<std::string> known_keys() {
  std::vector<std::string> keys;
  (void)read_document(nlohmann::json::object(), &keys);
  return keys;
}

Result<Config> load_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return errno_error("cannot read configuration file", path);
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return errno_error("cannot read configuration file", path);
  auto c = parse(text.str());
  if (!c) return Error{c.error().what, path, 0};
  return c;
}

std::string usage() {
  return "Usage: podsight [--config FILE] [--listen ADDR:PORT] [--log-format json|text]\n"
         "                [--log-level trace|debug|info|warn|error] [--check] [--validate-config]\n"
         "                [--version] [--help]\n"
         "\n"
         "  --config FILE      JSON configuration (keys: docs/configuration.md)\n"
         "  --listen ADDR:PORT address for /metrics, /healthz, /readyz (default 0.0.0.0:" +
         std::to_string(kDefaultPort) +
         ")\n"
         "  --log-format FMT   json (default) or text\n"
         "  --log-level LEVEL  default info\n"
         "  --check            preflight: load and attach every enabled program family, print a\n"
         "                     table, exit 0 only if everything passes\n"
         "  --validate-config  check the configuration file and flags, load nothing, exit 0 if\n"
         "                     valid and 2 if not (needs no privileges)\n";
}

Result<CommandLine> parse_args(int argc, const char* const* argv) {
  CommandLine cl;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    std::string value;
    bool has_inline = false;
    if (auto eq = arg.find('='); arg.starts_with("--") && eq != std::string_view::npos) {
      value = std::string(arg.substr(eq + 1));
      arg = arg.substr(0, eq);
      has_inline = true;
    }
    auto take = [&](std::string& out) -> Status {
      if (has_inline) {
        out = value;
        return {};
      }
      if (i + 1 >= argc) return Error{"missing value for " + std::string(arg), {}, 0};
      out = argv[++i];
      return {};
    };
    Status st;
    if (arg == "--config") {
      st = take(cl.config_file);
    } else if (arg == "--listen") {
      st = take(cl.listen);
    } else if (arg == "--log-format") {
      st = take(cl.log_format);
    } else if (arg == "--log-level") {
      st = take(cl.log_level);
    } else if (arg == "--check" && !has_inline) {
      cl.check = true;
    } else if (arg == "--validate-config" && !has_inline) {
      cl.validate_config = true;
    } else if ((arg == "--help" || arg == "-h") && !has_inline) {
      cl.help = true;
    } else if (arg == "--version" && !has_inline) {
      cl.version = true;
    } else {
      return Error{"unknown argument " + std::string(arg), {}, 0};
    }
    if (!st) return st.error();
  }
  return cl;
}

Result<Config> resolve(const CommandLine& cl) {
  Config c;
  if (!cl.config_file.empty()) {
    auto loaded = load_file(cl.config_file);
    if (!loaded) return loaded.error();
    c = std::move(loaded.value());
  }
  if (!cl.listen.empty()) {
    if (auto a = http::parse_listen_address(cl.listen); !a) {
      return Error{"--listen: " + a.error().what, {}, 0};
    }
    c.http.listen = cl.listen;
  }
  if (!cl.log_format.empty() && !log::parse_format(cl.log_format, c.log_format)) {
    return Error{"--log-format: must be json or text, got \"" + cl.log_format + "\"", {}, 0};
  }
  if (!cl.log_level.empty()) {
    spdlog::level::level_enum unused{};
    if (!log::parse_level(cl.log_level, unused)) {
      return Error{"--log-level: must be one of trace, debug, info, warn, error, got \"" + cl.log_level + "\"",
                   {}, 0};
    }
    c.log_level = cl.log_level;
  }
  return c;
}

}  // namespace podsight::config
