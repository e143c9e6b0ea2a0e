// The remote-address index: pod, service and node addresses (IPv4 and IPv6) to endpoint ids and
// labels; ids that never pass to another owner when an address is reused; terminated and host-network
// pods; two claims on one address; the address bound; what the kernel map (the sink) is told.
#include "metadata/remote.hpp"

#include <gtest/gtest.h>
#include <malloc.h>

#include <map>

namespace podsight::metadata {
namespace {

using Clock = RemoteIndex::Clock;

Address addr(const char* text) {
  auto a = parse_address(text);
  EXPECT_TRUE(a.has_value()) << text;
  return a.value_or(Address{});
}

// Records what the kernel map would hold.
struct MapSink : RemoteIndex::Sink {
  std::map<Address, std::uint32_t> map;
  int calls = 0;
  void assign(const Address& a, std::uint32_t id) override {
    map[a] = id;
    ++calls;
  }
  void unassign(const Address& a) override {
    map.erase(a);
    ++calls;
  }
};

RemotePod pod(const std::string& uid, const std::string& name, std::vector<std::string> ips,
              const std::string& node = "node-a", std::vector<std::string> host_ips = {"192.168.1.10"}) {
  return RemotePod{uid, "shop", name, node, std::move(host_ips), std::move(ips), false, false};
}

RemoteService service(const std::string& uid, const std::string& name, std::vector<std::string> ips) {
  return RemoteService{uid, "shop", name, std::move(ips)};
}

std::optional<RemoteLabels> who(const RemoteIndex& index, const char* ip) {
  auto id = index.lookup(addr(ip));
  if (!id) return std::nullopt;
  return index.labels(*id);
}

TEST(RemoteAddress, ParsesIpv4AsMappedIpv6AndRejectsTheRest) {
  const Address v4 = addr("10.244.1.7");
  EXPECT_EQ(v4, addr("::ffff:10.244.1.7"));
  EXPECT_EQ(v4[10], 0xff);
  EXPECT_EQ(v4[15], 7);
  EXPECT_EQ(addr("fd00::7")[15], 7);
  EXPECT_EQ(addr("fd00::7")[0], 0xfd);
  for (const char* bad :
       {"", "None", "10.0.0", "10.0.0.1/24", "fe80::1%eth0", "10.0.0.256", " 10.0.0.1", "abc"}) {
    EXPECT_FALSE(parse_address(bad).has_value()) << bad;
  }
  EXPECT_FALSE(parse_address(std::string(100, '1')).has_value());
  EXPECT_EQ(to_string(RemoteKind::kExternal), "external");
  EXPECT_EQ(to_string(RemoteKind::kLocal), "local");
  EXPECT_EQ(to_string(RemoteKind::kPod), "pod");
  EXPECT_EQ(to_string(RemoteKind::kService), "service");
  EXPECT_EQ(to_string(RemoteKind::kNode), "node");
}

TEST(RemoteIndex, PodsServicesAndNodesByAddress) {
  RemoteIndex index(100);
  MapSink sink;
  index.attach(&sink);
  const auto now = Clock::now();
  index.replace_pods({pod("u1", "web-1", {"10.244.1.7", "fd00::1:7"}),
                      pod("u2", "db-0", {"10.244.2.9"}, "node-b", {"192.168.1.11", "fd01::11"})},
                     now);
  index.replace_services(
      {service("s1", "db", {"10.96.0.20", "fd02::20"}), service("s2", "headless", {"None"})}, now);

  EXPECT_EQ(who(index, "10.244.1.7"), (RemoteLabels{RemoteKind::kPod, "shop", "web-1", ""}));
  // Dual stack: both addresses are one endpoint.
  EXPECT_EQ(index.lookup(addr("fd00::1:7")), index.lookup(addr("10.244.1.7")));
  EXPECT_EQ(who(index, "10.244.2.9"), (RemoteLabels{RemoteKind::kPod, "shop", "db-0", ""}));
  EXPECT_EQ(who(index, "10.96.0.20"), (RemoteLabels{RemoteKind::kService, "shop", "", "db"}));
  EXPECT_EQ(index.lookup(addr("fd02::20")), index.lookup(addr("10.96.0.20")));
  EXPECT_EQ(who(index, "192.168.1.10"), (RemoteLabels{RemoteKind::kNode, "", "", ""}));
  EXPECT_EQ(who(index, "fd01::11"), (RemoteLabels{RemoteKind::kNode, "", "", ""}));
  EXPECT_NE(index.lookup(addr("192.168.1.10")), index.lookup(addr("192.168.1.11")));
  EXPECT_FALSE(index.lookup(addr("8.8.8.8")).has_value());

  // The sink holds exactly the assignments, with ids the kernel does not reserve.
  EXPECT_EQ(sink.map.size(), 8u);
  for (const auto& [a, id] : sink.map) {
    EXPECT_EQ(index.lookup(a), id);
    EXPECT_GE(id, RemoteIndex::kFirstId);
  }
  auto c = index.counts();
  EXPECT_EQ(c.pod, 3u);
  EXPECT_EQ(c.service, 2u);
  EXPECT_EQ(c.node, 3u);
  EXPECT_EQ(c.refused, 0u);

  // A sink attached later gets everything at once.
  MapSink late;
  index.attach(&late);
  EXPECT_EQ(late.map, sink.map);
  index.attach(nullptr);
  index.remove_pod("u1", now);
  EXPECT_EQ(late.map.size(), 8u) << "a detached sink is not told";
}

TEST(RemoteIndex, AnAddressReusedByAnotherPodGetsANewIdAndTheOldKeepsItsLabels) {
  RemoteIndex index(100);
  MapSink sink;
  index.attach(&sink);
  auto t0 = Clock::now();
  index.upsert_pod(pod("u1", "job-a", {"10.244.1.7"}), t0);
  const auto old_id = *index.lookup(addr("10.244.1.7"));
  index.remove_pod("u1", t0);
  EXPECT_FALSE(index.lookup(addr("10.244.1.7")).has_value());
  EXPECT_EQ(sink.map.count(addr("10.244.1.7")), 0u) << "new connections to it are external";
  index.upsert_pod(pod("u2", "job-b", {"10.244.1.7"}), t0 + std::chrono::seconds(1));
  const auto new_id = *index.lookup(addr("10.244.1.7"));
  EXPECT_NE(new_id, old_id);
  EXPECT_EQ(sink.map.at(addr("10.244.1.7")), new_id);
  // The deleted pod's counters keep its name until forgotten after the grace period.
  EXPECT_EQ(index.labels(old_id)->pod, "job-a");
  EXPECT_EQ(index.labels(new_id)->pod, "job-b");
  EXPECT_TRUE(index.forget_retired(std::chrono::seconds(10), t0 + std::chrono::seconds(9)).empty());
  EXPECT_EQ(index.forget_retired(std::chrono::seconds(10), t0 + std::chrono::seconds(10)),
            std::vector<std::uint32_t>{old_id});
  EXPECT_FALSE(index.labels(old_id).has_value());
  EXPECT_TRUE(index.labels(new_id).has_value());
  // Ids are never given twice.
  index.upsert_pod(pod("u3", "job-c", {"10.244.1.8"}), t0);
  EXPECT_NE(*index.lookup(addr("10.244.1.8")), old_id);
}

TEST(RemoteIndex, TerminatedAndHostNetworkPodsDoNotNameThePod) {
  RemoteIndex index(100);
  const auto now = Clock::now();
  // A completed Job's pod keeps its IP in its status; a running pod has it now.
  auto done = pod("u1", "job-done", {"10.244.1.7"});
  done.terminated = true;
  index.upsert_pod(pod("u2", "web", {"10.244.1.7"}), now);
  index.upsert_pod(done, now);
  EXPECT_EQ(who(index, "10.244.1.7")->pod, "web");
  // A pod that terminates gives its address up.
  auto web_done = pod("u2", "web", {"10.244.1.7"});
  web_done.terminated = true;
  index.upsert_pod(web_done, now);
  EXPECT_FALSE(index.lookup(addr("10.244.1.7")).has_value());
  // Host-network pods' IPs are the node's.
  auto agent = pod("u3", "node-exporter", {"192.168.1.10"});
  agent.host_network = true;
  index.upsert_pod(agent, now);
  EXPECT_EQ(who(index, "192.168.1.10")->kind, RemoteKind::kNode);
  EXPECT_EQ(index.counts().pod, 0u);
}

TEST(RemoteIndex, TwoClaimsOnOneAddressTheLatestWinsAndTheOtherTakesOver) {
  RemoteIndex index(100);
  MapSink sink;
  index.attach(&sink);
  const auto now = Clock::now();
  index.upsert_pod(pod("u1", "old", {"10.244.1.7"}), now);
  index.upsert_pod(pod("u2", "new", {"10.244.1.7"}), now);
  EXPECT_EQ(who(index, "10.244.1.7")->pod, "new");
  // An update that does not touch the address does not make the other one newer.
  auto old_relabelled = pod("u1", "old", {"10.244.1.7"});
  old_relabelled.node = "node-a";
  index.upsert_pod(old_relabelled, now);
  EXPECT_EQ(who(index, "10.244.1.7")->pod, "new");
  index.remove_pod("u2", now);
  EXPECT_EQ(who(index, "10.244.1.7")->pod, "old");
  EXPECT_EQ(sink.map.at(addr("10.244.1.7")), *index.lookup(addr("10.244.1.7")));
  // A service's address beats a pod's.
  index.upsert_service(service("s1", "vip", {"10.244.1.7"}), now);
  EXPECT_EQ(who(index, "10.244.1.7")->kind, RemoteKind::kService);
  index.remove_service("s1", now);
  EXPECT_EQ(who(index, "10.244.1.7")->pod, "old");
}

TEST(RemoteIndex, ReplaceDropsWhatTheListNoLongerHasAndNodesFollowTheirPods) {
  RemoteIndex index(100);
  const auto now = Clock::now();
  index.replace_pods(
      {pod("u1", "a", {"10.244.1.7"}), pod("u2", "b", {"10.244.2.7"}, "node-b", {"192.168.1.11"})}, now);
  index.replace_services({service("s1", "x", {"10.96.0.1"})}, now);
  ASSERT_TRUE(index.lookup(addr("192.168.1.11")).has_value());
  index.replace_pods({pod("u1", "a", {"10.244.1.7"})}, now);
  index.replace_services({}, now);
  EXPECT_TRUE(index.lookup(addr("10.244.1.7")).has_value());
  EXPECT_FALSE(index.lookup(addr("10.244.2.7")).has_value());
  EXPECT_FALSE(index.lookup(addr("10.96.0.1")).has_value());
  // node-b has no pod left: its address is no longer known.
  EXPECT_FALSE(index.lookup(addr("192.168.1.11")).has_value());
  EXPECT_TRUE(index.lookup(addr("192.168.1.10")).has_value());
  // A pod moving to another node (a new object in reality; here the same uid) moves its node claim.
  index.upsert_pod(pod("u1", "a", {"10.244.1.7"}, "node-c", {"192.168.1.12"}), now);
  EXPECT_FALSE(index.lookup(addr("192.168.1.10")).has_value());
  EXPECT_TRUE(index.lookup(addr("192.168.1.12")).has_value());
}

TEST(RemoteIndex, AddressesBeyondTheBoundAreRefusedAndCounted) {
  RemoteIndex index(3);
  MapSink sink;
  index.attach(&sink);
  const auto now = Clock::now();
  // Two pod addresses and the node's fill it; the third pod's address does not fit.
  EXPECT_EQ(index.upsert_pod(pod("u1", "a", {"10.244.1.1"}), now), 0u);
  EXPECT_EQ(index.upsert_pod(pod("u2", "b", {"10.244.1.2"}), now), 0u);
  EXPECT_EQ(index.upsert_pod(pod("u3", "c", {"10.244.1.3"}), now), 1u);
  EXPECT_FALSE(index.lookup(addr("10.244.1.3")).has_value());
  EXPECT_EQ(sink.map.size(), 3u);
  EXPECT_EQ(index.counts().refused, 1u);
  // An address already known is never refused; a freed place is taken by the next claim.
  EXPECT_EQ(index.upsert_pod(pod("u4", "d", {"10.244.1.2"}), now), 0u);
  index.remove_pod("u1", now);
  EXPECT_EQ(index.upsert_pod(pod("u3", "c", {"10.244.1.3"}), now), 0u);
  EXPECT_EQ(who(index, "10.244.1.3")->pod, "c");
  EXPECT_EQ(sink.map.size(), 3u);
}

// What the index costs per pod, measured with the allocator's own accounting: dual-stack pods spread
// over 100 nodes (so node entries are amortised) and a service per 10 pods. Printed for the record
// (docs/configuration.md quotes it).
TEST(RemoteIndex, MemoryPerPod) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer's allocator does not keep glibc's accounting";
#endif
  constexpr int kPods = 20000;
  const auto before = mallinfo2().uordblks;
  {
    RemoteIndex index(1u << 20);
    const auto now = Clock::now();
    for (int i = 0; i < kPods; ++i) {
      const std::string a = std::to_string(i / 250 % 250), b = std::to_string(i % 250);
      const std::string n = std::to_string(i);
      RemotePod p{"6f1c2f0e-3b5a-4c1d-9e2f-" + std::string(12 - n.size(), '0') + n,
                  "shop-production",
                  "frontend-7d4b9c6f5-x2x" + n,
                  "node-" + std::to_string(i % 100),
                  {"192.168.1." + std::to_string(i % 100)},
                  {"10.244." + a + "." + b, "fd00::" + a + ":" + b},
                  false,
                  false};
      ASSERT_EQ(index.upsert_pod(std::move(p), now), 0u);
      if (i % 10 == 0) index.upsert_service(service("s" + n, "svc-" + n, {"10.96." + a + "." + b}), now);
    }
    const auto after = mallinfo2().uordblks;
    const double per_pod = static_cast<double>(after - before) / kPods;
    std::printf("remote index: %.0f bytes per pod (%d dual-stack pods, %d services)\n", per_pod, kPods,
                kPods / 10);
    EXPECT_LT(per_pod, 2048);
    EXPECT_GT(per_pod, 100);
  }
}

}  // namespace
}  // namespace podsight::metadata
