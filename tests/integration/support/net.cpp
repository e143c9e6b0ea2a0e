// Network namespaces, quiet veth pairs and placed child processes for integration tests.
#include "integration/support/net.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

namespace podsight::testing {
namespace {

void must(const std::vector<std::string>& argv) {
  auto r = run_command(argv);
  if (r.exit_code != 0) {
    std::string cmd;
    for (const auto& a : argv) cmd += a + " ";
    throw std::runtime_error(cmd + "failed (" + std::to_string(r.exit_code) + "): " + r.out);
  }
}

std::string mac_of(const std::string& ifname, const NetNs* ns) {
  std::vector<std::string> argv{"ip", "-br", "link", "show", "dev", ifname};
  if (ns != nullptr) argv.insert(argv.begin() + 1, {"-n", ns->name()});
  auto r = run_command(argv);
  // "name@peer UP 0a:1b:... <flags>"
  std::istringstream f(r.out);
  std::string name, state, mac;
  f >> name >> state >> mac;
  if (r.exit_code != 0 || mac.size() != 17) throw std::runtime_error("no MAC for " + ifname + ": " + r.out);
  return mac;
}

std::uint64_t tx_packets(const std::string& ifname, const NetNs* ns) {
  std::vector<std::string> argv{"ip", "-s", "-j", "link", "show", "dev", ifname};
  if (ns != nullptr) argv.insert(argv.begin() + 1, {"-n", ns->name()});
  auto r = run_command(argv);
  auto pos = r.out.find("\"tx\":{");
  if (pos == std::string::npos) return 0;
  pos = r.out.find("\"packets\":", pos);
  return pos == std::string::npos ? 0 : std::strtoull(r.out.c_str() + pos + 10, nullptr, 10);
}

// Settings that keep the kernel from sending packets of its own on an interface; applied before it
// comes up. `prefix` is {} for the root namespace or {"ip", "netns", "exec", NAME} for a namespace.
void quiet_ipv6(const std::vector<std::string>& prefix, const std::string& ifname) {
  for (const char* kv : {"addr_gen_mode=1", "accept_dad=0", "dad_transmits=0", "router_solicitations=0",
                         "accept_ra=0", "mldv2_unsolicited_report_interval=1", "mldv1_unsolicited_report_interval=1"}) {
    std::vector<std::string> argv = prefix;
    argv.insert(argv.end(), {"sysctl", "-q", "-w", std::string("net.ipv6.conf.") + ifname + "." + kv});
    must(argv);
  }
}

std::mt19937& rng() {
  static std::mt19937 r{std::random_device{}()};
  return r;
}

}  // namespace

NetNs::NetNs() : name_("psn-" + random_suffix(10)) {
  must({"ip", "netns", "add", name_});
  must({"ip", "-n", name_, "link", "set", "lo", "up"});
}

NetNs::~NetNs() { run_command({"ip", "netns", "del", name_}); }

void NetNs::ip(const std::vector<std::string>& args) const {
  std::vector<std::string> argv{"ip", "-n", name_};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = run_command(argv);
  EXPECT_EQ(r.exit_code, 0) << r.out;
}

Veth::Veth(const NetNs& ns) : ns_(ns) {
  const std::string tag = random_suffix(8);
  host_if_ = "psv" + tag;
  peer_if_ = "psp" + tag;
  // A random /30 in 10.192.0.0/10 and a /64 in fd70::/16: parallel tests do not collide.
  const unsigned block = rng()() % (64u * 256u);
  const std::string v4net = "10." + std::to_string(192 + block / 256) + "." + std::to_string(block % 256) + ".";
  host_v4_ = v4net + "1";
  peer_v4_ = v4net + "2";
  char v6net[32];
  std::snprintf(v6net, sizeof v6net, "fd70:%x:%x::", block / 256, block % 256);
  host_v6_ = std::string(v6net) + "1";
  peer_v6_ = std::string(v6net) + "2";

  const std::vector<std::string> in_ns{"ip", "netns", "exec", ns.name()};
  must({"ip", "link", "add", host_if_, "type", "veth", "peer", "name", peer_if_});
  must({"ip", "link", "set", peer_if_, "netns", ns.name()});
  quiet_ipv6({}, host_if_);
  quiet_ipv6(in_ns, peer_if_);
  must({"ip", "addr", "add", host_v4_ + "/30", "dev", host_if_});
  must({"ip", "-n", ns.name(), "addr", "add", peer_v4_ + "/30", "dev", peer_if_});
  must({"ip", "-6", "addr", "add", host_v6_ + "/64", "dev", host_if_, "nodad"});
  must({"ip", "-n", ns.name(), "-6", "addr", "add", peer_v6_ + "/64", "dev", peer_if_, "nodad"});
  const std::string host_mac = mac_of(host_if_, nullptr);
  const std::string peer_mac = mac_of(peer_if_, &ns);
  must({"ip", "neigh", "replace", peer_v4_, "lladdr", peer_mac, "nud", "permanent", "dev", host_if_});
  must({"ip", "neigh", "replace", peer_v6_, "lladdr", peer_mac, "nud", "permanent", "dev", host_if_});
  must({"ip", "-n", ns.name(), "neigh", "replace", host_v4_, "lladdr", host_mac, "nud", "permanent", "dev", peer_if_});
  must({"ip", "-n", ns.name(), "neigh", "replace", host_v6_, "lladdr", host_mac, "nud", "permanent", "dev", peer_if_});
  must({"ip", "link", "set", host_if_, "up"});
  must({"ip", "-n", ns.name(), "link", "set", peer_if_, "up"});

  // Joining the solicited-node groups sends MLD reports (and their retransmissions) once the links
  // are up; wait until neither end has sent anything for a while.
  auto last = std::make_pair(tx_packets(host_if_, nullptr), tx_packets(peer_if_, &ns));
  auto quiet_since = std::chrono::steady_clock::now();
  const auto deadline = quiet_since + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    auto now = std::make_pair(tx_packets(host_if_, nullptr), tx_packets(peer_if_, &ns));
    if (now != last) {
      last = now;
      quiet_since = std::chrono::steady_clock::now();
    } else if (std::chrono::steady_clock::now() - quiet_since > std::chrono::milliseconds(400)) {
      return;
    }
  }
  throw std::runtime_error("veth " + host_if_ + " never went quiet");
}

Veth::~Veth() { run_command({"ip", "link", "del", host_if_}); }

int Veth::host_ifindex() const { return static_cast<int>(::if_nametoindex(host_if_.c_str())); }

pid_t spawn_in(const Placement& where, const std::function<int()>& body) {
  // Opened before the fork: the child then only makes syscalls.
  int ns_fd = -1;
  if (where.netns != nullptr) {
    ns_fd = ::open(where.netns->path().c_str(), O_RDONLY | O_CLOEXEC);
    if (ns_fd < 0) throw std::runtime_error("open " + where.netns->path() + ": " + std::strerror(errno));
  }
  int procs_fd = -1;
  if (where.cgroup != nullptr) {
    const std::string procs = where.cgroup->path() + "/cgroup.procs";
    procs_fd = ::open(procs.c_str(), O_WRONLY | O_CLOEXEC);
    if (procs_fd < 0) {
      if (ns_fd >= 0) ::close(ns_fd);
      throw std::runtime_error("open " + procs + ": " + std::strerror(errno));
    }
  }
  pid_t pid = ::fork();
  if (pid == 0) {
    if (procs_fd >= 0 && ::write(procs_fd, "0", 1) != 1) ::_exit(126);
    if (ns_fd >= 0 && ::setns(ns_fd, CLONE_NEWNET) != 0) ::_exit(126);
    ::_exit(body());
  }
  if (ns_fd >= 0) ::close(ns_fd);
  if (procs_fd >= 0) ::close(procs_fd);
  if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  return pid;
}

int wait_child(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int run_in(const Placement& where, const std::function<int()>& body) { return wait_child(spawn_in(where, body)); }

int send_udp(const std::string& addr, int port, int count, std::size_t payload) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (::inet_pton(AF_INET, addr.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<std::uint16_t>(port));
    len = sizeof *v4;
  } else if (::inet_pton(AF_INET6, addr.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<std::uint16_t>(port));
    len = sizeof *v6;
  } else {
    return EINVAL;
  }
  int fd = ::socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  std::vector<char> buf(payload, 'p');
  int err = 0;
  for (int i = 0; i < count && err == 0; ++i) {
    if (::sendto(fd, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&ss), len) !=
        static_cast<ssize_t>(buf.size())) {
      err = errno;
    }
  }
  ::close(fd);
  return err;
}

}  // namespace podsight::testing
