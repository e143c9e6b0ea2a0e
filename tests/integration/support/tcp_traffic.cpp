// TCP client/server child processes exchanging exactly known payloads, for the tcp family's tests.
#include "integration/support/tcp_traffic.hpp"

#include "bpf/probe.hpp"

#include <bpf/btf.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <array>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <stdexcept>
#include <vector>

namespace podsight::testing {
namespace {

constexpr int kMaxConnections = 256;
// Child exit codes, so a failing test says which step failed.
enum ChildExit : int {
  kOk = 0,
  kSocket = 30,
  kBind = 31,
  kListen = 32,
  kAccept = 33,
  kConnect = 34,
  kWrite = 35,
  kRead = 36,
  kUnacked = 37,
  kControl = 38,
};

struct Address {
  sockaddr_storage ss{};
  socklen_t len = 0;
};

Address parse_address(const std::string& addr, int port) {
  Address a;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&a.ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.ss);
  if (::inet_pton(AF_INET, addr.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<std::uint16_t>(port));
    a.len = sizeof *v4;
  } else if (::inet_pton(AF_INET6, addr.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<std::uint16_t>(port));
    a.len = sizeof *v6;
  } else {
    throw std::invalid_argument("not an IP literal: " + addr);
  }
  return a;
}

// The helpers below run in forked children of a threaded process: syscalls only, no allocation.
bool write_all(int fd, const char* buf, std::size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, buf, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    buf += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

bool read_exact(int fd, char* buf, std::size_t cap, std::size_t n) {
  while (n > 0) {
    ssize_t r = ::read(fd, buf, n < cap ? n : cap);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

double now_seconds() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// Waits until the kernel holds no unacknowledged or unsent byte on any of the sockets (SIOCOUTQ is
// write_seq - snd_una for TCP), so the peer acknowledged everything we wrote.
bool wait_all_acked(const int* fds, int n) {
  const double deadline = now_seconds() + 30;
  for (int i = 0; i < n; ++i) {
    for (;;) {
      int outq = 0;
      if (::ioctl(fds[i], SIOCOUTQ, &outq) != 0) return false;
      if (outq == 0) break;
      if (now_seconds() > deadline) return false;
      timespec ms{0, 1000000};
      ::nanosleep(&ms, nullptr);
    }
  }
  return true;
}

void close_socket(int fd, bool reset) {
  if (reset) {
    linger l{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  }
  ::close(fd);
}

bool signal_parent(int fd) { return ::write(fd, "x", 1) == 1; }

// Segments the kernel retransmitted on these sockets (tcp_sock.total_retrans: data, SYN, and on a
// passive socket the SYN-ACKs its request socket retransmitted), UINT64_MAX if one cannot be read.
std::uint64_t total_retrans(const int* fds, int n) {
  std::uint64_t sum = 0;
  for (int i = 0; i < n; ++i) {
    tcp_info info{};
    socklen_t len = sizeof info;
    if (::getsockopt(fds[i], IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return UINT64_MAX;
    sum += info.tcpi_total_retrans;
  }
  return sum;
}

// The exchanged event: one byte, then the side's retransmitted segments (one write: atomic on a pipe).
bool signal_exchanged(int fd, std::uint64_t retrans) {
  std::array<char, 1 + sizeof retrans> msg{'x'};
  std::memcpy(msg.data() + 1, &retrans, sizeof retrans);
  return ::write(fd, msg.data(), msg.size()) == static_cast<ssize_t>(msg.size());
}

bool wait_parent(int fd) {
  char c = 0;
  for (;;) {
    ssize_t r = ::read(fd, &c, 1);
    if (r < 0 && errno == EINTR) continue;
    return r == 1;
  }
}

// Parent side: waits for one byte from a child (60 s); false if the child closed the pipe or is silent.
bool wait_child_event(int fd) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, 60000) != 1) return false;
  char c = 0;
  return ::read(fd, &c, 1) == 1;
}

// The u64 that follows an event byte (already written: one write() put both in the pipe).
bool read_u64(int fd, std::uint64_t& out) {
  std::array<char, sizeof out> buf{};
  if (::read(fd, buf.data(), buf.size()) != static_cast<ssize_t>(buf.size())) return false;
  std::memcpy(&out, buf.data(), sizeof out);
  return out != UINT64_MAX;
}

std::array<int, 2> make_pipe() {
  std::array<int, 2> p{};
  if (::pipe2(p.data(), O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  return p;
}

}  // namespace

TcpExchange::TcpExchange(const Placement& client, const Placement& server, TcpExchangeSpec spec)
    : spec_(std::move(spec)) {
  if (spec_.connections < 1 || spec_.connections > kMaxConnections)
    throw std::invalid_argument("connections");
  const Address addr = parse_address(spec_.server_addr, spec_.port);
  const Address target = spec_.connect_addr.empty() ? addr : parse_address(spec_.connect_addr, spec_.port);
  const int n = spec_.connections;
  const bool reset = spec_.reset_on_close;
  const std::size_t client_bytes = spec_.client_bytes;
  const std::size_t server_bytes = spec_.server_bytes;
  // Buffers exist before the fork: the children only make syscalls.
  auto buffer =
      std::make_shared<std::vector<char>>(std::max<std::size_t>({client_bytes, server_bytes, 1}), 'd');
  char* buf = buffer->data();
  const std::size_t cap = buffer->size();

  auto sev = make_pipe();
  auto scmd = make_pipe();
  server_ = spawn_in(server, [&]() -> int {
    std::array<int, kMaxConnections> conns{};
    int fd = ::socket(addr.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return kSocket;
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (addr.ss.ss_family == AF_INET6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr.ss), addr.len) != 0) return kBind;
    if (::listen(fd, n + 8) != 0) return kListen;
    if (!signal_parent(sev[1])) return kControl;
    for (int i = 0; i < n; ++i) {
      conns[i] = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (conns[i] < 0) return kAccept;
    }
    for (int i = 0; i < n; ++i) {
      if (!read_exact(conns[i], buf, cap, client_bytes)) return kRead;
      if (!write_all(conns[i], buf, server_bytes)) return kWrite;
    }
    if (!wait_all_acked(conns.data(), n)) return kUnacked;
    if (!signal_exchanged(sev[1], total_retrans(conns.data(), n)) || !wait_parent(scmd[0])) return kControl;
    for (int i = 0; i < n; ++i) {
      // the client closes first: read its FIN (or RST), then close our side
      while (::read(conns[i], buf, cap) > 0) {
      }
      close_socket(conns[i], reset);
    }
    ::close(fd);
    return kOk;
  });
  ::close(sev[1]);
  ::close(scmd[0]);
  server_events_ = sev[0];
  server_cmd_ = scmd[1];
  if (!wait_child_event(server_events_)) {
    ADD_FAILURE() << "TCP server did not start listening on " << spec_.server_addr << ":" << spec_.port
                  << " (exit " << wait_child(std::exchange(server_, -1)) << ")";
    return;
  }

  auto cev = make_pipe();
  auto ccmd = make_pipe();
  client_ = spawn_in(client, [&]() -> int {
    std::array<int, kMaxConnections> conns{};
    for (int i = 0; i < n; ++i) {
      conns[i] = ::socket(target.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (conns[i] < 0) return kSocket;
      if (::connect(conns[i], reinterpret_cast<const sockaddr*>(&target.ss), target.len) != 0)
        return kConnect;
    }
    for (int i = 0; i < n; ++i) {
      if (!write_all(conns[i], buf, client_bytes)) return kWrite;
    }
    for (int i = 0; i < n; ++i) {
      if (!read_exact(conns[i], buf, cap, server_bytes)) return kRead;
    }
    if (!wait_all_acked(conns.data(), n)) return kUnacked;
    if (!signal_exchanged(cev[1], total_retrans(conns.data(), n)) || !wait_parent(ccmd[0])) return kControl;
    for (int i = 0; i < n; ++i) close_socket(conns[i], reset);
    return kOk;
  });
  ::close(cev[1]);
  ::close(ccmd[0]);
  client_events_ = cev[0];
  client_cmd_ = ccmd[1];
}

TcpExchange::~TcpExchange() {
  for (pid_t* p : {&client_, &server_}) {
    if (*p > 0) {
      ::kill(*p, SIGKILL);
      wait_child(*p);
    }
  }
  for (int fd : {server_events_, client_events_, server_cmd_, client_cmd_}) {
    if (fd >= 0) ::close(fd);
  }
}

bool TcpExchange::wait_exchanged() {
  if (server_ < 0 || client_ < 0) return false;
  const bool client_done = wait_child_event(client_events_) && read_u64(client_events_, client_retrans_);
  const bool server_done = wait_child_event(server_events_) && read_u64(server_events_, server_retrans_);
  if (client_done && server_done) return true;
  ADD_FAILURE() << "TCP exchange did not complete: client " << (client_done ? "done" : "failed")
                << ", server " << (server_done ? "done" : "failed") << " (exit codes: client "
                << (client_done ? -2 : wait_child(std::exchange(client_, -1))) << ", server "
                << (server_done ? -2 : wait_child(std::exchange(server_, -1))) << ")";
  return false;
}

bool TcpExchange::close() {
  if (server_ < 0 || client_ < 0) return false;
  const bool told = ::write(client_cmd_, "c", 1) == 1 && ::write(server_cmd_, "c", 1) == 1;
  const int client_exit = wait_child(std::exchange(client_, -1));
  const int server_exit = wait_child(std::exchange(server_, -1));
  if (told && client_exit == 0 && server_exit == 0) return true;
  ADD_FAILURE() << "TCP exchange did not close cleanly: client exit " << client_exit << ", server exit "
                << server_exit;
  return false;
}

int tcp_connect_once(const std::string& addr, int port) {
  Address a = parse_address(addr, port);
  int fd = ::socket(a.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  int err = ::connect(fd, reinterpret_cast<const sockaddr*>(&a.ss), a.len) == 0 ? 0 : errno;
  ::close(fd);
  return err;
}

std::uint64_t tcp_mib(const NetNs& ns, const std::string& field) {
  // "Tcp:"/"TcpExt:" lines come in pairs, names then values.
  auto r = run_command({"ip", "netns", "exec", ns.name(), "cat", "/proc/net/snmp", "/proc/net/netstat"});
  if (r.exit_code != 0) throw std::runtime_error("cannot read the TCP MIB in " + ns.name() + ": " + r.out);
  std::istringstream in(r.out);
  for (std::string names, values; std::getline(in, names);) {
    if (!names.starts_with("Tcp:") && !names.starts_with("TcpExt:")) continue;
    if (!std::getline(in, values)) break;
    std::istringstream n(names);
    std::istringstream v(values);
    for (std::string name, value; n >> name && v >> value;) {
      if (name == field) return std::stoull(value);
    }
  }
  throw std::runtime_error("no Tcp or TcpExt field " + field + " in the MIB of " + ns.name());
}

bool agents_may_setns() {
  const char* caps = std::getenv("PODSIGHT_TEST_AGENT_CAPS");
  if (caps == nullptr || *caps == '\0') return true;
  std::string upper(caps);
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return upper.find("SYS_ADMIN") != std::string::npos;
}

bool kernel_supports_tcp_variant(const std::string& variant) {
  bpf::Features f;
  if (variant == "tp_btf") return f.has_tp_btf("inet_sock_set_state");
  if (variant == "fentry") return f.can_load_fentry("tcp_set_state");
  if (variant == "tracepoint") return f.has_raw_tracepoint("inet_sock_set_state");
  if (variant == "kprobe") return f.has_kprobes();
  return false;
}

bool kernel_supports_tcp_sk_storage(const std::string& variant) {
  if ((variant != "tp_btf" && variant != "fentry") || !kernel_supports_tcp_variant(variant)) return false;
  bpf::Features f;
  const auto* b = f.vmlinux_btf();
  const auto [major, minor] = f.kernel_version();
  return b != nullptr && btf__find_by_name_kind(b, "bpf_iter__bpf_sk_storage_map", BTF_KIND_STRUCT) > 0 &&
         f.has_tp_btf("tcp_retransmit_skb") && (major > 5 || (major == 5 && minor >= 12)) &&
         f.can_load_iter("bpf_sk_storage_map");
}

}  // namespace podsight::testing
