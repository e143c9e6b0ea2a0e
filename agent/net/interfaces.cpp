// Interface name rules, glob checks and selection.
#include "net/interfaces.hpp"

#include <fnmatch.h>

#include <algorithm>
#include <utility>

namespace podsight::net {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }

// A byte no interface name can hold (besides NUL): the kernel refuses '/', ':' and whitespace.
std::string forbidden_byte(char c) {
  if (c == '\0') return "NUL bytes";
  if (c == '/') return "'/'";
  if (c == ':') return "':'";
  if (is_space(c)) return "whitespace";
  return {};
}

}  // namespace

std::string invalid_interface_name(std::string_view name) {
  if (name.empty()) return "an interface name cannot be empty";
  if (name.size() > kMaxInterfaceName) {
    return "an interface name has at most " + std::to_string(kMaxInterfaceName) + " bytes, this one has " +
           std::to_string(name.size());
  }
  if (name == "." || name == "..") return "\".\" and \"..\" are not interface names";
  for (char c : name) {
    if (auto bad = forbidden_byte(c); !bad.empty()) return "an interface name cannot contain " + bad;
  }
  return {};
}

std::string invalid_interface_pattern(std::string_view pattern) {
  if (pattern.empty()) return "a pattern cannot be empty";
  if (pattern.size() > kMaxInterfacePattern) {
    return "a pattern has at most " + std::to_string(kMaxInterfacePattern) + " bytes, this one has " +
           std::to_string(pattern.size());
  }
  std::size_t min_len = 0;  // bytes a matching name has at least
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (auto bad = forbidden_byte(c); !bad.empty()) {
      return "contains " + bad + ", which no interface name can hold, so it would never match";
    }
    if (c == '*') continue;
    if (c == '\\') {
      if (++i == pattern.size()) return "ends in an unfinished '\\' escape";
      ++min_len;
      continue;
    }
    if (c == '[') {
      // fnmatch: '!' or '^' negates, and a ']' right after the opening (or the negation) is literal
      std::size_t j = i + 1;
      if (j < pattern.size() && (pattern[j] == '!' || pattern[j] == '^')) ++j;
      if (j < pattern.size() && pattern[j] == ']') ++j;
      while (j < pattern.size() && pattern[j] != ']') ++j;
      if (j == pattern.size()) return "has a '[' without its closing ']'";
      i = j;
    }
    ++min_len;
  }
  if (min_len > kMaxInterfaceName) {
    return "needs at least " + std::to_string(min_len) +
           " bytes to match, but interface names have at most " + std::to_string(kMaxInterfaceName);
  }
  return {};
}

bool glob_match(const std::string& pattern, const std::string& name) {
  return ::fnmatch(pattern.c_str(), name.c_str(), 0) == 0;
}

InterfaceSelector::InterfaceSelector(std::vector<std::string> names, std::vector<std::string> include,
                                     std::vector<std::string> exclude)
    : names_(std::move(names)), include_(std::move(include)), exclude_(std::move(exclude)) {}

bool InterfaceSelector::named(const std::string& name) const {
  return std::find(names_.begin(), names_.end(), name) != names_.end();
}

bool InterfaceSelector::selects(const std::string& name) const {
  if (named(name)) return true;
  auto matches = [&](const std::string& p) { return glob_match(p, name); };
  return std::any_of(include_.begin(), include_.end(), matches) &&
         std::none_of(exclude_.begin(), exclude_.end(), matches);
}

}  // namespace podsight::net
