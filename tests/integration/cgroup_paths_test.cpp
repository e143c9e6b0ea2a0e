// cgroup id -> path on the real cgroup2 hierarchy, as the chart runs the agent: without
// CAP_DAC_READ_SEARCH, so without lookups by file handle. A cgroup made just after a tree walk (a pod
// starting) must still be resolved at once, not shown as "(unknown)" until the next periodic walk.
#include "integration/support/harness.hpp"
#include "integration/support/net.hpp"
#include "metadata/cgroups.hpp"

#include <gtest/gtest.h>
#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>

namespace podsight::testing {
namespace {

// Drops `cap` from the calling process's effective set (the child's: see below).
bool drop_effective(int cap) {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  if (::syscall(SYS_capget, &header, data) != 0) return false;
  data[cap / 32].effective &= ~(1u << (cap % 32));
  return ::syscall(SYS_capset, &header, data) == 0;
}

TEST(CgroupPaths, FreshCgroupResolvedAtOnceWithoutFileHandles) {
  PODSIGHT_REQUIRE_PRIVILEGES();
  TestCgroup before("podsight-paths-a");
  const std::string root = cgroup2_root();
  // In a child: the capability change must not leak into the rest of the test process.
  const int rc = run_in({}, [&]() -> int {
    if (!drop_effective(CAP_DAC_READ_SEARCH)) return 10;
    metadata::CgroupPaths paths(root, std::chrono::hours(1), 1.0);
    if (paths.path(before.id()) != before.relative()) return 11;
    const auto walks = paths.walks();
    if (walks == 0) return 12;  // resolved by handle: the capability was not dropped
    TestCgroup fresh("podsight-paths-b");  // made after the walk
    if (paths.path(fresh.id()) != fresh.relative()) return 13;
    if (paths.walks() != walks + 1) return 14;
    // An unknown id older than the last walk waits for the rescan interval: no walk.
    (void)paths.path(fresh.id() - 1);
    if (paths.walks() != walks + 1) return 15;
    return 0;
  });
  EXPECT_EQ(rc, 0) << "10: capset, 11: first walk, 12: handles still work, 13: fresh cgroup not resolved, "
                      "14: not exactly one more walk, 15: walked for an old id";
}

}  // namespace
}  // namespace podsight::testing
