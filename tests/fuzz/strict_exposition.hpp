// A strict reader of Prometheus text 0.0.4 and OpenMetrics 1.0.0, the oracle of the exposition fuzz
// target and of tests: it accepts exactly what a careful encoder writes (stricter than Prometheus where
// the formats leave room) and names the first line that breaks a rule. It shares no code with
// agent/metrics, so a bug there cannot hide itself here.
#pragma once

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace podsight::testing {

struct ParsedSample {
  std::string name;                                         // as written, suffix included
  std::vector<std::pair<std::string, std::string>> labels;  // unescaped, in written order
  double value = 0;
  std::optional<std::int64_t> timestamp_ms;  // OpenMetrics seconds are converted back exactly
};

struct ParsedFamily {
  std::string name;  // as in # TYPE
  std::string type;
  std::optional<std::string> help;  // unescaped
  std::vector<ParsedSample> samples;
};

struct ParsedExposition {
  std::vector<ParsedFamily> families;
  std::string error;  // "line N: why"; empty when the text is valid
  [[nodiscard]] bool ok() const { return error.empty(); }
};

namespace strict_detail {

inline bool utf8_valid(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t len = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    }
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > s.size()) return false;
    for (std::size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    const std::uint32_t min = len == 2 ? 0x80 : len == 3 ? 0x800 : 0x10000;
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

inline bool metric_name_valid(std::string_view n) {
  if (n.empty()) return false;
  for (std::size_t i = 0; i < n.size(); ++i) {
    const char c = n[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

inline bool label_name_valid(std::string_view n) {
  if (n.empty() || n.starts_with("__")) return false;  // "__" names are reserved for Prometheus
  for (std::size_t i = 0; i < n.size(); ++i) {
    const char c = n[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

inline bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// NaN, +Inf, -Inf or -?D+(.D+)?(e[+-]D+)?: the spellings a shortest-round-trip writer produces.
inline std::optional<double> parse_value(std::string_view s) {
  if (s == "NaN") return std::nan("");
  if (s == "+Inf") return HUGE_VAL;
  if (s == "-Inf") return -HUGE_VAL;
  std::string_view r = s;
  if (r.starts_with('-')) r.remove_prefix(1);
  const auto e = r.find('e');
  std::string_view mant = r.substr(0, e);
  const auto dot = mant.find('.');
  if (!all_digits(mant.substr(0, dot))) return std::nullopt;
  if (dot != std::string_view::npos && !all_digits(mant.substr(dot + 1))) return std::nullopt;
  if (e != std::string_view::npos) {
    std::string_view ex = r.substr(e + 1);
    if (ex.empty() || (ex[0] != '+' && ex[0] != '-') || !all_digits(ex.substr(1))) return std::nullopt;
  }
  const std::string copy(s);
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(copy.c_str(), &end);
  if (end != copy.c_str() + copy.size()) return std::nullopt;
  return v;  // overflow to +-HUGE_VAL is reported by the caller comparing with what was encoded
}

// -?D+ within int64 (text 0.0.4 timestamps are milliseconds).
inline std::optional<std::int64_t> parse_int64(std::string_view s) {
  const bool neg = s.starts_with('-');
  if (neg) s.remove_prefix(1);
  if (!all_digits(s) || s.size() > 19) return std::nullopt;
  unsigned __int128 mag = 0;
  for (char c : s) mag = mag * 10 + static_cast<unsigned>(c - '0');
  if (mag > (neg ? static_cast<unsigned __int128>(INT64_MAX) + 1 : INT64_MAX)) return std::nullopt;
  return neg ? static_cast<std::int64_t>(-static_cast<__int128>(mag)) : static_cast<std::int64_t>(mag);
}

// -?D+(.D{1,3})? seconds, exactly a whole number of milliseconds, without trailing zeros in the
// fraction (OpenMetrics timestamps as podsight writes them).
inline std::optional<std::int64_t> parse_seconds_as_ms(std::string_view s) {
  const bool neg = s.starts_with('-');
  if (neg) s.remove_prefix(1);
  const auto dot = s.find('.');
  std::string_view whole = s.substr(0, dot);
  std::string_view frac = dot == std::string_view::npos ? std::string_view{} : s.substr(dot + 1);
  if (!all_digits(whole) || whole.size() > 19) return std::nullopt;
  if (dot != std::string_view::npos && (!all_digits(frac) || frac.size() > 3 || frac.back() == '0')) {
    return std::nullopt;
  }
  unsigned __int128 ms = 0;
  for (char c : whole) ms = ms * 10 + static_cast<unsigned>(c - '0');
  unsigned scale = 100;
  unsigned f = 0;
  for (char c : frac) {
    f += static_cast<unsigned>(c - '0') * scale;
    scale /= 10;
  }
  ms = ms * 1000 + f;
  if (ms > (neg ? static_cast<unsigned __int128>(INT64_MAX) + 1 : INT64_MAX)) return std::nullopt;
  return neg ? static_cast<std::int64_t>(-static_cast<__int128>(ms)) : static_cast<std::int64_t>(ms);
}

// Unescapes HELP text or a label value. `quote_escapes`: \" is an escape and a raw " is an error
// (label values in both formats, OpenMetrics HELP); otherwise only \\ and \n are escapes.
inline std::optional<std::string> unescape(std::string_view s, bool quote_escapes) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '"' && quote_escapes) return std::nullopt;
    if (c != '\\') {
      out += c;
      continue;
    }
    if (++i == s.size()) return std::nullopt;
    switch (s[i]) {
      case '\\':
        out += '\\';
        break;
      case 'n':
        out += '\n';
        break;
      case '"':
        if (!quote_escapes) return std::nullopt;
        out += '"';
        break;
      default:
        return std::nullopt;
    }
  }
  return out;
}

// The sample-name suffixes a family of `type` may use.
inline std::vector<std::string_view> suffixes(std::string_view type, bool om) {
  if (type == "counter")
    return om ? std::vector<std::string_view>{"_total", "_created"} : std::vector<std::string_view>{""};
  if (type == "info") return {"_info"};
  if (type == "summary")
    return om ? std::vector<std::string_view>{"", "_sum", "_count", "_created"}
              : std::vector<std::string_view>{"", "_sum", "_count"};
  if (type == "histogram")
    return om ? std::vector<std::string_view>{"_bucket", "_sum", "_count", "_created"}
              : std::vector<std::string_view>{"_bucket", "_sum", "_count"};
  return {""};  // gauge, untyped, unknown
}

class Reader {
 public:
  Reader(std::string_view text, bool om) : text_(text), om_(om) {}

  ParsedExposition run() {
    ParsedExposition out;
    if (!utf8_valid(text_)) return fail(out, 0, "not valid UTF-8");
    if (!text_.empty() && text_.back() != '\n') return fail(out, 0, "does not end with a newline");
    std::size_t line_no = 0;
    std::size_t pos = 0;
    bool eof = false;
    std::optional<std::pair<std::string, std::string>> pending_help;
    while (pos < text_.size()) {
      const auto nl = text_.find('\n', pos);
      const std::string_view line = text_.substr(pos, nl - pos);
      pos = nl + 1;
      ++line_no;
      if (eof) return fail(out, line_no, "text after # EOF");
      if (line.empty()) return fail(out, line_no, "empty line");
      if (line.starts_with('#')) {
        if (om_ && line == "# EOF") {
          if (pending_help) return fail(out, line_no, "# HELP without # TYPE");
          eof = true;
          continue;
        }
        std::string why = comment(line, out, pending_help);
        if (!why.empty()) return fail(out, line_no, why);
        continue;
      }
      if (pending_help) return fail(out, line_no, "# HELP not followed by # TYPE");
      std::string why = sample(line, out);
      if (!why.empty()) return fail(out, line_no, why);
    }
    if (pending_help) return fail(out, line_no, "# HELP without # TYPE");
    if (om_ && !eof) return fail(out, line_no, "OpenMetrics text without # EOF");
    if (!out.families.empty()) {
      std::string why = close_family(out.families.back());
      if (!why.empty()) return fail(out, line_no, why);
    }
    return out;
  }

 private:
  static ParsedExposition& fail(ParsedExposition& out, std::size_t line, const std::string& why) {
    out.error = "line " + std::to_string(line) + ": " + why;
    return out;
  }

  std::string comment(std::string_view line, ParsedExposition& out,
                      std::optional<std::pair<std::string, std::string>>& pending_help) {
    const bool help = line.starts_with("# HELP ");
    if (!help && !line.starts_with("# TYPE ")) return "comment that is neither # HELP nor # TYPE";
    std::string_view rest = line.substr(7);
    const auto sp = rest.find(' ');
    if (sp == std::string_view::npos) return "no space after the metric name";
    const std::string name(rest.substr(0, sp));
    const std::string_view arg = rest.substr(sp + 1);
    if (!metric_name_valid(name)) return "invalid metric name '" + name + "'";
    if (help) {
      if (pending_help) return "two # HELP lines in a row";
      auto text = unescape(arg, om_);
      if (!text) return "badly escaped # HELP text";
      pending_help.emplace(name, std::move(*text));
      return {};
    }
    static const std::set<std::string_view> kText{"counter", "gauge", "histogram", "summary", "untyped"};
    static const std::set<std::string_view> kOm{"counter",  "gauge", "histogram", "gaugehistogram",
                                                "stateset", "info",  "summary",   "unknown"};
    if ((om_ ? kOm : kText).count(arg) == 0) return "unknown type '" + std::string(arg) + "'";
    if (pending_help && pending_help->first != name) return "# HELP and # TYPE name different metrics";
    if (!families_seen_.insert(name).second) return "second # TYPE for " + name;
    if (om_ && arg == "counter" && name.ends_with("_total"))
      return "OpenMetrics counter family named with _total";
    if (!out.families.empty()) {
      std::string why = close_family(out.families.back());
      if (!why.empty()) return why;
    }
    ParsedFamily f;
    f.name = name;
    f.type = std::string(arg);
    if (pending_help) f.help = std::move(pending_help->second);
    pending_help.reset();
    out.families.push_back(std::move(f));
    series_seen_.clear();
    return {};
  }

  std::string sample(std::string_view line, ParsedExposition& out) {
    if (out.families.empty()) return "sample before any # TYPE";
    ParsedFamily& fam = out.families.back();
    ParsedSample s;
    std::size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    s.name = std::string(line.substr(0, i));
    if (!metric_name_valid(s.name)) return "invalid sample name '" + s.name + "'";
    std::string_view suffix;
    bool belongs = false;
    for (auto sfx : suffixes(fam.type, om_)) {
      if (s.name.size() == fam.name.size() + sfx.size() && s.name.starts_with(fam.name) &&
          s.name.ends_with(sfx)) {
        belongs = true;
        suffix = sfx;
      }
    }
    if (!belongs)
      return "sample " + s.name + " does not belong to family " + fam.name + " (" + fam.type + ")";
    if (i < line.size() && line[i] == '{') {
      std::string why = labels(line, i, s);
      if (!why.empty()) return why;
    }
    if (i >= line.size() || line[i] != ' ') return "no space before the value";
    ++i;
    const auto sp = line.find(' ', i);
    const std::string_view value =
        line.substr(i, sp == std::string_view::npos ? std::string_view::npos : sp - i);
    auto v = parse_value(value);
    if (!v) return "invalid value '" + std::string(value) + "'";
    s.value = *v;
    if (sp != std::string_view::npos) {
      const std::string_view ts = line.substr(sp + 1);
      s.timestamp_ms = om_ ? parse_seconds_as_ms(ts) : parse_int64(ts);
      if (!s.timestamp_ms) return "invalid timestamp '" + std::string(ts) + "'";
    }
    // Labels that only some sample kinds carry.
    bool has_le = false;
    bool has_quantile = false;
    for (const auto& [k, val] : s.labels) {
      if (k == "le") {
        has_le = true;
        if (!parse_value(val)) return "le=\"" + val + "\" is not a number";
      }
      if (k == "quantile") {
        has_quantile = true;
        auto q = parse_value(val);
        if (!q || !(*q >= 0 && *q <= 1)) return "quantile=\"" + val + "\" is not in [0, 1]";
      }
    }
    const bool bucket = fam.type == "histogram" && suffix == "_bucket";
    const bool quantile = fam.type == "summary" && suffix.empty();
    if (has_le != bucket) return bucket ? "bucket without le" : "le on a sample that is not a bucket";
    if (has_quantile != quantile)
      return quantile ? "summary sample without quantile" : "unexpected quantile label";
    if (om_ && fam.type == "counter" && suffix == "_total" && (std::isnan(s.value) || s.value < 0)) {
      return "OpenMetrics counter total is negative or NaN";
    }
    if (om_ && fam.type == "info" && s.value != 1) return "info sample value is not 1";
    auto sorted = s.labels;
    std::sort(sorted.begin(), sorted.end());
    std::string key = s.name;
    for (const auto& [k, val] : sorted) key += '\0' + k + '\0' + val;
    if (!series_seen_.insert(key).second) return "duplicate series " + s.name;
    fam.samples.push_back(std::move(s));
    return {};
  }

  std::string labels(std::string_view line, std::size_t& i, ParsedSample& s) {
    ++i;  // '{'
    std::set<std::string> names;
    for (;;) {
      const auto eq = line.find('=', i);
      if (eq == std::string_view::npos) return "label without '='";
      std::string name(line.substr(i, eq - i));
      if (!label_name_valid(name)) return "invalid label name '" + name + "'";
      if (!names.insert(name).second) return "label " + name + " twice";
      i = eq + 1;
      if (i >= line.size() || line[i] != '"') return "label value not quoted";
      const std::size_t start = ++i;
      while (i < line.size() && line[i] != '"') i += line[i] == '\\' ? 2 : 1;
      if (i >= line.size()) return "unterminated label value";
      auto value = unescape(line.substr(start, i - start), true);
      if (!value) return "badly escaped label value";
      s.labels.emplace_back(std::move(name), std::move(*value));
      ++i;  // closing quote
      if (i < line.size() && line[i] == ',') {
        ++i;
        if (i < line.size() && line[i] == '}') return "trailing comma in labels";
        continue;
      }
      if (i < line.size() && line[i] == '}') {
        ++i;
        return {};
      }
      return "expected ',' or '}' after a label";
    }
  }

  // Histogram consistency per series: ascending le ending in +Inf, non-decreasing counts, _count equal
  // to the +Inf bucket. Summaries need _sum and _count.
  static std::string close_family(const ParsedFamily& f) {
    if (f.samples.empty()) return "family " + f.name + " has no samples";
    if (f.type != "histogram" && f.type != "summary") return {};
    struct Series {
      std::vector<std::pair<double, double>> buckets;
      std::optional<double> count;
      bool sum = false;
    };
    std::map<std::vector<std::pair<std::string, std::string>>, Series> series;
    for (const auto& s : f.samples) {
      std::vector<std::pair<std::string, std::string>> key;
      std::optional<double> le;
      for (const auto& l : s.labels) {
        if (l.first == "le") {
          le = parse_value(l.second);
        } else if (l.first != "quantile") {
          key.push_back(l);
        }
      }
      std::sort(key.begin(), key.end());
      auto& ser = series[key];
      const std::string_view sfx = std::string_view(s.name).substr(f.name.size());
      if (sfx == "_bucket") ser.buckets.emplace_back(*le, s.value);
      if (sfx == "_count") ser.count = s.value;
      if (sfx == "_sum") ser.sum = true;
    }
    for (const auto& [key, ser] : series) {
      if (!ser.count || !ser.sum) return f.name + ": series without _count or _sum";
      if (f.type == "summary") continue;
      if (ser.buckets.empty() || ser.buckets.back().first != HUGE_VAL)
        return f.name + ": no +Inf bucket last";
      for (std::size_t k = 1; k < ser.buckets.size(); ++k) {
        if (!(ser.buckets[k].first > ser.buckets[k - 1].first)) return f.name + ": le not ascending";
        if (ser.buckets[k].second < ser.buckets[k - 1].second) return f.name + ": bucket counts decrease";
      }
      if (ser.buckets.back().second != *ser.count) return f.name + ": +Inf bucket differs from _count";
    }
    return {};
  }

  std::string_view text_;
  bool om_;
  std::set<std::string> families_seen_;
  std::set<std::string> series_seen_;
};

}  // namespace strict_detail

// Parses `text` as OpenMetrics 1.0.0 (`openmetrics`) or text 0.0.4 and checks every rule above.
inline ParsedExposition parse_exposition_strictly(std::string_view text, bool openmetrics) {
  return strict_detail::Reader(text, openmetrics).run();
}

}  // namespace podsight::testing
