// Mount detection from /proc/self/mountinfo, including the hybrid layout of this CI machine.
#include "bpf/probe.hpp"
#include "programs/program.hpp"

#include <gtest/gtest.h>

namespace podsight {
namespace {

TEST(Mountinfo, HybridLayout) {
  const char* mi =
      "25 1 0:23 / /sys rw,nosuid - sysfs sysfs rw\n"
      "30 25 0:26 / /sys/fs/cgroup ro,nosuid shared:9 - tmpfs tmpfs ro,mode=755\n"
      "31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw,nsdelegate\n"
      "32 30 0:28 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n"
      "40 25 0:35 / /sys/fs/bpf rw - bpf bpf rw\n"
      "41 25 0:12 / /sys/kernel/tracing rw - tracefs tracefs rw\n";
  auto m = bpf::parse_mountinfo(mi);
  EXPECT_EQ(m.cgroup2, "/sys/fs/cgroup/unified");
  EXPECT_EQ(m.bpffs, "/sys/fs/bpf");
  EXPECT_EQ(m.tracefs, "/sys/kernel/tracing");
}

TEST(Mountinfo, UnifiedLayoutEscapesAndNamespacedRoots) {
  const char* mi =
      "50 40 0:30 /kubepods/pod1 /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"  // a container's own view
      "51 40 0:30 / /host/sys/fs\\040cgroup rw - cgroup2 cgroup2 rw\n"
      "garbage line\n"
      "\n"
      "52 40 0:31 / /x rw shared:1 master:2 - bpf none rw\n";
  auto m = bpf::parse_mountinfo(mi);
  EXPECT_EQ(m.cgroup2, "/host/sys/fs cgroup");
  EXPECT_EQ(m.bpffs, "/x");
  EXPECT_EQ(m.tracefs, "");
}

TEST(Mountinfo, EmptyAndTruncated) {
  EXPECT_EQ(bpf::parse_mountinfo("").cgroup2, "");
  EXPECT_EQ(bpf::parse_mountinfo("1 2 3 4 5 6 -").cgroup2, "");
  EXPECT_EQ(bpf::parse_mountinfo("1 2 3 / /m o - cgroup2").cgroup2, "/m");
  EXPECT_EQ(bpf::parse_mountinfo("1 2 3 / /m\\04 o - cgroup2").cgroup2, "/m\\04");
}

TEST(VariantOrder, AutoFollowsProbesForcedIsKept) {
  using V = std::vector<std::pair<std::string, bool>>;
  EXPECT_EQ(programs::variant_order("auto", V{{"fentry", false}, {"kprobe", true}, {"tracepoint", true}}),
            (std::vector<std::string>{"kprobe", "tracepoint"}));
  EXPECT_EQ(programs::variant_order("fentry", V{{"fentry", false}, {"tracepoint", true}}),
            (std::vector<std::string>{"fentry"}));
  EXPECT_TRUE(programs::variant_order("auto", V{{"a", false}}).empty());
}

}  // namespace
}  // namespace podsight
