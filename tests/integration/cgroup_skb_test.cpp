// cgroup_skb family against the real kernel: exactly known UDP and TCP traffic between processes in
// fresh cgroups, over loopback and over a veth into a network namespace, counted exactly per cgroup
// and direction; programs others attached at the cgroup2 root keep counting; nothing stays attached.
#include "integration/support/harness.hpp"
#include "integration/support/net.hpp"
#include "support/kube_api.hpp"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <memory>
#include <stdexcept>

namespace podsight::testing {
namespace {

constexpr std::size_t kUdpHeader = 8;
constexpr std::size_t kEthernetHeader = 14;  // in veth byte counters, not in IP bytes
constexpr int kSolUdp = 17;                  // SOL_UDP
constexpr int kUdpSegment = 103;             // UDP_SEGMENT (linux/udp.h)
constexpr std::uint8_t kTcpClose = 7;        // TCP_CLOSE (the kernel's tcp_states.h)

std::size_t ip_header(bool v6) { return v6 ? 40 : 20; }

// --- addresses, pipes, child bodies (plain syscalls only: they run in forked children) --------------

struct Endpoint {
  sockaddr_storage ss{};
  socklen_t len = 0;
};

Endpoint endpoint(const std::string& addr, int port) {
  Endpoint e;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&e.ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&e.ss);
  if (::inet_pton(AF_INET, addr.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<std::uint16_t>(port));
    e.len = sizeof *v4;
  } else if (::inet_pton(AF_INET6, addr.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<std::uint16_t>(port));
    e.len = sizeof *v6;
  } else {
    throw std::runtime_error("not an IP address: " + addr);
  }
  return e;
}

int port_of(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return -1;
  return ss.ss_family == AF_INET ? ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port)
                                 : ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
}

void set_timeouts(int fd) {
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

// What a child reports to the test before or after its traffic (a port, TCP counters).
class Pipe {
 public:
  Pipe() {
    if (::pipe2(fds_, O_CLOEXEC) != 0) throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
  }
  ~Pipe() {
    ::close(fds_[0]);
    ::close(fds_[1]);
  }
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;
  [[nodiscard]] int write_end() const { return fds_[1]; }
  // Reads exactly sizeof(T), waiting at most 15 s; false if the child died or never wrote.
  template <typename T>
  bool read(T& out) const {
    auto* p = reinterpret_cast<char*>(&out);
    std::size_t got = 0;
    while (got < sizeof(T)) {
      pollfd pfd{fds_[0], POLLIN, 0};
      if (::poll(&pfd, 1, 15000) != 1) return false;
      ssize_t n = ::read(fds_[0], p + got, sizeof(T) - got);
      if (n <= 0) return false;
      got += static_cast<std::size_t>(n);
    }
    return true;
  }

 private:
  int fds_[2] = {-1, -1};
};

// Static: a forked child of a possibly threaded process must not call malloc.
char g_buf[64 * 1024];

// Binds a UDP socket to `at` (port 0), moves to the cgroup of `move_fd` if >= 0, reports its port,
// and receives `count` datagrams of `payload` bytes.
int receive_udp(const Endpoint& at, int report_fd, int move_fd, int count, std::size_t payload) {
  int fd = ::socket(at.ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || ::bind(fd, reinterpret_cast<const sockaddr*>(&at.ss), at.len) != 0) return 10;
  if (move_fd >= 0 && ::write(move_fd, "0", 1) != 1) return 11;
  set_timeouts(fd);
  int port = port_of(fd);
  if (::write(report_fd, &port, sizeof port) != sizeof port) return 12;
  for (int i = 0; i < count; ++i) {
    if (::recv(fd, g_buf, sizeof g_buf, 0) != static_cast<ssize_t>(payload)) return 13;
  }
  return 0;
}

// Sends `count` datagrams of `payload` bytes from one connected socket; with `gso` all of them in one
// send that the kernel cuts into datagrams (UDP_SEGMENT). Moves to the cgroup of `move_fd` (if >= 0)
// after creating the socket.
int send_datagrams(const Endpoint& to, int count, std::size_t payload, bool gso, int move_fd) {
  int fd = ::socket(to.ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 20;
  if (move_fd >= 0 && ::write(move_fd, "0", 1) != 1) return 21;
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&to.ss), to.len) != 0) return 22;
  if (gso) {
    const std::size_t total = payload * static_cast<std::size_t>(count);
    int segment = static_cast<int>(payload);
    if (total > sizeof g_buf || ::setsockopt(fd, kSolUdp, kUdpSegment, &segment, sizeof segment) != 0)
      return 23;
    return ::send(fd, g_buf, total, 0) == static_cast<ssize_t>(total) ? 0 : 24;
  }
  for (int i = 0; i < count; ++i) {
    if (::send(fd, g_buf, payload, 0) != static_cast<ssize_t>(payload)) return 25;
  }
  return 0;
}

// Reads until the peer's FIN; the byte count, or -1.
long long drain(int fd) {
  long long total = 0;
  for (;;) {
    ssize_t n = ::recv(fd, g_buf, sizeof g_buf, 0);
    if (n == 0) return total;
    if (n < 0) return -1;
    total += n;
  }
}

bool send_all(int fd, std::size_t bytes) {
  while (bytes > 0) {
    ssize_t n = ::send(fd, g_buf, std::min(bytes, sizeof g_buf), MSG_NOSIGNAL);
    if (n <= 0) return false;
    bytes -= static_cast<std::size_t>(n);
  }
  return true;
}

struct TcpCounts {
  std::uint32_t segs_out = 0;
  std::uint32_t segs_in = 0;
};

// One TCP connection whose last packet in each direction is observed by a process, so that every
// packet has passed the hooks when both have exited: the server reads `expect` bytes up to the
// client's FIN, answers `reply` bytes and its own FIN, and waits for the ACK of that FIN (state
// CLOSE); the client's final ACK goes out before its read of the server's FIN returns 0.
int tcp_server(const Endpoint& at, int report_fd, long long expect, std::size_t reply) {
  int lfd = ::socket(at.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (lfd < 0 || ::bind(lfd, reinterpret_cast<const sockaddr*>(&at.ss), at.len) != 0 ||
      ::listen(lfd, 1) != 0) {
    return 30;
  }
  set_timeouts(lfd);
  int port = port_of(lfd);
  if (::write(report_fd, &port, sizeof port) != sizeof port) return 31;
  int fd = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
  if (fd < 0) return 32;
  set_timeouts(fd);
  if (drain(fd) != expect) return 33;
  if (!send_all(fd, reply) || ::shutdown(fd, SHUT_WR) != 0) return 34;
  for (int i = 0; i < 10000; ++i) {
    tcp_info info{};
    socklen_t len = sizeof info;
    if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return 35;
    if (info.tcpi_state == kTcpClose) return 0;
    timespec ms{0, 1000 * 1000};
    ::nanosleep(&ms, nullptr);
  }
  return 36;
}

int tcp_client(const Endpoint& to, int report_fd, std::size_t bytes, long long expect_reply) {
  int fd = ::socket(to.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 40;
  set_timeouts(fd);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&to.ss), to.len) != 0) return 41;
  if (!send_all(fd, bytes) || ::shutdown(fd, SHUT_WR) != 0) return 42;
  if (drain(fd) != expect_reply) return 43;
  tcp_info info{};
  socklen_t len = sizeof info;
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return 44;
  TcpCounts c{info.tcpi_segs_out, info.tcpi_segs_in};
  return ::write(report_fd, &c, sizeof c) == sizeof c ? 0 : 45;
}

// Sets one offload (ETHTOOL_STSO, ETHTOOL_SGRO, ...) of an interface in the caller's network
// namespace. Returns 0 or an errno.
int set_offload(const std::string& ifname, std::uint32_t cmd, bool on) {
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  ethtool_value ev{cmd, on ? 1u : 0u};
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
  ifr.ifr_data = reinterpret_cast<char*>(&ev);
  int err = ::ioctl(fd, SIOCETHTOOL, &ifr) == 0 ? 0 : errno;
  ::close(fd);
  return err;
}

// --- what the agent and the kernel report -----------------------------------------------------------

struct Traffic {
  double packets = 0;
  double bytes = 0;
  bool operator==(const Traffic&) const = default;
  Traffic operator+(const Traffic& o) const { return {packets + o.packets, bytes + o.bytes}; }
};
void PrintTo(const Traffic& t, std::ostream* os) { *os << t.packets << " packets, " << t.bytes << " bytes"; }

// The series of one cgroup and direction; {0, 0} when it does not exist.
Traffic traffic(const Scrape& s, const std::string& cgroup, const std::string& direction) {
  const std::map<std::string, std::string> labels{{"cgroup", cgroup}, {"direction", direction}};
  return {s.value("podsight_network_packets_total", labels).value_or(0),
          s.value("podsight_network_bytes_total", labels).value_or(0)};
}

Traffic udp_traffic(int datagrams, std::size_t payload, bool v6) {
  return {static_cast<double>(datagrams),
          static_cast<double>(datagrams) * static_cast<double>(ip_header(v6) + kUdpHeader + payload)};
}

struct IfCounters {
  std::uint64_t rx_packets = 0, rx_bytes = 0, tx_packets = 0, tx_bytes = 0, rx_dropped = 0, tx_dropped = 0;
};

IfCounters if_counters(const std::string& ifname) {
  auto read = [&](const char* what) {
    return std::stoull(read_file("/sys/class/net/" + ifname + "/statistics/" + what));
  };
  return {read("rx_packets"), read("rx_bytes"),   read("tx_packets"),
          read("tx_bytes"),   read("rx_dropped"), read("tx_dropped")};
}

// IP traffic a veth counted between two readings (its byte counters include the Ethernet header).
Traffic veth_traffic(std::uint64_t packets, std::uint64_t bytes) {
  return {static_cast<double>(packets), static_cast<double>(bytes - kEthernetHeader * packets)};
}

// Ids of the programs bpftool lists as attached at `cgroup` (any attach type).
std::set<std::uint32_t> attached_at(const std::string& cgroup) {
  auto r = run_command({"bpftool", "-j", "cgroup", "show", cgroup});
  EXPECT_EQ(r.exit_code, 0) << r.out;
  std::set<std::uint32_t> ids;
  auto doc = nlohmann::json::parse(r.out, nullptr, false);
  if (!doc.is_array()) return ids;
  for (const auto& p : doc) ids.insert(p.value("id", 0u));
  return ids;
}

std::size_t count_in(const std::set<std::uint32_t>& ids, const std::set<std::uint32_t>& among) {
  return static_cast<std::size_t>(
      std::count_if(ids.begin(), ids.end(), [&](auto id) { return among.count(id); }));
}

// A cgroup_skb egress program of the test's own, as another tool on the node would attach at the
// root: it counts the packets of one cgroup into its own array and allows everything. Attached with
// BPF_F_ALLOW_MULTI through BPF_PROG_ATTACH (as systemd does) or through a bpf_link.
class ForeignCounter {
 public:
  ForeignCounter(std::uint64_t cgroup_id, bool legacy) : legacy_(legacy) { error_ = setup(cgroup_id); }
  ~ForeignCounter() {
    // A legacy attachment outlives its fds: detach it, or it would stay on this shared machine.
    if (attached_) ::bpf_prog_detach2(prog_fd_, cg_fd_, BPF_CGROUP_INET_EGRESS);
    for (int fd : {link_fd_, cg_fd_, prog_fd_, map_fd_}) {
      if (fd >= 0) ::close(fd);
    }
  }
  ForeignCounter(const ForeignCounter&) = delete;
  ForeignCounter& operator=(const ForeignCounter&) = delete;

  [[nodiscard]] const std::string& error() const { return error_; }
  [[nodiscard]] std::uint32_t prog_id() const { return prog_id_; }
  [[nodiscard]] std::uint64_t count() const {
    std::uint32_t key = 0;
    std::uint64_t v = 0;
    return ::bpf_map_lookup_elem(map_fd_, &key, &v) == 0 ? v : ~0ull;
  }

 private:
  static std::string why(const char* what) { return std::string(what) + ": " + std::strerror(errno); }
  std::string setup(std::uint64_t cgroup_id) {
    map_fd_ = ::bpf_map_create(BPF_MAP_TYPE_ARRAY, "psk_foreign", 4, 8, 1, nullptr);
    if (map_fd_ < 0) return why("map create");
    const auto lo = static_cast<std::int32_t>(cgroup_id & 0xffffffffu);
    const auto hi = static_cast<std::int32_t>(cgroup_id >> 32);
    const bpf_insn insns[] = {
        {BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_skb_cgroup_id},  // r0 = socket's cgroup
        {BPF_LD | BPF_DW | BPF_IMM, BPF_REG_1, 0, 0, lo},       // r1 = cgroup_id
        {0, 0, 0, 0, hi},
        {BPF_JMP | BPF_JNE | BPF_X, BPF_REG_0, BPF_REG_1, 9, 0},  // not ours: allow
        {BPF_ST | BPF_MEM | BPF_W, BPF_REG_10, 0, -4, 0},         // key = 0
        {BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_2, BPF_REG_10, 0, 0},
        {BPF_ALU64 | BPF_ADD | BPF_K, BPF_REG_2, 0, 0, -4},  // r2 = &key
        {BPF_LD | BPF_DW | BPF_IMM, BPF_REG_1, BPF_PSEUDO_MAP_FD, 0, map_fd_},
        {0, 0, 0, 0, 0},
        {BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_map_lookup_elem},
        {BPF_JMP | BPF_JEQ | BPF_K, BPF_REG_0, 0, 2, 0},
        {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_1, 0, 0, 1},
        {BPF_STX | BPF_ATOMIC | BPF_DW, BPF_REG_0, BPF_REG_1, 0, BPF_ADD},  // (*value)++
        {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 1},                  // allow
        {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
    };
    LIBBPF_OPTS(bpf_prog_load_opts, opts, .expected_attach_type = BPF_CGROUP_INET_EGRESS);
    prog_fd_ = ::bpf_prog_load(BPF_PROG_TYPE_CGROUP_SKB, "psk_foreign", "GPL", insns,
                               sizeof insns / sizeof insns[0], &opts);
    if (prog_fd_ < 0) return why("prog load");
    cg_fd_ = ::open(cgroup2_root().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (cg_fd_ < 0) return why("open cgroup root");
    if (legacy_) {
      if (::bpf_prog_attach(prog_fd_, cg_fd_, BPF_CGROUP_INET_EGRESS, BPF_F_ALLOW_MULTI) != 0)
        return why("attach");
      attached_ = true;
    } else {
      link_fd_ = ::bpf_link_create(prog_fd_, cg_fd_, BPF_CGROUP_INET_EGRESS, nullptr);
      if (link_fd_ < 0) return why("link create");
    }
    bpf_prog_info info{};
    __u32 len = sizeof info;
    if (::bpf_obj_get_info_by_fd(prog_fd_, &info, &len) != 0) return why("prog info");
    prog_id_ = info.id;
    return {};
  }

  bool legacy_;
  bool attached_ = false;
  int map_fd_ = -1, prog_fd_ = -1, cg_fd_ = -1, link_fd_ = -1;
  std::uint32_t prog_id_ = 0;
  std::string error_;
};

// --- the fixture ---------------------------------------------------------------------------------

class CgroupSkb : public ::testing::Test {
 protected:
  void SetUp() override {
    PODSIGHT_REQUIRE_PRIVILEGES();
    ensure_kernel_mounts();
  }

  // `count` datagrams of `payload` bytes from a socket made in `from` to one made in `to`, at `addr`
  // (the receiver binds it); both processes may sit in another network namespace and may move to
  // `moved` after making their socket. Returns when the receiver has them all.
  static void udp(const Placement& from, const Placement& to, const std::string& addr, int count,
                  std::size_t payload, bool gso = false, const TestCgroup* moved = nullptr) {
    Pipe port_pipe;
    int move_fd = -1;
    if (moved != nullptr) {
      move_fd = ::open((moved->path() + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC);
      ASSERT_GE(move_fd, 0) << std::strerror(errno);
    }
    const Endpoint bind_to = endpoint(addr, 0);
    pid_t receiver =
        spawn_in(to, [&] { return receive_udp(bind_to, port_pipe.write_end(), move_fd, count, payload); });
    int port = 0;
    const bool reported = port_pipe.read(port);
    if (reported) {
      const Endpoint dest = endpoint(addr, port);
      EXPECT_EQ(run_in(from, [&] { return send_datagrams(dest, count, payload, gso, move_fd); }), 0);
    }
    EXPECT_EQ(wait_child(receiver), 0);
    if (move_fd >= 0) ::close(move_fd);
    ASSERT_TRUE(reported) << "UDP receiver never reported its port";
  }
};

// An agent with the default configuration and two fresh cgroups A and B, for the tests that send.
template <typename Param>
class WithAgent : public CgroupSkb, public ::testing::WithParamInterface<Param> {
 protected:
  void SetUp() override {
    CgroupSkb::SetUp();
    if (this->IsSkipped() || this->HasFatalFailure()) return;
    agent_ = std::make_unique<AgentProcess>();
    ASSERT_TRUE(agent_->wait_serving()) << agent_->logs();
    a_ = std::make_unique<TestCgroup>("psk-a");
    b_ = std::make_unique<TestCgroup>("psk-b");
  }
  [[nodiscard]] bool v6() const { return this->GetParam().v6; }
  [[nodiscard]] std::string loopback() const { return v6() ? "::1" : "127.0.0.1"; }
  AgentProcess& agent() { return *agent_; }
  TestCgroup& a() { return *a_; }
  TestCgroup& b() { return *b_; }

 private:
  std::unique_ptr<AgentProcess> agent_;
  std::unique_ptr<TestCgroup> a_;
  std::unique_ptr<TestCgroup> b_;
};

struct Family {
  const char* name;
  bool v6;
};
void PrintTo(const Family& f, std::ostream* os) { *os << f.name; }
class CgroupSkbFamily : public WithAgent<Family> {};
std::string family_name(const ::testing::TestParamInfo<Family>& p) { return p.param.name; }

// Over loopback each datagram passes the egress hook of the sender's socket and the ingress hook of
// the receiver's: exactly N packets and N IP packet lengths for each, nothing the other way.
TEST_P(CgroupSkbFamily, LoopbackUdpExactPerCgroupAndDirection) {
  ASSERT_EQ(agent().get("/readyz").status, 200) << agent().logs();

  constexpr int kDatagrams = 50;
  constexpr std::size_t kPayload = 1000;
  udp({&a()}, {&b()}, loopback(), kDatagrams, kPayload);
  if (HasFatalFailure()) return;

  auto text = agent().get("/metrics").body;
  Scrape s(text);
  EXPECT_EQ(traffic(s, a().relative(), "egress"), udp_traffic(kDatagrams, kPayload, v6()));
  EXPECT_EQ(traffic(s, b().relative(), "ingress"), udp_traffic(kDatagrams, kPayload, v6()));
  EXPECT_EQ(traffic(s, a().relative(), "ingress"), Traffic{});
  EXPECT_EQ(traffic(s, b().relative(), "egress"), Traffic{});
  for (const auto& series : s.series()) {
    if (series.name == "podsight_network_bytes_total" && series.labels.at("cgroup") == a().relative()) {
      EXPECT_EQ(series.labels.at("namespace"), "");
      EXPECT_EQ(series.labels.at("pod"), "");
      EXPECT_EQ(series.labels.at("container"), "");
    }
  }
  EXPECT_EQ(s.value("podsight_program_attached", {{"program", "cgroup_skb"}, {"variant", "link"}}), 1);
  EXPECT_EQ(s.value("podsight_map_update_errors_total", {{"map", "cgroup_skb_counts"}}), 0);
  EXPECT_EQ(s.value("podsight_map_capacity", {{"map", "cgroup_skb_counts"}}), 16384);
  EXPECT_EQ(promtool_problems(text), "");
  EXPECT_EQ(undocumented_metrics(text), std::vector<std::string>{});

  // Counters are read from the kernel at every scrape: more traffic adds up.
  udp({&a()}, {&b()}, loopback(), 3, 10);
  EXPECT_EQ(traffic(agent().scrape(), a().relative(), "egress"),
            udp_traffic(kDatagrams, kPayload, v6()) + udp_traffic(3, 10, v6()));
}

// A packet is charged to the cgroup of its socket (where the socket was made), not to the task that
// happens to run: both processes move to C after making their sockets, and over loopback the
// receiver's ingress hook even runs in the sender's softirq. A and B are charged, C never.
TEST_P(CgroupSkbFamily, ChargedToTheSocketsCgroupNotTheRunningTask) {
  TestCgroup c("psk-c");
  constexpr int kDatagrams = 20;
  constexpr std::size_t kPayload = 300;
  udp({&a()}, {&b()}, loopback(), kDatagrams, kPayload, false, &c);
  if (HasFatalFailure()) return;
  auto s = agent().scrape();
  EXPECT_EQ(traffic(s, a().relative(), "egress"), udp_traffic(kDatagrams, kPayload, v6()));
  EXPECT_EQ(traffic(s, b().relative(), "ingress"), udp_traffic(kDatagrams, kPayload, v6()));
  EXPECT_EQ(traffic(s, c.relative(), "egress"), Traffic{});
  EXPECT_EQ(traffic(s, c.relative(), "ingress"), Traffic{});
}

// One send of M x S bytes with UDP_SEGMENT reaches the egress hook as one GSO packet; it is counted
// as the M datagrams it becomes, with M IP and UDP headers. The receiver (no UDP_GRO) gets M.
TEST_P(CgroupSkbFamily, UdpGsoCountsEveryDatagram) {
  constexpr int kSegments = 12;
  constexpr std::size_t kPayload = 1200;
  udp({&a()}, {&b()}, loopback(), kSegments, kPayload, true);
  if (HasFatalFailure()) return;
  auto s = agent().scrape();
  EXPECT_EQ(traffic(s, a().relative(), "egress"), udp_traffic(kSegments, kPayload, v6()));
  EXPECT_EQ(traffic(s, b().relative(), "ingress"), udp_traffic(kSegments, kPayload, v6()));
}

// Over a veth from a network namespace: the sender (cgroup A, in the namespace) is charged on egress,
// the receiver (cgroup B, root namespace) on ingress; the hooks run wherever the socket lives.
TEST_P(CgroupSkbFamily, VethUdpFromANamespaceExact) {
  NetNs ns;
  Veth veth(ns);
  constexpr int kDatagrams = 40;
  constexpr std::size_t kPayload = 700;
  const IfCounters before = if_counters(veth.host_if());
  udp({&a(), &ns}, {&b()}, v6() ? veth.host_v6() : veth.host_v4(), kDatagrams, kPayload);
  if (HasFatalFailure()) return;
  const IfCounters after = if_counters(veth.host_if());
  auto s = agent().scrape();
  EXPECT_EQ(traffic(s, a().relative(), "egress"), udp_traffic(kDatagrams, kPayload, v6()));
  EXPECT_EQ(traffic(s, b().relative(), "ingress"), udp_traffic(kDatagrams, kPayload, v6()));
  EXPECT_EQ(traffic(s, b().relative(), "egress"), Traffic{});
  // What crossed the veth is exactly that (the interface also counts the Ethernet header).
  EXPECT_EQ(veth_traffic(after.rx_packets - before.rx_packets, after.rx_bytes - before.rx_bytes),
            udp_traffic(kDatagrams, kPayload, v6()));
}

INSTANTIATE_TEST_SUITE_P(Ip, CgroupSkbFamily, ::testing::Values(Family{"ipv4", false}, Family{"ipv6", true}),
                         family_name);

struct TcpCase {
  const char* name;
  bool v6;
  bool gro;  // GRO on the server's end of the veth
};
void PrintTo(const TcpCase& c, std::ostream* os) { *os << c.name; }
class CgroupSkbTcp : public WithAgent<TcpCase> {};

// One TCP connection over a veth with TSO off: the egress hooks see GSO packets that the stack cuts
// in software before the veth, so the veth counts every IP packet as a wire would. Each direction,
// as the agent counts it for the client's cgroup A and the server's cgroup B, equals what the veth
// counted and what the client's own socket counted (TCP_INFO segs_out / segs_in), whatever TCP chose
// to send (ACKs, window updates, probes). With GRO on the server's end, B's ingress hook sees merged
// packets instead, and must count them as the packets A sent.
TEST_P(CgroupSkbTcp, VethExchangeMatchesTheWireAndTcpInfo) {
  const bool gro = GetParam().gro;
  NetNs ns;
  Veth veth(ns);
  ASSERT_EQ(set_offload(veth.host_if(), ETHTOOL_STSO, false), 0);
  ASSERT_EQ(set_offload(veth.host_if(), ETHTOOL_SGRO, gro), 0);
  ASSERT_EQ(run_in({nullptr, &ns}, [&] { return set_offload(veth.peer_if(), ETHTOOL_STSO, false); }), 0);
  constexpr std::size_t kRequest = 200 * 1000;
  constexpr std::size_t kReply = 5000;
  const std::string server_addr = v6() ? veth.host_v6() : veth.host_v4();

  const IfCounters before = if_counters(veth.host_if());
  Pipe server_pipe;
  Pipe client_pipe;
  const Endpoint bind_to = endpoint(server_addr, 0);
  pid_t server = spawn_in({&b()}, [&] {
    return tcp_server(bind_to, server_pipe.write_end(), static_cast<long long>(kRequest), kReply);
  });
  int port = 0;
  ASSERT_TRUE(server_pipe.read(port)) << "server never reported its port";
  const Endpoint dest = endpoint(server_addr, port);
  pid_t client = spawn_in({&a(), &ns}, [&] {
    return tcp_client(dest, client_pipe.write_end(), kRequest, static_cast<long long>(kReply));
  });
  TcpCounts tcp;
  const bool reported = client_pipe.read(tcp);
  EXPECT_EQ(wait_child(client), 0);
  EXPECT_EQ(wait_child(server), 0);
  ASSERT_TRUE(reported);
  const IfCounters after = if_counters(veth.host_if());
  ASSERT_EQ(after.rx_dropped + after.tx_dropped, before.rx_dropped + before.tx_dropped) << "the veth dropped";
  const Traffic a_to_b = veth_traffic(after.rx_packets - before.rx_packets, after.rx_bytes - before.rx_bytes);
  const Traffic b_to_a = veth_traffic(after.tx_packets - before.tx_packets, after.tx_bytes - before.tx_bytes);

  auto s = agent().scrape();
  const Traffic a_egress = traffic(s, a().relative(), "egress");
  // At least the payload plus one header per MSS-sized segment went each way.
  EXPECT_GT(a_egress.bytes, static_cast<double>(kRequest));
  EXPECT_GT(a_egress.packets, static_cast<double>(kRequest / 1500));
  EXPECT_GT(b_to_a.bytes, static_cast<double>(kReply));
  EXPECT_EQ(a_egress.packets, tcp.segs_out);
  EXPECT_EQ(traffic(s, a().relative(), "ingress").packets, tcp.segs_in);
  EXPECT_EQ(traffic(s, b().relative(), "egress"), b_to_a);
  EXPECT_EQ(traffic(s, a().relative(), "ingress"), b_to_a);
  if (!gro) {
    EXPECT_EQ(a_egress, a_to_b);
    EXPECT_EQ(traffic(s, b().relative(), "ingress"), a_to_b);
  } else {
    // Receiving through GRO the veth counts in its NAPI poll, where (on 6.x) its byte counter leaves
    // out the Ethernet header: compare packets with the veth, and bytes with A's egress, which the
    // run without GRO proves equal to the wire.
    EXPECT_EQ(a_egress.packets, a_to_b.packets);
    EXPECT_EQ(traffic(s, b().relative(), "ingress"), a_egress);
  }
}

INSTANTIATE_TEST_SUITE_P(Ip, CgroupSkbTcp,
                         ::testing::Values(TcpCase{"ipv4", false, false}, TcpCase{"ipv6", true, false},
                                           TcpCase{"ipv4_gro", false, true}, TcpCase{"ipv6_gro", true, true}),
                         [](const ::testing::TestParamInfo<TcpCase>& p) {
                           return std::string(p.param.name);
                         });

// Another tool's program attached at the root before the agent starts keeps counting while the agent
// runs, after it stops, and after it is SIGKILLed; the agent's two links are at the root while it runs
// and gone after either exit. Legacy BPF_F_ALLOW_MULTI attachments and links both.
class CgroupSkbCoexists : public CgroupSkb, public ::testing::WithParamInterface<bool> {};

TEST_P(CgroupSkbCoexists, ForeignProgramAtTheRootKeepsCountingAndNothingOfOursStays) {
  TestCgroup a("psk-a");
  TestCgroup b("psk-b");
  ForeignCounter foreign(a.id(), GetParam());
  ASSERT_EQ(foreign.error(), "");
  const std::string root = cgroup2_root();
  std::uint64_t sent = 0;
  auto batch = [&](int n) {
    udp({&a}, {&b}, "127.0.0.1", n, 100);
    sent += static_cast<std::uint64_t>(n);
  };
  batch(5);
  EXPECT_EQ(foreign.count(), sent);

  for (int sig : {SIGTERM, SIGKILL}) {
    SCOPED_TRACE(sig == SIGTERM ? "SIGTERM" : "SIGKILL");
    AgentProcess agent;
    ASSERT_TRUE(agent.wait_serving()) << agent.logs();
    ASSERT_EQ(agent.get("/readyz").status, 200) << agent.logs();
    const BpfObjects held = bpf_objects_held_by(agent.pid());
    auto at_root = attached_at(root);
    EXPECT_EQ(count_in(held.progs, at_root), 2u) << "the agent's ingress and egress programs";
    EXPECT_EQ(at_root.count(foreign.prog_id()), 1u);

    const Traffic before = traffic(agent.scrape(), a.relative(), "egress");
    batch(7);
    EXPECT_EQ(foreign.count(), sent);
    EXPECT_EQ(traffic(agent.scrape(), a.relative(), "egress"), before + udp_traffic(7, 100, false));

    EXPECT_EQ(agent.stop(sig, std::chrono::seconds(5)), sig == SIGTERM ? 0 : 128 + SIGKILL);
    EXPECT_TRUE(eventually_released(held)) << bpf_objects_alive(held).describe();
    at_root = attached_at(root);
    EXPECT_EQ(count_in(held.progs, at_root), 0u);
    EXPECT_EQ(at_root.count(foreign.prog_id()), 1u);
    batch(11);
    EXPECT_EQ(foreign.count(), sent);
  }
}

INSTANTIATE_TEST_SUITE_P(Attach, CgroupSkbCoexists, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& p) {
                           return p.param ? "legacy_multi" : "link";
                         });

// With the map full, keys already in it keep counting and every insert that did not fit is counted.
// The agent attaches at a test cgroup P (cgroup_root), so only its children A, B, C are counted and
// the map fills in a known order; it says it is not at the hierarchy root.
TEST_F(CgroupSkb, FullMapKeepsExistingKeysAndCountsFailedInserts) {
  TestCgroup p("psk-p");
  const std::string under_p = p.relative().substr(1) + "/";
  TestCgroup a(under_p + "a");
  TestCgroup b(under_p + "b");
  TestCgroup c(under_p + "c");
  auto label = [&](const TestCgroup& cg) { return cg.relative().substr(p.relative().size()); };
  AgentProcess agent(R"({"cgroup_root": ")" + p.path() +
                     R"(", "programs": {"cgroup_skb": {"max_entries": 2}}})");
  ASSERT_TRUE(agent.wait_serving()) << agent.logs();
  auto ready = agent.get("/readyz");
  EXPECT_EQ(ready.status, 200) << ready.body;
  EXPECT_NE(ready.body.find("\"degraded\""), std::string::npos) << ready.body;
  EXPECT_NE(ready.body.find("is not the root of the cgroup2 hierarchy"), std::string::npos) << ready.body;

  udp({&a}, {&b}, "127.0.0.1", 10, 64);  // fills the map: (A, egress), (B, ingress)
  constexpr int kLate = 9;
  udp({&c}, {&b}, "127.0.0.1", kLate, 64);  // (C, egress) does not fit; (B, ingress) counts on
  if (HasFatalFailure()) return;
  auto text = agent.get("/metrics").body;
  Scrape s(text);
  EXPECT_EQ(traffic(s, label(a), "egress"), udp_traffic(10, 64, false));
  EXPECT_EQ(traffic(s, label(b), "ingress"), udp_traffic(10 + kLate, 64, false));
  EXPECT_EQ(traffic(s, label(c), "egress"), Traffic{});
  EXPECT_EQ(s.value("podsight_map_entries", {{"map", "cgroup_skb_counts"}}), 2);
  EXPECT_EQ(s.value("podsight_map_capacity", {{"map", "cgroup_skb_counts"}}), 2);
  EXPECT_EQ(s.value("podsight_map_update_errors_total", {{"map", "cgroup_skb_counts"}}), kLate);
  EXPECT_EQ(s.value("podsight_program_state", {{"program", "cgroup_skb"}, {"state", "degraded"}}), 1);
  EXPECT_EQ(promtool_problems(text), "");
}

// Both directions of a cgroup share one map entry: a cgroup that sends to itself fills a map of one
// entry and is counted exactly both ways; another cgroup's packets then do not fit and are counted
// as failed inserts, while the first cgroup's ingress keeps counting.
TEST_F(CgroupSkb, BothDirectionsOfACgroupShareOneEntry) {
  TestCgroup p("psk-p1");
  TestCgroup a(p.relative().substr(1) + "/a");
  TestCgroup b(p.relative().substr(1) + "/b");
  auto label = [&](const TestCgroup& cg) { return cg.relative().substr(p.relative().size()); };
  AgentProcess agent(R"({"cgroup_root": ")" + p.path() +
                     R"(", "programs": {"cgroup_skb": {"max_entries": 1}}})");
  ASSERT_TRUE(agent.wait_serving()) << agent.logs();

  udp({&a}, {&a}, "127.0.0.1", 10, 64);
  constexpr int kLate = 4;
  udp({&b}, {&a}, "127.0.0.1", kLate, 64);
  if (HasFatalFailure()) return;
  auto text = agent.get("/metrics").body;
  Scrape s(text);
  EXPECT_EQ(traffic(s, label(a), "egress"), udp_traffic(10, 64, false));
  EXPECT_EQ(traffic(s, label(a), "ingress"), udp_traffic(10 + kLate, 64, false));
  EXPECT_EQ(traffic(s, label(b), "egress"), Traffic{});
  EXPECT_EQ(s.value("podsight_map_entries", {{"map", "cgroup_skb_counts"}}), 1);
  EXPECT_EQ(s.value("podsight_map_update_errors_total", {{"map", "cgroup_skb_counts"}}), kLate);
  EXPECT_EQ(promtool_problems(text), "");
}

// A cgroup_root that is no cgroup2 directory fails this family with the reason, and only this one.
TEST_F(CgroupSkb, NoCgroup2AtTheRootFailsOnlyThisFamily) {
  const std::string dir = make_temp_dir("podsight-cgskb");
  AgentProcess agent(R"({"cgroup_root": ")" + dir + R"("})");
  ASSERT_TRUE(agent.wait_serving()) << agent.logs();
  auto ready = agent.get("/readyz");
  EXPECT_EQ(ready.status, 503) << ready.body;
  auto doc = nlohmann::json::parse(ready.body);
  for (const auto& f : doc["families"]) {
    if (f["name"] == "cgroup_skb") {
      EXPECT_EQ(f["state"], "failed");
      EXPECT_NE(f["error"].get<std::string>().find("not a cgroup v2 directory (" + dir + ")"),
                std::string::npos)
          << f["error"];
    } else if (f["name"] == "exec") {
      EXPECT_EQ(f["state"], "attached");
    } else {
      EXPECT_NE(f["state"], "failed") << f["name"];  // others keep their own state (xdp: disabled)
    }
  }
  auto s = agent.scrape();
  EXPECT_EQ(s.value("podsight_program_state", {{"program", "cgroup_skb"}, {"state", "failed"}}), 1);
  EXPECT_EQ(s.value("podsight_program_attached", {{"program", "cgroup_skb"}}), 0);
  EXPECT_EQ(s.count("podsight_network_bytes_total"), 0u);
  std::filesystem::remove_all(dir);
}

// Disabled, the family attaches nothing and exports no traffic series.
TEST_F(CgroupSkb, DisabledAttachesNothing) {
  AgentProcess agent(R"({"programs": {"cgroup_skb": {"enabled": false}}})");
  ASSERT_TRUE(agent.wait_serving()) << agent.logs();
  EXPECT_EQ(agent.get("/readyz").status, 200);
  EXPECT_EQ(count_in(bpf_objects_held_by(agent.pid()).progs, attached_at(cgroup2_root())), 0u);
  auto s = agent.scrape();
  EXPECT_EQ(s.value("podsight_program_state", {{"program", "cgroup_skb"}, {"state", "disabled"}}), 1);
  EXPECT_EQ(s.count("podsight_network_packets_total"), 0u);
}

// --- per-CPU slots (bpf/shared/cgroup_skb.h) ------------------------------------------------------

// A slot's five u64 words per CPU (struct cgroup_skb_slot): four counters, then the owner.
constexpr std::size_t kOwnerWord = 4;

// The u64 words of one per-CPU map value, summed over CPUs (`words` per CPU).
std::vector<std::uint64_t> percpu_words(int fd, const void* key, std::size_t words, bool* found) {
  const int ncpus = ::libbpf_num_possible_cpus();
  std::vector<std::uint64_t> raw(static_cast<std::size_t>(ncpus) * words);
  std::vector<std::uint64_t> sum(words);
  *found = ::bpf_map_lookup_elem(fd, key, raw.data()) == 0;
  for (int cpu = 0; *found && cpu < ncpus; ++cpu) {
    for (std::size_t w = 0; w < words; ++w) sum[w] += raw[static_cast<std::size_t>(cpu) * words + w];
  }
  return sum;
}

// The first packets of a cgroup go to the hash; a scrape gives a cgroup in the hash its own slot and
// later packets go there; every scrape adds both, exactly. Two cgroups whose ids share their slot
// index (two slots: max_entries 2) both count exactly: one in the slot, the other in the hash.
TEST_F(CgroupSkb, KnownCgroupCountsInItsSlotExactlyAcrossScrapes) {
  TestCgroup p("psk-p2");
  std::vector<std::unique_ptr<TestCgroup>> children;
  for (const char* n : {"a", "b", "c"})
    children.push_back(std::make_unique<TestCgroup>(p.relative().substr(1) + "/" + n));
  // Three ids, two parities: two of them share a slot index.
  TestCgroup* x = nullptr;
  TestCgroup* y = nullptr;
  for (std::size_t i = 0; i < children.size() && x == nullptr; ++i) {
    for (std::size_t j = i + 1; j < children.size(); ++j) {
      if ((children[i]->id() & 1) == (children[j]->id() & 1)) {
        x = children[i].get();
        y = children[j].get();
        break;
      }
    }
  }
  ASSERT_NE(x, nullptr);
  auto label = [&](const TestCgroup& cg) { return cg.relative().substr(p.relative().size()); };
  AgentProcess agent(R"({"cgroup_root": ")" + p.path() +
                     R"(", "programs": {"cgroup_skb": {"max_entries": 2}}})");
  ASSERT_TRUE(agent.wait_serving()) << agent.logs();

  constexpr int kFirst = 10;
  constexpr int kLater = 7;
  udp({x}, {y}, "127.0.0.1", kFirst, 64);
  if (HasFatalFailure()) return;
  Scrape first(agent.get("/metrics").body);
  EXPECT_EQ(traffic(first, label(*x), "egress"), udp_traffic(kFirst, 64, false));
  EXPECT_EQ(traffic(first, label(*y), "ingress"), udp_traffic(kFirst, 64, false));

  udp({x}, {y}, "127.0.0.1", kLater, 64);
  if (HasFatalFailure()) return;
  auto text = agent.get("/metrics").body;
  Scrape later(text);
  EXPECT_EQ(traffic(later, label(*x), "egress"), udp_traffic(kFirst + kLater, 64, false));
  EXPECT_EQ(traffic(later, label(*y), "ingress"), udp_traffic(kFirst + kLater, 64, false));
  EXPECT_EQ(traffic(later, label(*x), "ingress"), Traffic{});
  EXPECT_EQ(traffic(later, label(*y), "egress"), Traffic{});
  EXPECT_EQ(promtool_problems(text), "");

  // Where the packets were counted: the slot at the shared index belongs to x or y (whichever the
  // scrape saw first) and holds exactly the later packets of its owner; the owner's hash entry
  // holds the first ones, the other cgroup's hash entry all of them. The other slot is free.
  const int slots = map_held_by(agent.pid(), "cgroup_skb_slot");
  const int counts = map_held_by(agent.pid(), "cgroup_skb_coun");
  ASSERT_GE(slots, 0);
  ASSERT_GE(counts, 0);
  const int ncpus = ::libbpf_num_possible_cpus();
  const auto shared_idx = static_cast<std::uint32_t>(x->id() & 1);
  std::vector<std::uint64_t> raw(static_cast<std::size_t>(ncpus) * 5);
  ASSERT_EQ(::bpf_map_lookup_elem(slots, &shared_idx, raw.data()), 0) << std::strerror(errno);
  const std::uint64_t owner = raw[kOwnerWord];
  ASSERT_TRUE(owner == x->id() || owner == y->id()) << owner;
  for (int cpu = 1; cpu < ncpus; ++cpu) EXPECT_EQ(raw[static_cast<std::size_t>(cpu) * 5 + kOwnerWord], owner);
  bool found = false;
  const auto in_slot = percpu_words(slots, &shared_idx, 5, &found);
  ASSERT_TRUE(found);
  // words: ingress packets, ingress bytes, egress packets, egress bytes, owner
  const std::size_t dir = owner == x->id() ? 2 : 0;
  const Traffic later_only = udp_traffic(kLater, 64, false);
  EXPECT_EQ(static_cast<double>(in_slot[dir]), later_only.packets);
  EXPECT_EQ(static_cast<double>(in_slot[dir + 1]), later_only.bytes);

  const std::uint64_t other = owner == x->id() ? y->id() : x->id();
  const auto owner_hash = percpu_words(counts, &owner, 4, &found);
  ASSERT_TRUE(found);
  EXPECT_EQ(static_cast<double>(owner_hash[dir]), udp_traffic(kFirst, 64, false).packets);
  const auto other_hash = percpu_words(counts, &other, 4, &found);
  ASSERT_TRUE(found);
  const std::size_t other_dir = dir == 2 ? 0 : 2;
  EXPECT_EQ(static_cast<double>(other_hash[other_dir]), udp_traffic(kFirst + kLater, 64, false).packets);

  const std::uint32_t free_idx = shared_idx ^ 1u;
  const auto free_slot = percpu_words(slots, &free_idx, 5, &found);
  ASSERT_TRUE(found);
  EXPECT_EQ(free_slot, std::vector<std::uint64_t>(5, 0));
  ::close(slots);
  ::close(counts);
}

// A removed cgroup's entry goes (garbage collection, grace period 0); the scrape after that frees its
// slot with its counts, and a later cgroup with the same slot index gets the slot, starting from zero:
// its totals are exact, none of the removed cgroup's packets among them.
TEST_F(CgroupSkb, SlotOfARemovedCgroupGoesToTheNextCgroupFromZero) {
  TestCgroup p("psk-p3");
  std::vector<std::unique_ptr<TestCgroup>> children;
  for (const char* n : {"a", "b", "c"}) {
    children.push_back(std::make_unique<TestCgroup>(p.relative().substr(1) + "/" + n));
  }
  std::unique_ptr<TestCgroup> x;
  std::unique_ptr<TestCgroup> z;
  for (std::size_t i = 0; i < children.size() && !x; ++i) {
    for (std::size_t j = i + 1; j < children.size(); ++j) {
      if ((children[i]->id() & 1) == (children[j]->id() & 1)) {
        x = std::move(children[i]);
        z = std::move(children[j]);
        break;
      }
    }
  }
  ASSERT_TRUE(x && z);
  const std::uint64_t x_id = x->id();
  const std::uint64_t z_id = z->id();
  const std::string x_label = x->relative().substr(p.relative().size());
  const std::string z_label = z->relative().substr(p.relative().size());
  AgentProcess agent(R"({"cgroup_root": ")" + p.path() +
                     R"(", "programs": {"cgroup_skb": {"max_entries": 2}},
                        "gc": {"grace_period_seconds": 0, "interval_seconds": 1}})");
  ASSERT_TRUE(agent.wait_serving()) << agent.logs();
  const int slots = map_held_by(agent.pid(), "cgroup_skb_slot");
  ASSERT_GE(slots, 0);
  const auto idx = static_cast<std::uint32_t>(x_id & 1);
  auto owner = [&] {
    bool found = false;
    const auto words = percpu_words(slots, &idx, 5, &found);
    return found ? words[kOwnerWord] / static_cast<std::uint64_t>(::libbpf_num_possible_cpus()) : ~0ull;
  };

  udp({x.get()}, {x.get()}, "127.0.0.1", 5, 64);
  agent.get("/metrics");
  udp({x.get()}, {x.get()}, "127.0.0.1", 6, 64);  // into x's slot
  if (HasFatalFailure()) return;
  EXPECT_EQ(traffic(agent.scrape(), x_label, "egress"), udp_traffic(11, 64, false));
  EXPECT_EQ(owner(), x_id);

  x.reset();  // removed; garbage collection drops its entry, then a scrape frees its slot
  EXPECT_TRUE(eventually([&] {
    return traffic(agent.scrape(), x_label, "egress") == Traffic{} && owner() == 0;
  })) << "slot owner "
      << owner();

  udp({z.get()}, {z.get()}, "127.0.0.1", 4, 64);  // z has no slot yet: into the hash
  agent.get("/metrics");                          // gives z the free slot
  EXPECT_EQ(owner(), z_id);
  udp({z.get()}, {z.get()}, "127.0.0.1", 3, 64);  // into z's slot
  if (HasFatalFailure()) return;
  auto text = agent.get("/metrics").body;
  Scrape s(text);
  EXPECT_EQ(traffic(s, z_label, "egress"), udp_traffic(7, 64, false));
  EXPECT_EQ(traffic(s, z_label, "ingress"), udp_traffic(7, 64, false));
  bool found = false;
  const auto in_slot = percpu_words(slots, &idx, 5, &found);
  ASSERT_TRUE(found);
  EXPECT_EQ(static_cast<double>(in_slot[0]), udp_traffic(3, 64, false).packets);  // ingress
  EXPECT_EQ(static_cast<double>(in_slot[2]), udp_traffic(3, 64, false).packets);  // egress
  EXPECT_EQ(promtool_problems(text), "");
  ::close(slots);
}

}  // namespace
}  // namespace podsight::testing
