// Logging for `kubectl logs`: spdlog underneath, one JSON object per line by default or
// human-readable text, every line with structured key/value fields.
#pragma once

#include <spdlog/common.h>

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace podsight::log {

enum class Format { kJson, kText };

struct Field {
  std::string key;
  std::string value;
  bool quoted = true;  // false: value is a JSON number/bool literal (written bare in JSON)

  Field(std::string k, std::string v) : key(std::move(k)), value(std::move(v)) {}
  Field(std::string k, const char* v) : key(std::move(k)), value(v ? v : "") {}
  Field(std::string k, std::string_view v) : key(std::move(k)), value(v) {}
  Field(std::string k, bool v) : key(std::move(k)), value(v ? "true" : "false"), quoted(false) {}
  template <typename T>
    requires std::is_arithmetic_v<T>
  Field(std::string k, T v) : key(std::move(k)), value(std::to_string(v)), quoted(false) {}
};

using Fields = std::vector<Field>;

// Installs the process-wide logger writing to stderr. Safe to call again (reconfigures).
void setup(Format format, spdlog::level::level_enum level);
// Parses "trace|debug|info|warn|error"; returns false on anything else.
bool parse_level(std::string_view name, spdlog::level::level_enum& out);
bool parse_format(std::string_view name, Format& out);

// Routes libbpf's own messages (warnings, verifier output at debug) through this logger.
void bridge_libbpf();

void write(spdlog::level::level_enum level, std::string_view msg, const Fields& fields = {});
inline void debug(std::string_view msg, const Fields& f = {}) { write(spdlog::level::debug, msg, f); }
inline void info(std::string_view msg, const Fields& f = {}) { write(spdlog::level::info, msg, f); }
inline void warn(std::string_view msg, const Fields& f = {}) { write(spdlog::level::warn, msg, f); }
inline void error(std::string_view msg, const Fields& f = {}) { write(spdlog::level::err, msg, f); }

// Renders one record the way the logger would (without timestamp/level); exposed for tests.
std::string render_payload(Format format, std::string_view msg, const Fields& fields);

}  // namespace podsight::log
