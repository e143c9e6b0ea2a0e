// Prometheus exposition: writes text 0.0.4 / OpenMetrics 1.0.0 bytes and negotiates between them.
#include "metrics/exposition.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

namespace podsight::metrics {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

// ---------------------------------------------------------------------------------------------------
// UTF-8

// Length of the well-formed UTF-8 sequence at p[0..n), n >= 1; 0 when p[0] does not start one.
// Ranges are those of Unicode Table 3-7, which rule out overlongs, surrogates and > U+10FFFF by
// construction, so no code point is ever assembled.
std::size_t utf8_sequence_length(const unsigned char* p, std::size_t n) noexcept {
  const unsigned char b0 = p[0];
  const auto in = [p, n](std::size_t i, unsigned lo, unsigned hi) {
    return i < n && p[i] >= lo && p[i] <= hi;
  };
  if (b0 < 0x80) return 1;
  if (b0 < 0xC2) return 0;  // stray continuation byte, or C0/C1 which only start overlongs
  if (b0 < 0xE0) return in(1, 0x80, 0xBF) ? 2 : 0;
  if (b0 < 0xF0) {
    const unsigned lo = b0 == 0xE0 ? 0xA0 : 0x80;  // E0 80..9F xx would be overlong
    const unsigned hi = b0 == 0xED ? 0x9F : 0xBF;  // ED A0..BF xx would be a surrogate
    return in(1, lo, hi) && in(2, 0x80, 0xBF) ? 3 : 0;
  }
  if (b0 < 0xF5) {
    const unsigned lo = b0 == 0xF0 ? 0x90 : 0x80;  // F0 80..8F xx xx would be overlong
    const unsigned hi = b0 == 0xF4 ? 0x8F : 0xBF;  // F4 90.. xx xx would be above U+10FFFF
    return in(1, lo, hi) && in(2, 0x80, 0xBF) && in(3, 0x80, 0xBF) ? 4 : 0;
  }
  return 0;
}

// ---------------------------------------------------------------------------------------------------
// Escaping

// What a string is escaped for. Every mode also replaces bytes outside well-formed UTF-8.
enum class Escape {
  kNone,      // sanitize_utf8
  kTextHelp,  // text 0.0.4 HELP: only \ and LF are escapes there; a \" would be read back verbatim
  kQuoted,    // label values (both formats) and OpenMetrics HELP, whose escaped-string excludes '"'
};

// Worst-case growth: an invalid byte becomes "\\xNN" (five bytes) once its backslash is escaped.
constexpr std::size_t kMaxEscapedPerByte = 5;
static_assert(max_label_value_size(1) == kMaxEscapedPerByte);

template <Escape E>
constexpr bool byte_special(unsigned char c) {
  if (c >= 0x80) return true;
  if constexpr (E == Escape::kNone) return false;
  if (c == '\\' || c == '\n') return true;
  return E == Escape::kQuoted && c == '"';
}

// Whether any of the 8 bytes in `w` is special: the classic "has a zero byte" bit trick applied to
// w XOR the byte sought. It may flag the wrong byte within the word but never misses one, and the
// caller then looks at the bytes one by one.
template <Escape E>
bool word_special(std::uint64_t w) {
  constexpr std::uint64_t kOnes = 0x0101010101010101ULL;
  constexpr std::uint64_t kHigh = 0x8080808080808080ULL;
  const auto has = [w](unsigned char c) {
    const std::uint64_t x = w ^ (kOnes * c);
    return (x - kOnes) & ~x & kHigh;
  };
  std::uint64_t hit = w & kHigh;
  if constexpr (E != Escape::kNone) hit |= has('\\') | has('\n');
  if constexpr (E == Escape::kQuoted) hit |= has('"');
  return hit != 0;
}

std::uint64_t load_word(const unsigned char* p) {
  std::uint64_t w;
  std::memcpy(&w, p, sizeof w);
  return w;
}

// Whether p[i..n), shorter than a word, holds a special byte. Strings of a word or more re-read their
// last 8 bytes (the overlap was scanned already; if it held a special byte, the caller merely takes
// the slow path for nothing); shorter ones are gathered with 4/2/1-byte loads. Byte order inside the
// word is irrelevant to the test.
template <Escape E>
bool tail_special(const unsigned char* p, std::size_t i, std::size_t n) {
  if (n >= 8) return word_special<E>(load_word(p + n - 8));
  const unsigned char* q = p + i;
  const std::size_t k = n - i;
  std::uint64_t w = 0;
  if (k & 4) {
    std::uint32_t x;
    std::memcpy(&x, q, 4);
    w = x;
    q += 4;
  }
  if (k & 2) {
    std::uint16_t x;
    std::memcpy(&x, q, 2);
    w = (w << 16) | x;
    q += 2;
  }
  if (k & 1) w = (w << 8) | *q;
  return word_special<E>(w);
}

// Copies `s` to `dst`, which has room for kMaxEscapedPerByte * s.size() bytes, escaping per E and
// replacing every byte outside well-formed UTF-8 by "\xNN". Returns the end of what was written.
// Unflagged runs are copied whole, so an ordinary value costs a word-wise scan and one memcpy.
template <Escape E>
char* write_escaped(char* dst, std::string_view s) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  std::size_t run = 0;  // start of the bytes not copied yet
  std::size_t i = 0;
  while (true) {
    while (n - i >= 8 && !word_special<E>(load_word(p + i))) i += 8;
    if (i >= n || (n - i < 8 && !tail_special<E>(p, i, n))) break;
    const unsigned char c = p[i];
    if (!byte_special<E>(c)) {
      ++i;
      continue;
    }
    if (c >= 0x80) {
      const std::size_t len = utf8_sequence_length(p + i, n - i);
      if (len != 0) {
        i += len;
        continue;
      }
    }
    if (i > run) std::memcpy(dst, p + run, i - run);
    dst += i - run;
    *dst++ = '\\';
    switch (c) {
      case '\\':
        *dst++ = '\\';
        break;
      case '\n':
        *dst++ = 'n';
        break;
      case '"':
        *dst++ = '"';
        break;
      default:
        // The replacement's backslash is itself escaped where backslashes are, so that a reader
        // unescaping the value gets exactly what sanitize_utf8 returns.
        if constexpr (E != Escape::kNone) *dst++ = '\\';
        *dst++ = 'x';
        *dst++ = "0123456789ABCDEF"[c >> 4];
        *dst++ = "0123456789ABCDEF"[c & 0xF];
        break;
    }
    run = ++i;
  }
  // Everything from `run` on is clean, whether the scan stopped at the end or at a clean tail.
  if (n > run) std::memcpy(dst, p + run, n - run);
  return dst + (n - run);
}

// Index of the first byte of `s` that is not part of a well-formed sequence, or s.size().
std::size_t first_invalid_utf8(std::string_view s) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  std::size_t i = 0;
  while (true) {
    while (n - i >= 8 && !word_special<Escape::kNone>(load_word(p + i))) i += 8;
    if (i >= n || (n - i < 8 && !tail_special<Escape::kNone>(p, i, n))) return n;
    if (p[i] < 0x80) {
      ++i;
      continue;
    }
    const std::size_t len = utf8_sequence_length(p + i, n - i);
    if (len == 0) return i;
    i += len;
  }
}

// ---------------------------------------------------------------------------------------------------
// Numbers. Each writer needs at most kMaxNumber bytes of room.

constexpr std::size_t kMaxNumber = 32;

char* write_int(char* d, std::int64_t v) { return std::to_chars(d, d + kMaxNumber, v).ptr; }

char* write_uint(char* d, std::uint64_t v) { return std::to_chars(d, d + kMaxNumber, v).ptr; }

char* write_literal(char* d, std::string_view s) {
  std::memcpy(d, s.data(), s.size());
  return d + s.size();
}

char* write_double(char* d, double v) {
  if (std::isnan(v)) return write_literal(d, "NaN");
  if (std::isinf(v)) return write_literal(d, v > 0 ? "+Inf" : "-Inf");
  // Counts are the common case; to_chars' shortest form would turn 10^15 into "1e+15", so integral
  // values within int64 go through the integer path. -0.0 keeps its sign via the float path.
  if (v >= -0x1p63 && v < 0x1p63 && v == std::trunc(v) && !(v == 0 && std::signbit(v))) {
    return write_int(d, static_cast<std::int64_t>(v));
  }
  return std::to_chars(d, d + kMaxNumber, v).ptr;
}

// "le" and "quantile" values are label values, so their spelling identifies a series. OpenMetrics'
// canonical form gives integral thresholds a ".0" (as the Go client does); text 0.0.4 clients write
// them like any value.
char* write_threshold(char* d, double v, Format format) {
  char* end = write_double(d, v);
  if (format != Format::kOpenMetrics100 || !std::isfinite(v)) return end;
  if (std::string_view(d, static_cast<std::size_t>(end - d)).find_first_of(".e") != std::string_view::npos) {
    return end;
  }
  return write_literal(end, ".0");
}

// OpenMetrics timestamps are seconds. Printing ms / 1000 in decimal keeps it exact, where a division
// in double would not be.
char* write_seconds_from_ms(char* d, std::int64_t ms) {
  std::uint64_t mag = static_cast<std::uint64_t>(ms);
  if (ms < 0) {
    *d++ = '-';
    mag = 0 - mag;
  }
  d = write_uint(d, mag / 1000);
  const auto frac = static_cast<unsigned>(mag % 1000);
  if (frac == 0) return d;
  char digits[4] = {'.', static_cast<char>('0' + frac / 100), static_cast<char>('0' + frac / 10 % 10),
                    static_cast<char>('0' + frac % 10)};
  std::size_t len = 4;
  while (digits[len - 1] == '0') --len;
  std::memcpy(d, digits, len);
  return d + len;
}

// ---------------------------------------------------------------------------------------------------
// Encoder

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// The output string used as a raw buffer: callers ask for room for a whole line at once (a worst-case
// bound), then write through a pointer. That keeps per-byte work free of std::string's checks and
// out-of-line calls, which otherwise cost more than the encoding itself.
class Buffer {
 public:
  explicit Buffer(std::string& s) : s_(s), original_size_(s.size()), used_(s.size()) {}
  // Hands the bytes written so far to `drain` whenever they reach `piece` bytes, then reuses `s`.
  Buffer(std::string& s, const Writer& drain, std::size_t piece)
      : s_(s), original_size_(s.size()), used_(s.size()), drain_(&drain), piece_(std::max<std::size_t>(piece, 1)) {}

  // Where to write up to `n` bytes; valid until the next call. Every caller commits what it wrote
  // before it asks again, so what is handed to the drain here is whole lines.
  char* room(std::size_t n) {
    if (drain_ != nullptr && used_ >= piece_) drain();
    if (s_.size() - used_ < n) s_.resize(std::max(2 * s_.size(), used_ + n));
    return s_.data() + used_;
  }
  void commit(const char* end) { used_ = static_cast<std::size_t>(end - s_.data()); }

  void finish() {
    if (drain_ != nullptr && used_ > 0) drain();
    s_.resize(used_);
  }
  void abandon() { s_.resize(original_size_); }

 private:
  void drain() {
    (*drain_)(std::string_view(s_.data(), used_));
    used_ = 0;
  }

  std::string& s_;
  std::size_t original_size_;
  std::size_t used_;
  const Writer* drain_ = nullptr;
  std::size_t piece_ = 0;
};

// Size of a series' label block as written when nothing needs escaping.
std::size_t plain_labels_size(const ClientMetric& m) {
  std::size_t size = 2;
  for (const auto& l : m.label) size += l.name.size() + l.value.size() + 4;
  return size;
}

// A first guess at the output size, so that a big scrape is mostly written into one allocation.
// It extrapolates from each family's first series instead of walking every label: that walk would
// cost as much as a good part of the encoding. Misses are covered by Buffer's doubling.
std::size_t estimate_classic(const std::string& name, const std::string& help, MetricType type,
                             const std::vector<ClientMetric>& metric) {
  if (metric.empty()) return 0;
  const ClientMetric& first = metric.front();
  std::size_t lines = 1;
  if (type == MetricType::Histogram) lines = first.histogram.bucket.size() + 3;
  if (type == MetricType::Summary) lines = first.summary.quantile.size() + 2;
  const std::size_t line = name.size() + plain_labels_size(first) + 24;
  return 2 * name.size() + help.size() + 32 + metric.size() * lines * (line + 8);
}

std::size_t estimate_size(const std::vector<MetricFamily>& families) {
  std::size_t total = 0;
  for (const auto& f : families) total += estimate_classic(f.name, f.help, f.type, f.metric);
  return total;
}

// Compact series are exact: their label blocks are already written.
std::size_t estimate_size(const Families& families) {
  std::size_t total = 0;
  for (const auto& f : families) {
    total += estimate_classic(f.name, f.help, f.type, f.metric);
    if (!f.series.empty()) total += 2 * f.name.size() + f.help.size() + 32;
    total += f.labels.size() + f.series.size() * (f.name.size() + 24);
  }
  return total;
}

class Encoder {
 public:
  Encoder(Buffer& buf, Format format) : buf_(buf), format_(format) {}

  void family(const MetricFamily& f) {
    // A family without series carries nothing to scrape, and the Go client refuses to write such
    // families; drop them in both formats.
    if (f.metric.empty()) return;
    const Header h = header(f.name, f.help, f.type);
    for (const auto& m : f.metric) classic(h, f.type, m);
  }

  void family(const Family& f) {
    if (f.size() == 0) return;
    const Header h = header(f.name, f.help, f.type);
    for (const auto& s : f.series) compact(h, f.type, f.label_block(s), s.value);
    for (const auto& m : f.metric) classic(h, f.type, m);
  }

 private:
  struct Header {
    std::string_view name;  // as the samples use it, before their suffix
    bool info = false;      // an OpenMetrics info family: "_info" samples with value 1
  };

  // Writes HELP and TYPE and returns the family name the samples start with.
  Header header(std::string_view name, const std::string& help, MetricType t) {
    const bool om = format_ == Format::kOpenMetrics100;
    std::string_view type;
    bool info = false;
    switch (t) {
      case MetricType::Counter:
        // OpenMetrics names the family without the suffix that its samples carry.
        if (om && ends_with(name, "_total")) name.remove_suffix(6);
        type = "counter";
        break;
      case MetricType::Gauge:
        info = om && name.size() > 5 && ends_with(name, "_info");
        if (info) name.remove_suffix(5);
        type = info ? "info" : "gauge";
        break;
      case MetricType::Summary:
        type = "summary";
        break;
      case MetricType::Histogram:
        type = "histogram";
        break;
      case MetricType::Untyped:
      default:
        type = om ? "unknown" : "untyped";
        break;
    }

    char* d = buf_.room(2 * name.size() + kMaxEscapedPerByte * help.size() + 32);
    if (!help.empty()) {
      d = write_literal(d, "# HELP ");
      d = write_literal(d, name);
      *d++ = ' ';
      d = om ? write_escaped<Escape::kQuoted>(d, help) : write_escaped<Escape::kTextHelp>(d, help);
      *d++ = '\n';
    }
    d = write_literal(d, "# TYPE ");
    d = write_literal(d, name);
    *d++ = ' ';
    d = write_literal(d, type);
    *d++ = '\n';
    buf_.commit(d);
    return {name, info};
  }

  // The suffix of a counter's or gauge's sample name.
  std::string_view suffix(const Header& h, MetricType type) const {
    if (type == MetricType::Counter) return format_ == Format::kOpenMetrics100 ? "_total" : "";
    if (type == MetricType::Gauge && h.info) return "_info";
    return "";
  }

  // One sample line from a pre-rendered label block (FamilyBuilder: counters and gauges only).
  void compact(const Header& h, MetricType type, std::string_view block, double value) {
    const std::string_view sfx = suffix(h, type);
    char* d = buf_.room(h.name.size() + sfx.size() + block.size() + kMaxNumber + 2);
    d = write_literal(d, h.name);
    d = write_literal(d, sfx);
    d = write_literal(d, block);
    *d++ = ' ';
    // An OpenMetrics info sample's value is 1 by definition.
    d = h.info ? write_literal(d, "1") : write_double(d, value);
    *d++ = '\n';
    buf_.commit(d);
  }

  void classic(const Header& h, MetricType type, const ClientMetric& m) {
    labels_room_ = 2;
    for (const auto& l : m.label) labels_room_ += l.name.size() + kMaxEscapedPerByte * l.value.size() + 4;
    char* d = nullptr;
    switch (type) {
      case MetricType::Counter:
        d = start(h.name, suffix(h, type), m);
        d = write_double(d, m.counter.value);
        finish(d, m);
        break;
      case MetricType::Gauge:
        d = start(h.name, suffix(h, type), m);
        d = h.info ? write_literal(d, "1") : write_double(d, m.gauge.value);
        finish(d, m);
        break;
      case MetricType::Summary:
        summary(h.name, m);
        break;
      case MetricType::Histogram:
        histogram(h.name, m);
        break;
      case MetricType::Untyped:
      default:
        d = start(h.name, "", m);
        d = write_double(d, m.untyped.value);
        finish(d, m);
        break;
    }
  }

  // Makes room for a whole sample line and writes `name``suffix`{labels[,extra="threshold"]} and the
  // space before the value; returns where the value goes.
  char* start(std::string_view name, std::string_view suffix, const ClientMetric& m,
              std::string_view extra_label = {}, double threshold = 0) {
    const std::size_t extra_room = extra_label.empty() ? 0 : extra_label.size() + kMaxNumber + 8;
    // name, suffix, labels, value, timestamp, separators
    char* d = buf_.room(name.size() + suffix.size() + labels_room_ + extra_room + 3 * kMaxNumber + 4);
    d = write_literal(d, name);
    d = write_literal(d, suffix);
    if (!m.label.empty() || !extra_label.empty()) {
      *d++ = '{';
      bool first = true;
      for (const auto& l : m.label) {
        if (!first) *d++ = ',';
        first = false;
        d = write_literal(d, l.name);
        *d++ = '=';
        *d++ = '"';
        d = write_escaped<Escape::kQuoted>(d, l.value);
        *d++ = '"';
      }
      if (!extra_label.empty()) {
        if (!first) *d++ = ',';
        d = write_literal(d, extra_label);
        *d++ = '=';
        *d++ = '"';
        d = write_threshold(d, threshold, format_);
        *d++ = '"';
      }
      *d++ = '}';
    }
    *d++ = ' ';
    return d;
  }

  // Ends the line that start() began, after its value.
  void finish(char* d, const ClientMetric& m) {
    if (m.timestamp_ms != 0) {
      *d++ = ' ';
      d = format_ == Format::kOpenMetrics100 ? write_seconds_from_ms(d, m.timestamp_ms)
                                             : write_int(d, m.timestamp_ms);
    }
    *d++ = '\n';
    buf_.commit(d);
  }

  void summary(std::string_view name, const ClientMetric& m) {
    for (const auto& q : m.summary.quantile) {
      finish(write_double(start(name, "", m, "quantile", q.quantile), q.value), m);
    }
    finish(write_double(start(name, "_sum", m), m.summary.sample_sum), m);
    finish(write_uint(start(name, "_count", m), m.summary.sample_count), m);
  }

  void histogram(std::string_view name, const ClientMetric& m) {
    constexpr double kInf = std::numeric_limits<double>::infinity();
    const auto& buckets = m.histogram.bucket;
    for (const auto& b : buckets) {
      finish(write_uint(start(name, "_bucket", m, "le", b.upper_bound), b.cumulative_count), m);
    }
    // Both formats require the +Inf bucket; it holds every observation, i.e. the count.
    if (buckets.empty() || buckets.back().upper_bound != kInf) {
      finish(write_uint(start(name, "_bucket", m, "le", kInf), m.histogram.sample_count), m);
    }
    finish(write_double(start(name, "_sum", m), m.histogram.sample_sum), m);
    finish(write_uint(start(name, "_count", m), m.histogram.sample_count), m);
  }

  Buffer& buf_;
  Format format_;
  std::size_t labels_room_ = 0;  // worst-case size of the current series' label block
};

// ---------------------------------------------------------------------------------------------------
// Accept header (RFC 9110 section 12.5.1). Never allocates; every read is bounds-checked.

bool is_tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    char y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

// qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ), as thousandths; -1 when malformed.
int parse_qvalue(std::string_view v) {
  if (v.empty() || v.size() > 5 || (v[0] != '0' && v[0] != '1')) return -1;
  int q = (v[0] - '0') * 1000;
  if (v.size() == 1) return q;
  if (v[1] != '.') return -1;
  int scale = 100;
  for (std::size_t i = 2; i < v.size(); ++i) {
    if (v[i] < '0' || v[i] > '9') return -1;
    q += (v[i] - '0') * scale;
    scale /= 10;
  }
  return q <= 1000 ? q : -1;
}

// Compares a parameter value (a token, or a quoted-string's inside with quoted-pairs) to `want`.
bool param_equals(std::string_view raw, bool quoted, std::string_view want) {
  if (!quoted) return raw == want;
  std::size_t j = 0;
  for (std::size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '\\' && i + 1 < raw.size()) ++i;
    if (j >= want.size() || raw[i] != want[j]) return false;
    ++j;
  }
  return j == want.size();
}

class AcceptParser {
 public:
  explicit AcceptParser(std::string_view s) : s_(s) {}

  // Fills the preferences; false when the header does not follow the grammar.
  bool parse() {
    while (true) {
      skip_ows();
      if (at_end()) return true;
      if (peek() == ',') {  // empty list elements are allowed
        ++i_;
        continue;
      }
      if (!media_range()) return false;
      skip_ows();
      if (at_end()) return true;
      if (peek() != ',') return false;
      ++i_;
    }
  }

  int openmetrics_q() const { return om_q_; }
  // q of the most specific range that covers text/plain, -1 when none does.
  int text_q() const { return text_q_; }

 private:
  bool at_end() const { return i_ >= s_.size(); }
  char peek() const { return s_[i_]; }
  void skip_ows() {
    while (!at_end() && (peek() == ' ' || peek() == '\t')) ++i_;
  }
  std::string_view token() {
    const std::size_t start = i_;
    while (!at_end() && is_tchar(peek())) ++i_;
    return s_.substr(start, i_ - start);
  }
  // At a '"': consumes the quoted-string and sets `inner` to what lies between the quotes.
  bool quoted_string(std::string_view& inner) {
    const std::size_t start = ++i_;
    while (!at_end()) {
      const auto c = static_cast<unsigned char>(peek());
      if (c == '"') {
        inner = s_.substr(start, i_ - start);
        ++i_;
        return true;
      }
      if (c == '\\') {
        ++i_;
        if (at_end()) return false;
        const auto e = static_cast<unsigned char>(peek());
        if (e != '\t' && (e < 0x20 || e == 0x7F)) return false;
      } else if (c != '\t' && (c < 0x20 || c == 0x7F)) {
        return false;
      }
      ++i_;
    }
    return false;  // unterminated
  }

  bool media_range() {
    const std::string_view type = token();
    if (type.empty() || at_end() || peek() != '/') return false;
    ++i_;
    const std::string_view subtype = token();
    if (subtype.empty() || (type == "*" && subtype != "*")) return false;

    int q = 1000;
    bool has_version = false;
    bool version_100 = false;
    while (true) {
      const std::size_t before = i_;
      skip_ows();
      if (at_end() || peek() != ';') {
        i_ = before;
        break;
      }
      ++i_;
      skip_ows();
      if (at_end() || peek() == ';' || peek() == ',') continue;  // empty parameter
      const std::string_view name = token();
      if (name.empty() || at_end() || peek() != '=') return false;
      ++i_;
      if (at_end()) return false;
      std::string_view value;
      bool quoted = false;
      if (peek() == '"') {
        if (!quoted_string(value)) return false;
        quoted = true;
      } else {
        value = token();
        if (value.empty()) return false;
      }
      if (iequals(name, "q")) {
        q = quoted ? -1 : parse_qvalue(value);
        if (q < 0) return false;
      } else if (iequals(name, "version")) {
        has_version = true;
        version_100 = param_equals(value, quoted, "1.0.0");
      }
    }

    if (iequals(type, "application") && iequals(subtype, "openmetrics-text")) {
      if ((!has_version || version_100) && q > om_q_) om_q_ = q;
    } else if (iequals(type, "text") && iequals(subtype, "plain")) {
      rank_text(2, q);
    } else if (iequals(type, "text") && subtype == "*") {
      rank_text(1, q);
    } else if (type == "*") {
      rank_text(0, q);
    }
    return true;
  }

  void rank_text(int specificity, int q) {
    if (specificity > text_specificity_) {
      text_specificity_ = specificity;
      text_q_ = q;
    } else if (specificity == text_specificity_ && q > text_q_) {
      text_q_ = q;
    }
  }

  std::string_view s_;
  std::size_t i_ = 0;
  int om_q_ = -1;
  int text_q_ = -1;
  int text_specificity_ = -1;
};

}  // namespace

Format negotiate(std::string_view accept_header) {
  AcceptParser parser(accept_header);
  if (!parser.parse()) return Format::kText004;
  const int om = parser.openmetrics_q();
  return om > 0 && om > parser.text_q() ? Format::kOpenMetrics100 : Format::kText004;
}

std::string_view content_type(Format format) {
  switch (format) {
    case Format::kOpenMetrics100:
      return "application/openmetrics-text; version=1.0.0; charset=utf-8";
    case Format::kText004:
    default:
      return "text/plain; version=0.0.4; charset=utf-8";
  }
}

namespace {

template <typename Fams>
void encode_into(const Fams& families, Format format, Buffer& buf) {
  Encoder encoder(buf, format);
  for (const auto& f : families) encoder.family(f);
  if (format == Format::kOpenMetrics100) buf.commit(write_literal(buf.room(6), "# EOF\n"));
}

template <typename Fams>
void encode_all(const Fams& families, Format format, std::string& out) {
  Buffer buf(out);
  try {
    buf.room(estimate_size(families));
    encode_into(families, format, buf);
  } catch (...) {
    // Out of memory: leave no half-written scrape behind.
    buf.abandon();
    throw;
  }
  buf.finish();
}

}  // namespace

void encode(const std::vector<prometheus::MetricFamily>& families, Format format, std::string& out) {
  encode_all(families, format, out);
}

void encode(const Families& families, Format format, std::string& out) { encode_all(families, format, out); }

void encode(const Families& families, Format format, const Writer& write, std::size_t piece_bytes) {
  std::string piece;
  piece.reserve(piece_bytes + 4096);
  Buffer buf(piece, write, piece_bytes);
  encode_into(families, format, buf);
  buf.finish();
}

std::size_t encoded_size_estimate(const Families& families) { return estimate_size(families); }

char* write_label_value(char* dst, std::string_view value) noexcept {
  return write_escaped<Escape::kQuoted>(dst, value);
}

bool valid_utf8(std::string_view s) { return first_invalid_utf8(s) == s.size(); }

std::string sanitize_utf8(std::string_view s) {
  const std::size_t bad = first_invalid_utf8(s);
  if (bad == s.size()) return std::string(s);
  // Rare path: size for the worst case, then trim.
  std::string out(bad + kMaxEscapedPerByte * (s.size() - bad), '\0');
  std::memcpy(out.data(), s.data(), bad);
  const char* end = write_escaped<Escape::kNone>(out.data() + bad, s.substr(bad));
  out.resize(static_cast<std::size_t>(end - out.data()));
  out.shrink_to_fit();
  return out;
}

}  // namespace podsight::metrics
