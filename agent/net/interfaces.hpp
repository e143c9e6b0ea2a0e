// Network interface names as hostile input: the kernel's rules for a valid name, checked glob
// patterns over names, and the selection of interfaces by explicit names and include/exclude patterns.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace podsight::net {

// Longest interface name the kernel accepts (IFNAMSIZ - 1).
inline constexpr std::size_t kMaxInterfaceName = 15;
// Longest pattern accepted in the configuration.
inline constexpr std::size_t kMaxInterfacePattern = 64;

// Why `name` cannot be an interface name (the kernel's dev_valid_name rules: 1-15 bytes, not "." or
// "..", no '/', ':', whitespace or NUL), or empty when it can.
std::string invalid_interface_name(std::string_view name);

// Why `pattern` is not a usable glob over interface names (`*`, `?`, `[...]` with `!` negation and
// ranges, `\` escapes; fnmatch(3) syntax), or empty when it is. Rejected: characters no name can hold,
// an unclosed `[`, a trailing `\`, and patterns that need more than 15 bytes to match.
std::string invalid_interface_pattern(std::string_view pattern);

// fnmatch(3) without flags: byte-wise in the C locale the agent runs in.
bool glob_match(const std::string& pattern, const std::string& name);

// Which interfaces a family attaches to: every name listed in `names`, and every interface matching
// one of `include` and none of `exclude`. Inputs must have passed the checks above.
class InterfaceSelector {
 public:
  InterfaceSelector(std::vector<std::string> names, std::vector<std::string> include,
                    std::vector<std::string> exclude);
  [[nodiscard]] bool selects(const std::string& name) const;
  // Listed by name (so it must exist: a missing one is reported).
  [[nodiscard]] bool named(const std::string& name) const;
  [[nodiscard]] const std::vector<std::string>& names() const { return names_; }

 private:
  std::vector<std::string> names_;
  std::vector<std::string> include_;
  std::vector<std::string> exclude_;
};

}  // namespace podsight::net
