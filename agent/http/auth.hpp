// HTTP authentication for the agent's protected routes: a bearer token or a basic-auth user and password,
// secrets read from files (re-read when they change) and compared in constant time, so neither the
// answer nor its timing tells an attacker how much of a guess was right.
#pragma once

#include "http/server.hpp"
#include "http/watched_file.hpp"
#include "util/result.hpp"

#include <array>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace podsight::http {

using Digest = std::array<unsigned char, 32>;  // SHA-256

// Decodes standard base64 (RFC 4648 section 4, padding required); nullopt on anything else.
std::optional<std::string> decode_base64(std::string_view in);

class Authenticator {
 public:
  // Reads the secret files now; nullptr when `options` configure no credentials.
  static Result<std::unique_ptr<Authenticator>> create(const AuthOptions& options,
                                                       ReloadObserver observer = {});

  enum class Verdict { kAllowed, kMissing, kDenied };
  // Judges an Authorization header value ("" when the request has none). Re-reads the secret files
  // first when they changed.
  Verdict check(std::string_view authorization);
  // WWW-Authenticate values for a 401, one per accepted scheme.
  [[nodiscard]] const std::vector<std::string>& challenges() const { return challenges_; }

 private:
  Authenticator(AuthOptions options, ReloadObserver observer);
  Status load_bearer();
  Status load_basic();
  void reload_if_changed();

  struct Secrets {
    std::optional<Digest> token;
    Digest user{};
    std::optional<Digest> password;
  };

  AuthOptions options_;
  ReloadObserver observer_;
  std::unique_ptr<FileWatch> bearer_watch_;
  std::unique_ptr<FileWatch> basic_watch_;
  std::vector<std::string> challenges_;
  std::mutex mu_;
  Secrets secrets_;
};

}  // namespace podsight::http
