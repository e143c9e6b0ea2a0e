// Workload labels of a cgroup id: a pod's container gets namespace/pod/container and no cgroup; a pod
// cgroup whose pod is not known yet, and any other cgroup, get the cgroup path and empty pod labels
// (the contract in docs/metrics.md, "Workload labels"). Ordinary directories play the cgroup tree.
#include "metadata/workload.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

namespace podsight::metadata {
namespace {

const std::string kUid = "2f0e3b2c-6c1d-4c6e-9a59-1f2e3d4c5b6a";
const std::string kApp(64, 'a');
const std::string kPause(64, 'f');

class WorkloadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/podsight-workload-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    pod_dir_ =
        "/kubepods.slice/kubepods-besteffort.slice/"
        "kubepods-besteffort-pod2f0e3b2c_6c1d_4c6e_9a59_1f2e3d4c5b6a.slice";
    std::filesystem::create_directories(root_ + pod_dir_ + "/cri-containerd-" + kApp + ".scope");
    std::filesystem::create_directories(root_ + pod_dir_ + "/cri-containerd-" + kPause + ".scope");
    std::filesystem::create_directories(root_ + "/system.slice/sshd.service");
  }
  void TearDown() override { std::filesystem::remove_all(root_); }
  std::uint64_t id(const std::string& rel) { return *CgroupPaths::id_of(root_ + rel); }

  std::string root_;
  std::string pod_dir_;
};

TEST_F(WorkloadTest, PodsByApiAndEverythingElseByPath) {
  CgroupPaths paths(root_, std::chrono::milliseconds(0));
  PodStore pods;
  WorkloadResolver resolver(paths, &pods);
  const std::string app = pod_dir_ + "/cri-containerd-" + kApp + ".scope";

  // Before the API told us about the pod: the path, so the series is not lost meanwhile.
  auto before = resolver.resolve(id(app));
  EXPECT_EQ(before.namespace_, "");
  EXPECT_EQ(before.pod, "");
  EXPECT_EQ(before.cgroup, app);

  Pod p;
  p.uid = kUid;
  p.namespace_ = "shop";
  p.name = "web-0";
  p.containers = {{kApp, "nginx"}};
  p.all_ids_known = true;
  ASSERT_TRUE(pods.upsert(p));
  auto w = resolver.resolve(id(app));
  EXPECT_EQ(w.namespace_, "shop");
  EXPECT_EQ(w.pod, "web-0");
  EXPECT_EQ(w.container, "nginx");
  EXPECT_EQ(w.cgroup, "");
  EXPECT_EQ(resolver.resolve(id(pod_dir_ + "/cri-containerd-" + kPause + ".scope")).container,
            kSandboxContainer);
  auto pod_level = resolver.resolve(id(pod_dir_));
  EXPECT_EQ(pod_level.pod, "web-0");
  EXPECT_EQ(pod_level.container, "");

  auto ssh = resolver.resolve(id("/system.slice/sshd.service"));
  EXPECT_EQ(ssh.pod, "");
  EXPECT_EQ(ssh.cgroup, "/system.slice/sshd.service");
  EXPECT_EQ(resolver.resolve(0xdeadbeefcafeULL).cgroup, kUnknownCgroup);

  // Without a pod store (metadata off) the same cgroup is labelled by its path.
  WorkloadResolver plain(paths);
  EXPECT_EQ(plain.resolve(id(app)).cgroup, app);
  EXPECT_EQ(plain.resolve(id(app)).pod, "");
}

}  // namespace
}  // namespace podsight::metadata
