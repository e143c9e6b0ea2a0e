// `podsight --validate-config`: the real binary judges a configuration without loading anything, so
// that the helm chart's rendered ConfigMap (tests/packaging) and an operator's edit can be checked
// anywhere, without privileges.
#include "integration/support/harness.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

namespace podsight::testing {
namespace {

CommandResult validate(const std::vector<std::string>& args, bool without_privileges) {
  std::vector<std::string> argv;
  if (without_privileges) {
    // No capability at all, and no way to gain one: what a config check in CI or an init step has.
    argv = {"setpriv", "--bounding-set", "-all", "--inh-caps", "-all", "--no-new-privs", "--"};
  }
  argv.push_back(PODSIGHT_AGENT_BINARY);
  argv.emplace_back("--validate-config");
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv);
}

TEST(ValidateConfig, ValidFileExitsZeroWithoutPrivileges) {
  const std::string dir = make_temp_dir("podsight-validate");
  write_file(dir + "/ok.json",
             R"({"http": {"listen": "0.0.0.0:10795"}, "programs": {"exec": {"max_entries": 4096}}})");
  auto r = validate({"--config", dir + "/ok.json"}, ::geteuid() == 0);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("configuration valid (" + dir + "/ok.json)"), std::string::npos) << r.out;
  // Nothing else is printed: no log lines, no BPF, no HTTP server.
  EXPECT_EQ(r.out.find("\"level\""), std::string::npos) << r.out;
  auto defaults = validate({}, false);
  EXPECT_EQ(defaults.exit_code, 0) << defaults.out;
  EXPECT_NE(defaults.out.find("(defaults)"), std::string::npos) << defaults.out;
  std::filesystem::remove_all(dir);
}

TEST(ValidateConfig, InvalidFileOrFlagExitsTwoNamingTheProblem) {
  const std::string dir = make_temp_dir("podsight-validate");
  write_file(dir + "/bad.json", R"({"programs": {"exec": {"max_entries": 0, "colour": "red"}}})");
  auto r = validate({"--config", dir + "/bad.json"}, false);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("programs.exec.max_entries"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("programs.exec.colour"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("configuration valid"), std::string::npos) << r.out;

  auto missing = validate({"--config", dir + "/absent.json"}, false);
  EXPECT_EQ(missing.exit_code, 2) << missing.out;
  EXPECT_NE(missing.out.find("absent.json"), std::string::npos) << missing.out;

  // Flags are part of what is validated: the chart passes some of them.
  auto flag = validate({"--log-level", "chatty"}, false);
  EXPECT_EQ(flag.exit_code, 2) << flag.out;
  EXPECT_NE(flag.out.find("--log-level"), std::string::npos) << flag.out;
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace podsight::testing
