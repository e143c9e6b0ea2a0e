// Small text helpers the fuzz targets share to state their invariants.
#pragma once

#include <string>
#include <string_view>

namespace podsight::fuzz {

// `s` with ASCII letters lower-cased and every other byte as it was (HTTP tokens ignore case).
inline std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

}  // namespace podsight::fuzz
