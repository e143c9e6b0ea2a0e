// The little test network is quiet: every packet on a veth pair is one a test sent. The network
// families' exact-count tests stand on this.
#include "integration/support/net.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>

namespace podsight::testing {
namespace {

std::uint64_t rx_packets(const std::string& ifname) {
  return std::strtoull(read_file("/sys/class/net/" + ifname + "/statistics/rx_packets").c_str(), nullptr, 10);
}
std::uint64_t rx_bytes(const std::string& ifname) {
  return std::strtoull(read_file("/sys/class/net/" + ifname + "/statistics/rx_bytes").c_str(), nullptr, 10);
}

TEST(NetHarness, VethCarriesExactlyTheTrafficSent) {
  PODSIGHT_REQUIRE_PRIVILEGES();
  NetNs ns;
  Veth veth(ns);
  TestCgroup cg;
  const Placement sender{&cg, &ns};
  constexpr int kCount = 25;
  constexpr std::size_t kPayload = 300;

  const auto p0 = rx_packets(veth.host_if());
  const auto b0 = rx_bytes(veth.host_if());
  ASSERT_EQ(run_in(sender, [&] { return send_udp(veth.host_v4(), 9, kCount, kPayload); }), 0);
  ASSERT_EQ(run_in(sender, [&] { return send_udp(veth.host_v6(), 9, kCount, kPayload); }), 0);
  EXPECT_EQ(rx_packets(veth.host_if()) - p0, 2u * kCount);
  EXPECT_EQ(rx_bytes(veth.host_if()) - b0, kCount * (udp_frame_bytes_v4(kPayload) + udp_frame_bytes_v6(kPayload)));
}

TEST(NetHarness, ChildRunsInTheCgroupAndNamespaceAsked) {
  PODSIGHT_REQUIRE_PRIVILEGES();
  NetNs ns;
  TestCgroup cg;
  char parent_ns[64] = {};
  ASSERT_GT(::readlink("/proc/self/ns/net", parent_ns, sizeof parent_ns - 1), 0);
  ASSERT_EQ(run_in({&cg, &ns}, [&] {
              char self_ns[64] = {};
              if (::readlink("/proc/self/ns/net", self_ns, sizeof self_ns - 1) < 0) return 10;
              if (std::string(self_ns) == parent_ns) return 12;  // still in the parent's namespace
              std::string procs = read_file(cg.path() + "/cgroup.procs");
              return procs.find(std::to_string(::getpid())) == std::string::npos ? 13 : 0;
            }),
            0);
}

}  // namespace
}  // namespace podsight::testing
