// Bearer and basic authentication against secrets kept only as SHA-256 digests, compared with
// CRYPTO_memcmp: comparing digests of equal length leaks neither the secret's length nor a prefix.
#include "http/auth.hpp"

#include "log/log.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>

namespace podsight::http {
namespace {

Digest sha256(std::string_view data) {
  Digest d{};
  unsigned int len = 0;
  // EVP_Digest fails only when out of memory; the zero digest then matches no secret's digest.
  (void)EVP_Digest(data.data(), data.size(), d.data(), &len, EVP_sha256(), nullptr);
  return d;
}

bool same(const Digest& a, const Digest& b) { return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0; }

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return lower(x) == lower(y); });
}

int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

}  // namespace

std::optional<std::string> decode_base64(std::string_view in) {
  if (in.size() % 4 != 0) return std::nullopt;
  std::size_t padding = 0;
  if (!in.empty() && in.back() == '=') ++padding;
  if (in.size() >= 2 && in[in.size() - 2] == '=') ++padding;
  std::string out;
  out.reserve(in.size() / 4 * 3);
  for (std::size_t i = 0; i < in.size(); i += 4) {
    std::uint32_t group = 0;
    const bool last = i + 4 == in.size();
    for (std::size_t k = 0; k < 4; ++k) {
      const bool pad = last && k >= 4 - padding;
      const int v = pad ? 0 : base64_value(in[i + k]);
      if (v < 0) return std::nullopt;
      group = (group << 6) | static_cast<std::uint32_t>(v);
    }
    out += static_cast<char>(group >> 16);
    if (!last || padding < 2) out += static_cast<char>((group >> 8) & 0xFF);
    if (!last || padding < 1) out += static_cast<char>(group & 0xFF);
  }
  return out;
}

Authenticator::Authenticator(AuthOptions options, ReloadObserver observer)
    : options_(std::move(options)), observer_(std::move(observer)) {}

Result<std::unique_ptr<Authenticator>> Authenticator::create(const AuthOptions& options,
                                                             ReloadObserver observer) {
  if (!options.enabled()) return std::unique_ptr<Authenticator>();
  std::unique_ptr<Authenticator> auth(new Authenticator(options, std::move(observer)));
  if (!options.bearer_token_file.empty()) {
    auth->bearer_watch_ = std::make_unique<FileWatch>(std::vector<std::string>{options.bearer_token_file});
    auth->bearer_watch_->remember();
    if (auto st = auth->load_bearer(); !st) return st.error();
    auth->challenges_.emplace_back("Bearer realm=\"podsight\"");
  }
  if (!options.basic_username.empty()) {
    auth->basic_watch_ = std::make_unique<FileWatch>(std::vector<std::string>{options.basic_password_file});
    auth->basic_watch_->remember();
    if (auto st = auth->load_basic(); !st) return st.error();
    auth->challenges_.emplace_back("Basic realm=\"podsight\", charset=\"UTF-8\"");
  }
  return auth;
}

Status Authenticator::load_bearer() {
  auto token = read_secret_file(options_.bearer_token_file);
  if (!token) return token.error();
  std::lock_guard lock(mu_);
  secrets_.token = sha256(*token);
  return {};
}

Status Authenticator::load_basic() {
  auto password = read_secret_file(options_.basic_password_file);
  if (!password) return password.error();
  std::lock_guard lock(mu_);
  secrets_.user = sha256(options_.basic_username);
  secrets_.password = sha256(*password);
  return {};
}

void Authenticator::reload_if_changed() {
  const auto reload = [this](FileWatch* watch, const char* secret, Status (Authenticator::*load)()) {
    if (watch == nullptr || !watch->changed()) return;
    const Status st = (this->*load)();
    if (st) {
      log::info("HTTP credential reloaded", {{"secret", secret}});
    } else {
      log::error("HTTP credential reload failed, keeping the previous one",
                 {{"secret", secret}, {"error", st.error().message()}});
    }
    if (observer_) observer_(SecretReload{secret, st.ok(), st ? std::string() : st.error().message()});
  };
  reload(bearer_watch_.get(), "bearer_token", &Authenticator::load_bearer);
  reload(basic_watch_.get(), "basic_password", &Authenticator::load_basic);
}

Authenticator::Verdict Authenticator::check(std::string_view authorization) {
  reload_if_changed();
  if (authorization.empty()) return Verdict::kMissing;
  const auto space = authorization.find(' ');
  if (space == std::string_view::npos) return Verdict::kDenied;
  const std::string_view scheme = authorization.substr(0, space);
  std::string_view credentials = authorization.substr(space + 1);
  while (!credentials.empty() && credentials.front() == ' ') credentials.remove_prefix(1);
  Secrets secrets;
  {
    std::lock_guard lock(mu_);
    secrets = secrets_;
  }
  if (iequals(scheme, "Bearer") && secrets.token) {
    return same(sha256(credentials), *secrets.token) ? Verdict::kAllowed : Verdict::kDenied;
  }
  if (iequals(scheme, "Basic") && secrets.password) {
    const auto decoded = decode_base64(credentials);
    if (!decoded) return Verdict::kDenied;
    const auto colon = decoded->find(':');
    if (colon == std::string::npos) return Verdict::kDenied;
    // Both comparisons always run: which one failed must not show in the timing.
    const bool user = same(sha256(std::string_view(*decoded).substr(0, colon)), secrets.user);
    const bool password = same(sha256(std::string_view(*decoded).substr(colon + 1)), *secrets.password);
    return (user & password) ? Verdict::kAllowed : Verdict::kDenied;
  }
  return Verdict::kDenied;
}

}  // namespace podsight::http
