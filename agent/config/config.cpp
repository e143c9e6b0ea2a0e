// Parsing and validation of the agent's configuration file and command line.
#include "config/config.hpp"

#include "config/reader.hpp"

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

void read_programs(ObjectReader r, ProgramsConfig& p) {
  auto exec = r.object("exec");
  exec.boolean("enabled", p.exec.enabled);
  exec.choice("variant", {"auto", "tp_btf", "tracepoint"}, p.exec.variant);
  exec.integer("max_entries", 1, 1 << 20, p.exec.max_entries);
  exec.reject_unknown();
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
  root.reject_unknown();

  if (!problems.empty()) return config_error(problems);
  return c;
}

}  // namespace

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
         "                [--log-level trace|debug|info|warn|error] [--check] [--version] [--help]\n"
         "\n"
         "  --config FILE      JSON configuration (keys: docs/configuration.md)\n"
         "  --listen ADDR:PORT address for /metrics, /healthz, /readyz (default 0.0.0.0:" +
         std::to_string(kDefaultPort) +
         ")\n"
         "  --log-format FMT   json (default) or text\n"
         "  --log-level LEVEL  default info\n"
         "  --check            preflight: load and attach every enabled program family, print a\n"
         "                     table, exit 0 only if everything passes\n";
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
