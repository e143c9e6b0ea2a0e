// Workloads whose slowdown under the agent is measured: an exec storm (spawn and reap a program N
// times) and a loopback TCP storm (N connections, each connect, send, server closes, client closes).
// Each reports its wall time and, when run in a cgroup, the CPU time the cgroup used meanwhile.
#include "common.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace podsight::bench {
namespace {

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error(what + ": " + std::strerror(errno));
}

// Reads until EOF or error; returns bytes read.
std::size_t drain(int fd) {
  char buf[4096];
  std::size_t total = 0;
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      total += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    return total;
  }
}

// CPU time used so far by every task that ever ran in the cgroup (cpu.stat usage_usec: exact, from
// the scheduler's runtime accounting, children and in-context softirq work included), in seconds;
// -1 without a cgroup. Unlike wall time, other processes competing for the CPU do not inflate it.
double cgroup_cpu_seconds(const std::string& cgroup) {
  if (cgroup.empty()) return -1;
  std::ifstream in(cgroup + "/cpu.stat");
  std::string key;
  unsigned long long value = 0;
  while (in >> key >> value) {
    if (key == "usage_usec") return static_cast<double>(value) / 1e6;
  }
  throw std::runtime_error(cgroup + "/cpu.stat has no usage_usec");
}

bool write_all(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

}  // namespace

// --n N --prog PATH --cgroup DIR: posix_spawn PATH (default /bin/true) N times, one at a time.
int storm_exec(const Args& a) {
  const auto n = a.num("n", 1000);
  const std::string prog = a.str("prog", "/bin/true");
  const std::string cgroup = a.str("cgroup", "");
  join_cgroup(cgroup);
  char* argv[] = {const_cast<char*>(prog.c_str()), nullptr};
  std::int64_t failed = 0;
  const double c0 = cgroup_cpu_seconds(cgroup);
  const double t0 = now_seconds();
  for (std::int64_t i = 0; i < n; ++i) {
    pid_t pid = 0;
    if (int err = ::posix_spawn(&pid, prog.c_str(), nullptr, nullptr, argv, environ); err != 0) {
      errno = err;
      fail("posix_spawn " + prog);
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0) {
      if (errno != EINTR) fail("waitpid");
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ++failed;
  }
  const double t1 = now_seconds();
  const double c1 = cgroup_cpu_seconds(cgroup);
  emit({{"n", n}, {"seconds", t1 - t0}, {"cpu_seconds", c1 - c0}, {"failed", failed}});
  return failed == 0 ? 0 : 1;
}

// --n N --bytes B --cgroup DIR: N loopback TCP connections in sequence. The client connects and sends
// B bytes; the server reads them and closes first (so TIME_WAIT stays on the server side and the
// client's ephemeral ports are free at once); the client reads the EOF and closes.
int storm_tcp(const Args& a) {
  const auto n = a.num("n", 10000);
  const auto bytes = static_cast<std::size_t>(a.num("bytes", 100));
  const std::string cgroup = a.str("cgroup", "");
  join_cgroup(cgroup);

  int ls = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (ls < 0) fail("socket");
  int one = 1;
  ::setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(ls, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) fail("bind");
  if (::listen(ls, 4096) != 0) fail("listen");
  socklen_t len = sizeof addr;
  if (::getsockname(ls, reinterpret_cast<sockaddr*>(&addr), &len) != 0) fail("getsockname");

  std::atomic<std::int64_t> short_reads{0};
  std::thread server([&] {
    std::string buf(bytes, '\0');
    for (std::int64_t i = 0; i < n; ++i) {
      int c = ::accept4(ls, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) {
        if (errno == EINTR) {
          --i;
          continue;
        }
        short_reads += n - i;
        return;
      }
      std::size_t got = 0;
      while (got < bytes) {
        ssize_t r = ::read(c, buf.data(), bytes - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += static_cast<std::size_t>(r);
      }
      if (got != bytes) ++short_reads;
      ::close(c);
    }
  });

  const std::string payload(bytes, 'x');
  std::int64_t failed = 0;
  const double c0 = cgroup_cpu_seconds(cgroup);
  const double t0 = now_seconds();
  for (std::int64_t i = 0; i < n; ++i) {
    int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) fail("socket");
    if (::connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        !write_all(s, payload.data(), payload.size())) {
      ++failed;
    } else {
      drain(s);
    }
    ::close(s);
  }
  // A connection that never reached the server would leave it blocked in accept(): wake it.
  if (failed != 0) ::shutdown(ls, SHUT_RDWR);
  server.join();
  const double t1 = now_seconds();
  const double c1 = cgroup_cpu_seconds(cgroup);
  ::close(ls);
  emit({{"n", n}, {"seconds", t1 - t0}, {"cpu_seconds", c1 - c0}, {"failed", failed + short_reads.load()}});
  return failed + short_reads.load() == 0 ? 0 : 1;
}

}  // namespace podsight::bench
