// Logging setup: the JSON or text line layout lives in the spdlog pattern; the payload (message and
// fields) is rendered here so that every value is escaped exactly once.
#include "log/log.hpp"

#include <bpf/libbpf.h>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cstdarg>
#include <cstdio>

namespace podsight::log {
namespace {

std::atomic<Format> g_format{Format::kJson};

std::string json_string(std::string_view s) {
  // nlohmann replaces invalid UTF-8 instead of throwing with error_handler_t::replace, so a comm or
  // path with arbitrary bytes can never break a log line.
  return nlohmann::json(std::string(s)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

bool needs_quotes(std::string_view v) {
  if (v.empty()) return true;
  for (unsigned char c : v) {
    if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c >= 0x7f) return true;
  }
  return false;
}

int libbpf_print(enum libbpf_print_level level, const char* fmt, va_list args) {
  char buf[2048];
  int n = std::vsnprintf(buf, sizeof buf, fmt, args);
  if (n < 0) return 0;
  std::string_view line(buf, std::min<std::size_t>(static_cast<std::size_t>(n), sizeof buf - 1));
  while (!line.empty() && (line.back() == '\n' || line.back() == ' ')) line.remove_suffix(1);
  if (line.empty()) return 0;
  spdlog::level::level_enum lvl = spdlog::level::debug;
  if (level == LIBBPF_WARN) lvl = spdlog::level::warn;
  if (level == LIBBPF_INFO) lvl = spdlog::level::info;
  write(lvl, line, {{"component", "libbpf"}});
  return n;
}

}  // namespace

std::string render_payload(Format format, std::string_view msg, const Fields& fields) {
  std::string out;
  if (format == Format::kJson) {
    out += "\"msg\":";
    out += json_string(msg);
    for (const auto& f : fields) {
      out += ',';
      out += json_string(f.key);
      out += ':';
      out += f.quoted ? json_string(f.value) : f.value;
    }
  } else {
    out += msg;
    for (const auto& f : fields) {
      out += ' ';
      out += f.key;
      out += '=';
      out += (f.quoted && needs_quotes(f.value)) ? json_string(f.value) : f.value;
    }
  }
  return out;
}

void setup(Format format, spdlog::level::level_enum level) {
  auto logger = spdlog::get("podsight");
  if (!logger) {
    logger = spdlog::stderr_logger_mt("podsight");
    spdlog::set_default_logger(logger);
  }
  g_format = format;
  if (format == Format::kJson) {
    logger->set_pattern(R"({"ts":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l",%v})", spdlog::pattern_time_type::utc);
  } else {
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %-5l %v", spdlog::pattern_time_type::utc);
  }
  logger->set_level(level);
  logger->flush_on(spdlog::level::trace);
}

bool parse_level(std::string_view name, spdlog::level::level_enum& out) {
  static constexpr std::pair<std::string_view, spdlog::level::level_enum> kLevels[] = {
      {"trace", spdlog::level::trace}, {"debug", spdlog::level::debug}, {"info", spdlog::level::info},
      {"warn", spdlog::level::warn},   {"error", spdlog::level::err},
  };
  for (const auto& [n, l] : kLevels) {
    if (n == name) {
      out = l;
      return true;
    }
  }
  return false;
}

bool parse_format(std::string_view name, Format& out) {
  if (name == "json") {
    out = Format::kJson;
  } else if (name == "text") {
    out = Format::kText;
  } else {
    return false;
  }
  return true;
}

void bridge_libbpf() { libbpf_set_print(libbpf_print); }

void write(spdlog::level::level_enum level, std::string_view msg, const Fields& fields) {
  auto* logger = spdlog::default_logger_raw();
  if (logger == nullptr || !logger->should_log(level)) return;
  logger->log(level, "{}", render_payload(g_format.load(std::memory_order_relaxed), msg, fields));
}

}  // namespace podsight::log
