// Log payload rendering: JSON stays valid whatever bytes a field carries; text stays one line.
#include "log/log.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace podsight::log {
namespace {

TEST(Log, JsonPayloadIsValidWithHostileValues) {
  std::string hostile = "a\"b\\c\nd\xff\xfe";
  auto payload = render_payload(Format::kJson, "msg \"x\"", {{"comm", hostile}, {"n", 42}, {"ok", true}});
  auto doc = nlohmann::json::parse("{" + payload + "}");
  EXPECT_EQ(doc["msg"], "msg \"x\"");
  EXPECT_EQ(doc["n"], 42);
  EXPECT_EQ(doc["ok"], true);
  EXPECT_TRUE(doc["comm"].is_string());
  EXPECT_EQ(doc["comm"].get<std::string>().substr(0, 7), "a\"b\\c\nd");
}

TEST(Log, TextPayloadQuotesWhatNeedsIt) {
  auto payload = render_payload(Format::kText, "attached", {{"program", "exec"}, {"error", "no such file"}, {"nl", "a\nb"}});
  EXPECT_EQ(payload, "attached program=exec error=\"no such file\" nl=\"a\\nb\"");
}

TEST(Log, ParsesLevelsAndFormats) {
  spdlog::level::level_enum l{};
  EXPECT_TRUE(parse_level("warn", l));
  EXPECT_EQ(l, spdlog::level::warn);
  EXPECT_FALSE(parse_level("WARN", l));
  Format f{};
  EXPECT_TRUE(parse_format("text", f));
  EXPECT_EQ(f, Format::kText);
  EXPECT_FALSE(parse_format("xml", f));
}

}  // namespace
}  // namespace podsight::log
