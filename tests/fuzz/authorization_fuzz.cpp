// Fuzzes the Authorization header check of authenticated routes. Beyond not crashing: a header is
// accepted exactly when it is the bearer token, or basic credentials that decode to the user and
// password (scheme names in any case, spaces after the scheme), never otherwise.
#include "fuzz/ascii.hpp"
#include "http/auth.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <string_view>

namespace {

using podsight::http::Authenticator;

constexpr std::string_view kToken = "t0k3n";
constexpr std::string_view kUserPassword = "u:p:w";  // user "u", password "p:w"

std::string g_files[2];

std::string write_temp(int i, std::string_view content) {
  char path[] = "/tmp/podsight-fuzz-auth-XXXXXX";
  const int fd = ::mkstemp(path);
  if (fd < 0) std::abort();
  ::close(fd);
  std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
  g_files[i] = path;
  return path;
}

void remove_temp() {
  for (const auto& f : g_files) ::unlink(f.c_str());
}

Authenticator& authenticator() {
  static Authenticator* auth = [] {
    podsight::http::AuthOptions o;
    o.bearer_token_file = write_temp(0, kToken);
    o.basic_username = "u";
    o.basic_password_file = write_temp(1, "p:w\n");
    std::atexit(remove_temp);
    auto created = Authenticator::create(o);
    if (!created || !*created) std::abort();
    return created->release();  // lives as long as the fuzzer
  }();
  return *auth;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view header(reinterpret_cast<const char*>(data), size);
  const auto verdict = authenticator().check(header);
  bool expected = false;
  if (const auto space = header.find(' '); space != std::string_view::npos) {
    const std::string scheme = podsight::fuzz::ascii_lower(header.substr(0, space));
    std::string_view rest = header.substr(space + 1);
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    expected = (scheme == "bearer" && rest == kToken) ||
               (scheme == "basic" && podsight::http::decode_base64(rest) == std::string(kUserPassword));
  }
  const bool allowed = verdict == Authenticator::Verdict::kAllowed;
  if (allowed != expected || (header.empty() && verdict != Authenticator::Verdict::kMissing)) {
    std::fprintf(stderr, "authorization fuzz: verdict %d for \"%.*s\"\n", static_cast<int>(verdict),
                 static_cast<int>(header.size()), header.data());
    std::abort();
  }
  return 0;
}
