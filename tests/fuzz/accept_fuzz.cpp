// Fuzzes the Accept-header negotiation of /metrics with arbitrary bytes. Beyond not crashing or
// reading out of bounds: OpenMetrics is only chosen when the header names it; an explicit text/plain
// (q=1) always wins; and media types, parameter names and tokens are case-insensitive, so swapping
// the case of every ASCII letter never changes the answer.
#include "fuzz/ascii.hpp"
#include "metrics/exposition.hpp"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

using podsight::metrics::Format;
using podsight::metrics::negotiate;

[[noreturn]] void fail(const char* what, std::string_view header) {
  std::fprintf(stderr, "accept fuzz: %s\n---- header ----\n%.*s\n----\n", what,
               static_cast<int>(header.size()), header.data());
  std::abort();
}

char swap_case(char c) {
  if (c >= 'a' && c <= 'z') return static_cast<char>(c - 'a' + 'A');
  if (c >= 'A' && c <= 'Z') return static_cast<char>(c - 'A' + 'a');
  return c;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view header(reinterpret_cast<const char*>(data), size);
  const Format chosen = negotiate(header);
  if (chosen != Format::kText004 && chosen != Format::kOpenMetrics100) fail("no such format", header);
  if (podsight::metrics::content_type(chosen).empty()) fail("empty content type", header);
  if (chosen == Format::kOpenMetrics100 &&
      podsight::fuzz::ascii_lower(header).find("application/openmetrics-text") == std::string::npos) {
    fail("OpenMetrics chosen though the header does not name it", header);
  }
  if (negotiate(std::string(header) + ",text/plain") != Format::kText004)
    fail("text/plain;q=1 did not win", header);
  std::string swapped(header);
  for (auto& c : swapped) c = swap_case(c);
  if (negotiate(swapped) != chosen) fail("the answer depends on letter case", header);
  return 0;
}
