// cgroup id -> path resolution by tree walk, exercised on an ordinary directory tree (directory inode
// numbers play the role of cgroup ids exactly as on cgroup2).
#include "metadata/cgroups.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

namespace podsight::metadata {
namespace {

class CgroupPathsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/podsight-cgroups-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    std::filesystem::create_directories(root_ + "/system.slice/ssh.service");
    std::filesystem::create_directories(root_ + "/kubepods.slice/with space\nand newline");
  }
  void TearDown() override { std::filesystem::remove_all(root_); }
  std::string root_;
};

TEST_F(CgroupPathsTest, ResolvesByWalkAndCaches) {
  CgroupPaths paths(root_ + "/", std::chrono::milliseconds(0));
  auto id = CgroupPaths::id_of(root_ + "/system.slice/ssh.service");
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(paths.path(*id), "/system.slice/ssh.service");
  EXPECT_EQ(paths.path(*CgroupPaths::id_of(root_)), "/");
  EXPECT_EQ(paths.path(*CgroupPaths::id_of(root_ + "/kubepods.slice/with space\nand newline")),
            "/kubepods.slice/with space\nand newline");
  auto walks = paths.walks();
  EXPECT_EQ(paths.path(*id), "/system.slice/ssh.service");
  EXPECT_EQ(paths.walks(), walks);  // served from the cache
}

TEST_F(CgroupPathsTest, UnknownIdsAreRateLimitedAndDeletedOnesForgotten) {
  CgroupPaths paths(root_, std::chrono::hours(1), 1e-9);
  auto id = *CgroupPaths::id_of(root_ + "/system.slice/ssh.service");
  EXPECT_TRUE(paths.path(id).has_value());
  auto walks = paths.walks();
  EXPECT_FALSE(paths.path(0xdeadbeefcafeULL).has_value());
  EXPECT_FALSE(paths.path(0xdeadbeefcafeULL).has_value());
  EXPECT_EQ(paths.walks(), walks);  // no second walk within the interval

  std::filesystem::create_directories(root_ + "/new.slice");
  auto fresh = *CgroupPaths::id_of(root_ + "/new.slice");
  EXPECT_FALSE(paths.path(fresh).has_value());  // interval not over yet

  std::filesystem::remove(root_ + "/system.slice/ssh.service");
  EXPECT_GE(paths.forget_deleted(), 1u);
  EXPECT_FALSE(paths.path(id).has_value());
}

TEST_F(CgroupPathsTest, DeletedPathsOutliveTheirDirectoryForTheGracePeriod) {
  CgroupPaths paths(root_, std::chrono::milliseconds(0));
  std::filesystem::create_directories(root_ + "/pod.slice");
  const auto id = *CgroupPaths::id_of(root_ + "/pod.slice");
  EXPECT_TRUE(paths.exists(id));
  EXPECT_FALSE(paths.exists(0xdeadbeefcafeULL));
  std::filesystem::remove(root_ + "/pod.slice");
  EXPECT_FALSE(paths.exists(id));
  // Gone, but within the grace period: still labelled with its path.
  EXPECT_EQ(paths.forget_deleted(std::chrono::hours(1)), 0u);
  EXPECT_EQ(paths.path(id), "/pod.slice");
  EXPECT_EQ(paths.forget_deleted(std::chrono::seconds(0)), 1u);
  EXPECT_FALSE(paths.path(id).has_value());
}

TEST_F(CgroupPathsTest, AnIdNewerThanTheLastWalkGetsOneEagerWalk) {
  CgroupPaths paths(root_, std::chrono::hours(1), 1.0);  // no time-share bound
  ASSERT_TRUE(paths.path(*CgroupPaths::id_of(root_ + "/system.slice")).has_value());
  const auto walks = paths.walks();
  constexpr std::uint64_t kNewer = 0x7fffffffffffULL;  // newer than any inode here, and absent
  EXPECT_FALSE(paths.path(kNewer).has_value());
  EXPECT_EQ(paths.walks(), walks + 1);
  EXPECT_FALSE(paths.path(kNewer).has_value());
  EXPECT_FALSE(paths.exists(kNewer));
  EXPECT_EQ(paths.walks(), walks + 1);  // made and gone between walks: no second eager walk for it
  EXPECT_FALSE(paths.path(1).has_value());
  EXPECT_EQ(paths.walks(), walks + 1);  // older than the walk: the rescan interval applies
}

TEST_F(CgroupPathsTest, EagerWalksKeepToTheirShareOfTime) {
  // A share of one in a billion: after any walk (which takes some nanoseconds at least) the next eager
  // walk would have to wait for seconds, so a newer id right after a walk does not walk again.
  CgroupPaths paths(root_, std::chrono::hours(1), 1e-9);
  ASSERT_TRUE(paths.path(*CgroupPaths::id_of(root_ + "/system.slice")).has_value());
  const auto walks = paths.walks();
  EXPECT_FALSE(paths.path(0x7fffffffffffULL).has_value());
  EXPECT_EQ(paths.walks(), walks);
}

TEST(CgroupPaths, MissingRootIsNotFatal) {
  CgroupPaths paths("/nonexistent/cgroup", std::chrono::milliseconds(0));
  EXPECT_FALSE(paths.path(1).has_value());
  EXPECT_FALSE(CgroupPaths::id_of("/nonexistent/cgroup").ok());
}

}  // namespace
}  // namespace podsight::metadata
