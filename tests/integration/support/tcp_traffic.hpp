// TCP traffic with exactly known payloads for integration tests: a server and a client child process,
// each placed in its own cgroup and network namespace, that exchange fixed byte counts over M
// connections, stop with every byte acknowledged, and close when told.
#pragma once

#include "integration/support/net.hpp"

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace podsight::testing {

struct TcpExchangeSpec {
  std::string server_addr;  // IPv4 or IPv6 literal the server listens on and the client connects to
  int port = 0;
  int connections = 1;
  std::size_t client_bytes = 0;  // sent by the client on each connection
  std::size_t server_bytes = 0;  // sent back by the server on each connection, after it read the above
  // Close with RST (SO_LINGER 0) on both sides instead of FIN: nothing is left to retransmit after close.
  bool reset_on_close = false;
  // Where the client connects instead, when set (a service address the client's namespace DNATs to
  // server_addr:port, as kube-proxy does); same address family.
  std::string connect_addr;
};

// Runs the exchange. The constructor returns once the server listens; wait_exchanged() once every
// connection is established, every payload byte was read by the other side and acknowledged (both
// send queues empty), so counters read now are final for the open connections.
class TcpExchange {
 public:
  TcpExchange(const Placement& client, const Placement& server, TcpExchangeSpec spec);
  ~TcpExchange();
  TcpExchange(const TcpExchange&) = delete;
  TcpExchange& operator=(const TcpExchange&) = delete;

  // Fails the test (and returns false) if a side gave up.
  bool wait_exchanged();
  // After wait_exchanged(): segments the kernel retransmitted on the client's / the server's
  // connections so far (per socket, TCP_INFO tcpi_total_retrans; the server's include SYN-ACKs).
  [[nodiscard]] std::uint64_t client_retransmits() const { return client_retrans_; }
  [[nodiscard]] std::uint64_t server_retransmits() const { return server_retrans_; }
  // Tells both sides to close every connection (client first, the server after it read EOF) and waits
  // for both processes. Fails the test (and returns false) if a side did not exit cleanly.
  bool close();

 private:
  TcpExchangeSpec spec_;
  pid_t server_ = -1;
  pid_t client_ = -1;
  int server_events_ = -1;  // read end: one byte per step the server reached
  int client_events_ = -1;
  int server_cmd_ = -1;  // write end: one byte tells the side to close
  int client_cmd_ = -1;
  std::uint64_t client_retrans_ = 0;
  std::uint64_t server_retrans_ = 0;
};

// One connect() from the calling process; returns 0 on success, else the errno (ECONNREFUSED for a
// port nobody listens on).
int tcp_connect_once(const std::string& addr, int port);

// Whether this kernel can run a tcp lifecycle variant, asked the way the agent's own probes ask.
bool kernel_supports_tcp_variant(const std::string& variant);
// Whether the agent can keep open connections' records in socket storage with `variant`: BTF-typed
// handlers, the storage iterator (a minimal one loads, as the agent probes it), and compare-and-swap
// (Linux >= 5.12).
bool kernel_supports_tcp_sk_storage(const std::string& variant);
// ... with the variant `auto` picks (tp_btf, else fentry).
inline bool kernel_supports_tcp_sk_storage() {
  return kernel_supports_tcp_sk_storage("tp_btf") || kernel_supports_tcp_sk_storage("fentry");
}

// Whether the agents the tests start may setns() into other network namespaces (CAP_SYS_ADMIN), as
// open_connections iter_tcp needs for bytes of open connections and adoption needs at start-up: false
// when PODSIGHT_TEST_AGENT_CAPS limits them to capabilities without SYS_ADMIN (tests/packaging runs
// the suite so, with the helm chart's capabilities).
bool agents_may_setns();

// A counter of the kernel's TCP MIB as seen from network namespace `ns`: a "Tcp:" field of
// /proc/net/snmp (e.g. "RetransSegs") or a "TcpExt:" one of /proc/net/netstat (e.g. "TCPRetransFail").
std::uint64_t tcp_mib(const NetNs& ns, const std::string& field);

}  // namespace podsight::testing
