// Little networks for integration tests: network namespaces joined to the root namespace by veth
// pairs, quiet enough that every packet on them is one the test sent, and child processes placed in
// a chosen cgroup and namespace to send exactly known traffic.
#pragma once

#include "integration/support/harness.hpp"

#include <sys/types.h>

#include <cstddef>
#include <functional>
#include <string>

namespace podsight::testing {

// A network namespace made with `ip netns add` (so `ip netns exec` and /var/run/netns work too),
// deleted on destruction. Loopback inside it is up.
class NetNs {
 public:
  NetNs();
  ~NetNs();
  NetNs(const NetNs&) = delete;
  NetNs& operator=(const NetNs&) = delete;

  [[nodiscard]] const std::string& name() const { return name_; }
  [[nodiscard]] std::string path() const { return "/var/run/netns/" + name_; }
  // Runs `ip ARGS...` inside the namespace; fails the test on a non-zero exit.
  void ip(const std::vector<std::string>& args) const;

 private:
  std::string name_;
};

// A veth pair: `host_if` in the root namespace, `peer_if` inside `ns`, both up, with an IPv4 /30 and
// an IPv6 /64 on each end. Made quiet so that counts are exact: static neighbour entries on both
// sides (no ARP, no neighbour discovery), no IPv6 link-local address, no DAD, no router
// solicitations, and MLD reports left to settle before the constructor returns.
// Removed (both ends) on destruction.
class Veth {
 public:
  explicit Veth(const NetNs& ns);
  ~Veth();
  Veth(const Veth&) = delete;
  Veth& operator=(const Veth&) = delete;

  [[nodiscard]] const std::string& host_if() const { return host_if_; }
  [[nodiscard]] const std::string& peer_if() const { return peer_if_; }
  [[nodiscard]] int host_ifindex() const;
  [[nodiscard]] const std::string& host_v4() const { return host_v4_; }
  [[nodiscard]] const std::string& peer_v4() const { return peer_v4_; }
  [[nodiscard]] const std::string& host_v6() const { return host_v6_; }
  [[nodiscard]] const std::string& peer_v6() const { return peer_v6_; }

 private:
  const NetNs& ns_;
  std::string host_if_;
  std::string peer_if_;
  std::string host_v4_;
  std::string peer_v4_;
  std::string host_v6_;
  std::string peer_v6_;
};

// Where a child process runs: a cgroup (else the caller's), a network namespace (else the root one).
struct Placement {
  const TestCgroup* cgroup = nullptr;
  const NetNs* netns = nullptr;
};

// Forks a child that joins `where` and then runs `body`; the child exits with body's return value
// (126 if it could not join). The parent gets the pid. Keep bodies to plain syscalls: the child of a
// threaded test process must not take locks another thread may hold.
pid_t spawn_in(const Placement& where, const std::function<int()>& body);
// Waits for a child; its exit code, or -1 if a signal ended it.
int wait_child(pid_t pid);
// spawn_in + wait_child.
int run_in(const Placement& where, const std::function<int()>& body);

// Sends `count` UDP datagrams with `payload` bytes each to addr:port (IPv4 or IPv6 literal) from the
// calling process, one socket for all. Returns 0, or the errno of the first failure.
int send_udp(const std::string& addr, int port, int count, std::size_t payload);

// On-wire sizes of such a datagram as XDP sees it (Ethernet header included, no FCS).
constexpr std::size_t udp_frame_bytes_v4(std::size_t payload) { return 14 + 20 + 8 + payload; }
constexpr std::size_t udp_frame_bytes_v6(std::size_t payload) { return 14 + 40 + 8 + payload; }

}  // namespace podsight::testing
