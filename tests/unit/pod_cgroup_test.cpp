// cgroup path -> pod UID / container ID: every runtime, driver and QoS class from the fixture file, the
// paths that look close but are not pods, and hostile paths (odd bytes, huge, deep) that must give
// "not a pod" without crashing.
#include "metadata/pod_cgroup.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <random>
#include <set>

namespace podsight::metadata {
namespace {

nlohmann::json fixtures() {
  std::ifstream in(std::string(PODSIGHT_FIXTURES_DIR) + "/cgroups/pod_paths.json");
  EXPECT_TRUE(in) << "fixture missing";
  return nlohmann::json::parse(in);
}

TEST(PodCgroup, EveryRuntimeDriverAndQosClass) {
  auto doc = fixtures();
  std::set<std::string> runtimes, drivers, qos;
  ASSERT_GE(doc["pods"].size(), 30u);
  for (const auto& c : doc["pods"]) {
    const std::string path = c["path"];
    SCOPED_TRACE(path + " (" + c["note"].get<std::string>() + ")");
    auto got = parse_pod_cgroup(path);
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->pod_uid, c["pod_uid"].get<std::string>());
    EXPECT_EQ(got->container_id, c["container_id"].get<std::string>());
    EXPECT_EQ(to_string(got->runtime), c["runtime"].get<std::string>());
    EXPECT_EQ(to_string(got->qos), c["qos"].get<std::string>());
    EXPECT_EQ(to_string(got->driver), c["driver"].get<std::string>());
    EXPECT_EQ(got->conmon, c["conmon"].get<bool>());
    runtimes.insert(c["runtime"]);
    drivers.insert(c["driver"]);
    qos.insert(c["qos"]);
  }
  // The fixture file itself covers the whole matrix.
  EXPECT_EQ(runtimes, (std::set<std::string>{"", "containerd", "cri-o", "docker"}));
  EXPECT_EQ(drivers, (std::set<std::string>{"systemd", "cgroupfs"}));
  EXPECT_EQ(qos, (std::set<std::string>{"Guaranteed", "Burstable", "BestEffort"}));
}

TEST(PodCgroup, LookalikesAreNotPods) {
  auto doc = fixtures();
  ASSERT_FALSE(doc["not_pods"].empty());
  for (const auto& c : doc["not_pods"]) {
    const std::string path = c["path"];
    EXPECT_FALSE(parse_pod_cgroup(path).has_value()) << path << " (" << c["note"].get<std::string>() << ")";
  }
}

const std::string kUid = "2f0e3b2c_6c1d_4c6e_9a59_1f2e3d4c5b6a";
const std::string kId(64, 'a');
const std::string kPodPath = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + kUid +
                             ".slice/cri-containerd-" + kId + ".scope";

TEST(PodCgroup, HostilePathsAreNotPods) {
  EXPECT_FALSE(parse_pod_cgroup("").has_value());
  EXPECT_FALSE(parse_pod_cgroup("////").has_value());
  EXPECT_FALSE(parse_pod_cgroup(std::string(1 << 20, 'a')).has_value());
  EXPECT_FALSE(parse_pod_cgroup(std::string(1 << 16, '/')).has_value());
  // A real pod path made too long or too deep by its prefix.
  EXPECT_FALSE(parse_pod_cgroup(std::string(kMaxPodCgroupPath, 'x') + kPodPath).has_value());
  std::string deep;
  for (std::size_t i = 0; i < kMaxPodCgroupDepth; ++i) deep += "/d";
  EXPECT_FALSE(parse_pod_cgroup(deep + kPodPath).has_value());
  // Just inside both bounds it still parses: the bounds are what reject the two above.
  std::string shallow;
  for (std::size_t i = 0; i + 6 < kMaxPodCgroupDepth; ++i) shallow += "/d";
  EXPECT_TRUE(parse_pod_cgroup(shallow + kPodPath).has_value());
  // Bytes that are not UTF-8, NULs and control characters inside the components.
  std::string odd = kPodPath;
  odd.insert(odd.find("-pod") + 4, std::string("\xff\0\n", 3));  // inside the UID
  EXPECT_FALSE(parse_pod_cgroup(odd).has_value());
  std::string nul_id = kPodPath;
  nul_id[nul_id.size() - 10] = '\0';
  auto pod_only = parse_pod_cgroup(nul_id);
  ASSERT_TRUE(pod_only.has_value());  // the pod slice is intact; the container name is not an ID
  EXPECT_EQ(pod_only->container_id, "");
}

TEST(PodCgroup, RandomMutationsNeverCrashAndNeverInventIds) {
  std::mt19937 rng(20240601);
  static constexpr char kAlphabet[] = "/-_.abcdefpodslicescope0123456789\xff\x80\n";
  const std::string alphabet(kAlphabet, sizeof kAlphabet - 1);
  for (int i = 0; i < 20000; ++i) {
    std::string p = kPodPath;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      const std::size_t at = rng() % (p.size() + 1);
      switch (rng() % 3) {
        case 0:
          p.insert(at, 1, alphabet[rng() % alphabet.size()]);
          break;
        case 1:
          if (at < p.size()) p.erase(at, 1);
          break;
        default:
          if (at < p.size()) p[at] = alphabet[rng() % alphabet.size()];
      }
    }
    auto got = parse_pod_cgroup(p);
    if (!got) continue;
    // Whatever parses has a well-formed UID and an ID that is empty or 64 hex digits.
    EXPECT_TRUE(got->pod_uid.size() == 36u || got->pod_uid.size() == 32u) << p;
    EXPECT_TRUE(got->container_id.empty() || got->container_id.size() == 64) << p;
  }
}

}  // namespace
}  // namespace podsight::metadata
