// Prometheus exposition: encodes metric families as text format 0.0.4 or OpenMetrics 1.0.0.
// prometheus-cpp's core gives us the data model (MetricFamily); the bytes on the wire are ours, so that
// every scrape stays parseable whatever bytes the kernel handed us as label values.
#pragma once

#include "metrics/family.hpp"

#include <prometheus/metric_family.h>

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace podsight::metrics {

enum class Format { kText004, kOpenMetrics100 };

// Picks the format from an HTTP Accept header: OpenMetrics when the client lists
// application/openmetrics-text (version 1.0.0 or unversioned) with a q-value above that of any
// text/plain entry; text 0.0.4 otherwise (also for an empty, malformed or hostile header).
Format negotiate(std::string_view accept_header);

// The Content-Type header value for a format.
std::string_view content_type(Format format);

// Appends the encoding of `families` to `out`. Output is always valid for the format:
// label values and HELP are escaped, invalid UTF-8 is made valid (see sanitize_utf8), names are
// assumed valid (they are ours). Gauge families whose name ends in "_info" are written as the
// OpenMetrics info type; counter families must be named with the "_total" suffix.
void encode(const std::vector<prometheus::MetricFamily>& families, Format format, std::string& out);
// The same for what a scrape collects: compact series are written from their label blocks as they are.
void encode(const Families& families, Format format, std::string& out);

// Receives an encoding piece by piece.
using Writer = std::function<void(std::string_view)>;
// Writes the same bytes through `write`, in pieces of whole lines of about `piece_bytes` each, so
// that a big scrape's text need not exist in full (it can be compressed as it comes). An exception
// from `write` ends the encoding and is passed on.
void encode(const Families& families, Format format, const Writer& write, std::size_t piece_bytes = 64 << 10);
// About how many bytes encode() writes for `families` (exact for FamilyBuilder's series, which are
// nearly all of a big scrape): lets a receiver that keeps the text allocate it once.
std::size_t encoded_size_estimate(const Families& families);

// Bytes write_label_value may write for a value of n bytes: an invalid byte becomes "\\xNN".
constexpr std::size_t max_label_value_size(std::size_t n) { return 5 * n; }

// Writes `value` as it goes between the quotes of a label value in both formats: sanitized as
// sanitize_utf8 does, then escaped (backslash, double quote, line feed). `dst` has room for
// max_label_value_size(value.size()) bytes; returns the end of what was written. Escaping is
// one-to-one, so two values give the same bytes exactly when they sanitize to the same string.
char* write_label_value(char* dst, std::string_view value) noexcept;

// True when `s` is well-formed UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF).
bool valid_utf8(std::string_view s);

// Returns `s` with every byte that is not part of a well-formed UTF-8 sequence replaced by the four
// characters "\xNN" (NN = upper-case hex). Valid input is returned unchanged.
std::string sanitize_utf8(std::string_view s);

}  // namespace podsight::metrics
