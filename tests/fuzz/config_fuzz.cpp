// Fuzzes the configuration parser with arbitrary bytes. It must never crash; a rejected document gets
// "invalid configuration: " and either "malformed JSON" or, first, a key path followed by ": " that
// is a key the parser knows or a key the document holds; an accepted one holds values in range.
#include "config/config.hpp"
#include "http/server.hpp"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace {

[[noreturn]] void fail(const char* what, std::string_view input, const std::string& detail) {
  std::fprintf(stderr, "config fuzz: %s: %s\n---- input ----\n%.*s\n----\n", what, detail.c_str(),
               static_cast<int>(input.size()), input.data());
  std::abort();
}

// Every dotted key path in `doc` (objects only: arrays hold no keys the parser reads), iteratively so
// that a deeply nested document cannot exhaust the stack here either.
std::set<std::string> key_paths(const nlohmann::json& doc) {
  std::set<std::string> paths;
  std::vector<std::pair<const nlohmann::json*, std::string>> todo{{&doc, ""}};
  while (!todo.empty()) {
    auto [node, prefix] = todo.back();
    todo.pop_back();
    if (!node->is_object()) continue;
    for (const auto& [k, v] : node->items()) {
      std::string path = prefix.empty() ? k : prefix + "." + k;
      paths.insert(path);
      todo.emplace_back(&v, std::move(path));
    }
  }
  return paths;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = podsight::config::parse(text);
  if (parsed) {
    const auto& c = *parsed;
    if (!podsight::http::parse_listen_address(c.http.listen))
      fail("accepted a bad listen address", text, c.http.listen);
    if (c.programs.exec.max_entries < 1 || c.programs.exec.max_entries > (1U << 20)) {
      fail("accepted max_entries out of range", text, std::to_string(c.programs.exec.max_entries));
    }
    if (!c.cgroup_root.empty() && c.cgroup_root.front() != '/')
      fail("accepted a relative cgroup_root", text, c.cgroup_root);
    if (c.http.tls.cert_file.empty() != c.http.tls.key_file.empty())
      fail("accepted half a TLS pair", text, "");
    if (c.http.auth.basic_username.empty() != c.http.auth.basic_password_file.empty() ||
        c.http.auth.basic_username.find(':') != std::string::npos) {
      fail("accepted unusable basic credentials", text, c.http.auth.basic_username);
    }
    return 0;
  }
  const std::string& what = parsed.error().what;
  constexpr std::string_view kPrefix = "invalid configuration: ";
  if (!what.starts_with(kPrefix)) fail("error without the prefix", text, what);
  const std::string_view rest = std::string_view(what).substr(kPrefix.size());
  if (rest.starts_with("malformed JSON: ")) return 0;

  static const std::vector<std::string> known = podsight::config::known_keys();
  std::set<std::string> names(known.begin(), known.end());
  names.insert("config");  // the document itself, when it is not an object
  const auto doc = nlohmann::json::parse(text, nullptr, false, /*ignore_comments=*/false);
  if (doc.is_discarded()) fail("rejected as invalid but not as malformed JSON", text, what);
  names.merge(key_paths(doc));
  for (const auto& n : names) {
    if (rest.starts_with(n + ": ")) return 0;
  }
  fail("error names no key", text, what);
}
