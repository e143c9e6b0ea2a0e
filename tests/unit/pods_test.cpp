// Pod store: who a container ID in a pod's cgroup is (app, init, previous, sandbox, conmon, static pod),
// deleted pods kept for the grace period, the max_pods bound, and what a pod costs in memory.
#include "metadata/pods.hpp"

#include <gtest/gtest.h>
#include <malloc.h>

namespace podsight::metadata {
namespace {

using Clock = PodStore::Clock;

Pod make_pod(const std::string& uid, const std::string& name, std::vector<ContainerRef> containers,
             bool all_known = true) {
  Pod p;
  p.uid = uid;
  p.namespace_ = "ns";
  p.name = name;
  p.node = "node-a";
  p.containers = std::move(containers);
  p.all_ids_known = all_known;
  return p;
}

const std::string kApp(64, 'a');
const std::string kOld(64, 'b');
const std::string kPause(64, 'c');

TEST(PodStore, IdentifiesContainersSandboxAndConmon) {
  PodStore store;
  ASSERT_TRUE(store.upsert(make_pod("u1", "web", {{kApp, "nginx"}, {kOld, "nginx"}})));
  auto app = store.identify("u1", kApp, false);
  ASSERT_TRUE(app.has_value());
  EXPECT_EQ(app->namespace_, "ns");
  EXPECT_EQ(app->pod, "web");
  EXPECT_EQ(app->container, "nginx");
  EXPECT_EQ(store.identify("u1", kOld, false)->container, "nginx");  // the previous instance
  // Every container's ID is known, so an unknown ID in the pod's cgroup is the sandbox.
  EXPECT_EQ(store.identify("u1", kPause, false)->container, kSandboxContainer);
  EXPECT_EQ(store.identify("u1", "", false)->container, "");    // the pod's own cgroup
  EXPECT_EQ(store.identify("u1", kApp, true)->container, "");   // CRI-O's conmon for nginx
  EXPECT_FALSE(store.identify("u2", kApp, false).has_value());  // unknown pod

  // While a container is being created its ID is unknown: no guess.
  ASSERT_TRUE(store.upsert(make_pod("u1", "web", {{kApp, "nginx"}}, false)));
  EXPECT_EQ(store.identify("u1", kPause, false)->container, "");
}

TEST(PodStore, StaticPodsByMirrorUid) {
  PodStore store;
  Pod p = make_pod("api-server-mirror-uid", "kube-apiserver-node-a", {{kApp, "kube-apiserver"}});
  p.mirror_uid = "5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c";
  ASSERT_TRUE(store.upsert(p));
  EXPECT_EQ(store.identify("5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c", kApp, false)->pod, "kube-apiserver-node-a");
  store.remove("api-server-mirror-uid", Clock::now());
  store.forget_deleted(std::chrono::seconds(0), Clock::now());
  EXPECT_FALSE(store.identify("5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c", kApp, false).has_value());
}

TEST(PodStore, DeletedPodsStayForTheGracePeriod) {
  PodStore store;
  const auto t0 = Clock::now();
  ASSERT_TRUE(store.upsert(make_pod("u1", "a", {})));
  ASSERT_TRUE(store.upsert(make_pod("u2", "b", {})));
  store.remove("u1", t0);
  EXPECT_EQ(store.live(), 1u);
  EXPECT_EQ(store.size(), 2u);
  EXPECT_TRUE(store.identify("u1", "", false).has_value());
  EXPECT_EQ(store.forget_deleted(std::chrono::seconds(10), t0 + std::chrono::seconds(9)), 0u);
  EXPECT_EQ(store.forget_deleted(std::chrono::seconds(10), t0 + std::chrono::seconds(10)), 1u);
  EXPECT_FALSE(store.identify("u1", "", false).has_value());

  // A re-list that no longer has a pod deletes it; one that has a deleted pod again revives it.
  store.remove("u2", t0);
  EXPECT_EQ(store.replace({make_pod("u2", "b", {}), make_pod("u3", "c", {})}, t0), 0u);
  EXPECT_EQ(store.live(), 2u);
  EXPECT_EQ(store.replace({make_pod("u3", "c", {})}, t0), 0u);
  EXPECT_EQ(store.live(), 1u);
  EXPECT_EQ(store.size(), 2u);
  EXPECT_EQ(store.snapshot().size(), 2u);
}

TEST(PodStore, BoundedCountEvictsOldestDeletedFirst) {
  PodStore store(2);
  const auto t0 = Clock::now();
  ASSERT_TRUE(store.upsert(make_pod("u1", "a", {})));
  ASSERT_TRUE(store.upsert(make_pod("u2", "b", {})));
  EXPECT_FALSE(store.upsert(make_pod("u3", "c", {})));  // full of live pods
  store.remove("u1", t0);
  EXPECT_TRUE(store.upsert(make_pod("u3", "c", {})));  // takes the deleted pod's place
  EXPECT_FALSE(store.identify("u1", "", false).has_value());
  EXPECT_EQ(store.replace({make_pod("u4", "d", {}), make_pod("u5", "e", {}), make_pod("u6", "f", {})}, t0),
            1u);
  EXPECT_EQ(store.live(), 2u);
  EXPECT_EQ(store.size(), 2u);
}

// What the store costs per pod, measured with the allocator's own accounting. A typical pod: three
// containers (one restarted), four allowlisted labels, owner, IP. The bound is generous; the measured
// number is printed for the record (docs/architecture.md quotes it).
TEST(PodStore, MemoryPerPod) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer's allocator does not keep glibc's accounting";
#endif
  constexpr int kPods = 5000;
  const auto before = mallinfo2().uordblks;
  {
    PodStore store(kPods);
    for (int i = 0; i < kPods; ++i) {
      const std::string n = std::to_string(i);
      Pod p = make_pod(
          "6f1c2f0e-3b5a-4c1d-9e2f-" + std::string(12 - n.size(), '0') + n, "frontend-7d4b9c6f5-x2x" + n,
          {{std::string(60, 'a') + std::string(4 - std::min<std::size_t>(4, n.size()), '0') + n, "nginx"},
           {std::string(60, 'b') + n, "nginx"},
           {std::string(60, 'c') + n, "envoy-sidecar"},
           {std::string(60, 'd') + n, "init-migrations"}});
      p.namespace_ = "shop-production";
      p.pod_ip = "10.244.12." + std::to_string(i % 250);
      p.qos_class = "Burstable";
      p.owner_kind = "ReplicaSet";
      p.owner_name = "frontend-7d4b9c6f5";
      p.labels = {
          {"app", "frontend"}, {"app.kubernetes.io/name", "frontend"}, {"team", "checkout"}, {"tier", "web"}};
      ASSERT_TRUE(store.upsert(std::move(p)));
    }
    const auto after = mallinfo2().uordblks;
    const double per_pod = static_cast<double>(after - before) / kPods;
    std::printf("pod store: %.0f bytes per pod (%d pods)\n", per_pod, kPods);
    EXPECT_LT(per_pod, 2048);
    EXPECT_GT(per_pod, 200);  // the measurement measures something
  }
}

}  // namespace
}  // namespace podsight::metadata
