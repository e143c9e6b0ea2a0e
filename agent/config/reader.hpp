// Strict reading of one JSON object of the config: every key is known, typed and range-checked, and
// every problem is collected with its full key path so one run reports them all.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <initializer_list>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace podsight::config {

class ObjectReader {
 public:
  // `path` is the dotted key path of this object ("" for the root). Problems go to `errors`. When
  // `known` is given, every key path asked for is appended to it (that is how the set of accepted keys
  // is listed for the documentation check).
  ObjectReader(const nlohmann::json* object, std::string path, std::vector<std::string>& errors,
               std::vector<std::string>* known = nullptr);

  void boolean(std::string_view key, bool& out);
  void string(std::string_view key, std::string& out);
  void choice(std::string_view key, std::initializer_list<std::string_view> allowed, std::string& out);
  void integer(std::string_view key, std::int64_t min, std::int64_t max, std::int64_t& out);
  template <typename T>
  void integer(std::string_view key, std::int64_t min, std::int64_t max, T& out) {
    auto v = static_cast<std::int64_t>(out);
    integer(key, min, max, v);
    out = static_cast<T>(v);
  }
  void string_list(std::string_view key, std::vector<std::string>& out);
  // The key is present in this object (whatever its value); does not mark it as read.
  [[nodiscard]] bool has(std::string_view key) const;
  // An object whose keys are free-form names (checked by the caller) and whose values are integers in
  // [min, max]; e.g. {"podsight_process_execs_total": 500}.
  void integer_map(std::string_view key, std::int64_t min, std::int64_t max,
                   std::map<std::string, std::int64_t>& out);
  // A nested object; absent keys give a reader over nothing (all defaults kept).
  ObjectReader object(std::string_view key);
  // Reports every key that no call above asked for. Call once, after reading all keys.
  void reject_unknown();

  [[nodiscard]] std::string key_path(std::string_view key) const;
  void fail(std::string_view key, const std::string& problem);

 private:
  const nlohmann::json* find(std::string_view key);

  const nlohmann::json* object_;
  std::string path_;
  std::vector<std::string>* errors_;
  std::vector<std::string>* known_;
  std::set<std::string, std::less<>> seen_;
};

// Describes a JSON value's type for error messages ("a string", "an object", ...).
std::string describe(const nlohmann::json& value);

}  // namespace podsight::config
