// Hostile HTTP against the real agent binary: malformed and oversized requests, unknown paths and
// methods, slow clients, hundreds of parallel scrapes. Every request gets a bounded, correct answer
// (counted exactly in podsight_http_requests_total), the agent keeps serving, and its memory and
// descriptors return to where they were.
#include "fuzz/strict_exposition.hpp"
#include "integration/support/harness.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace podsight::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

int connect_loopback(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

struct Exchange {
  int status = 0;       // of the first response; 0 when none came
  bool closed = false;  // the server closed the connection before the deadline
  std::string bytes;    // everything received
};

// Sends `request` on a fresh connection and reads until the server closes it or `timeout` passes.
Exchange exchange(int port, const std::string& request, std::chrono::milliseconds timeout = 5s) {
  Exchange out;
  const int fd = connect_loopback(port);
  if (fd < 0) return out;
  std::size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;  // the server may refuse early and close; what it answered is still read
    sent += static_cast<std::size_t>(n);
  }
  const auto deadline = Clock::now() + timeout;
  char buf[16384];
  while (Clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (::poll(&p, 1, static_cast<int>(std::max<long>(1, left))) <= 0) continue;
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      out.closed = true;
      break;
    }
    out.bytes.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  if (out.bytes.rfind("HTTP/1.1 ", 0) == 0 && out.bytes.size() >= 12)
    out.status = std::stoi(out.bytes.substr(9, 3));
  return out;
}

// podsight_http_requests_total by code, summed over paths; and every path label seen.
std::map<std::string, double> requests_by_code(const Scrape& s, std::set<std::string>* paths = nullptr) {
  std::map<std::string, double> by_code;
  for (const auto& ser : s.series()) {
    if (ser.name != "podsight_http_requests_total") continue;
    by_code[ser.labels.at("code")] += ser.value;
    if (paths != nullptr) paths->insert(ser.labels.at("path"));
  }
  return by_code;
}

// A scrape that both promtool and the strict reader accept.
void expect_valid_scrape(AgentProcess& agent) {
  for (const bool om : {false, true}) {
    auto r = agent.get("/metrics", om ? "application/openmetrics-text;version=1.0.0" : "");
    ASSERT_EQ(r.status, 200);
    const auto parsed = parse_exposition_strictly(r.body, om);
    EXPECT_TRUE(parsed.ok()) << parsed.error;
    if (!om) EXPECT_EQ(promtool_problems(r.body), "");
  }
}

class HostileHttp : public ::testing::Test {
 protected:
  void SetUp() override {
    PODSIGHT_REQUIRE_PRIVILEGES();
    ensure_kernel_mounts();
  }
};

TEST_F(HostileHttp, EveryMalformedRequestGetsABoundedAnswerAndServingGoesOn) {
  AgentProcess agent(R"({"http": {"max_request_bytes": 8192, "request_timeout_seconds": 3}})");
  ASSERT_TRUE(agent.wait_serving()) << agent.logs();
  const std::string close = "Host: x\r\nConnection: close\r\n\r\n";
  std::string many_headers = "GET /metrics HTTP/1.1\r\nHost: x\r\n";
  for (int i = 0; i < 300; ++i)
    many_headers += "X-Filler-" + std::to_string(i) + ": " + std::string(40, 'f') + "\r\n";
  struct Case {
    const char* what;
    std::string request;
    int status;
  };
  const std::vector<Case> cases = {
      {"request line beyond max_request_bytes", "GET /" + std::string(20000, 'a') + " HTTP/1.1\r\n" + close,
       431},
      {"headers beyond max_request_bytes", many_headers + "\r\n", 431},
      {"unknown method", "FOO /metrics HTTP/1.1\r\n" + close, 400},
      {"lower-case method", "get /metrics HTTP/1.1\r\n" + close, 400},
      {"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400},
      {"HTTP/0.9 request", "GET /metrics\r\n\r\n", 400},
      {"HTTP/3.0 on a TCP socket", "GET /metrics HTTP/3.0\r\n" + close, 400},
      {"NUL in the path", std::string("GET /met\0rics HTTP/1.1\r\n", 24) + close, 400},
      {"bare LF line ends", "GET /metrics HTTP/1.1\nHost: x\nConnection: close\n\n", 400},
      {"binary garbage", std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 15), 400},
      {"Content-Length not a number", "GET /metrics HTTP/1.1\r\nContent-Length: -5\r\n" + close, 400},
      {"body beyond max_request_bytes", "POST /metrics HTTP/1.1\r\nContent-Length: 1000000\r\n" + close, 413},
      {"POST with a body", "POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n" + close + "a=1", 405},
      {"PUT", "PUT /metrics HTTP/1.1\r\n" + close, 405},
      {"DELETE", "DELETE /healthz HTTP/1.1\r\n" + close, 405},
      {"PATCH", "PATCH /readyz HTTP/1.1\r\n" + close, 405},
      {"OPTIONS", "OPTIONS /metrics HTTP/1.1\r\n" + close, 405},
      {"TRACE", "TRACE /metrics HTTP/1.1\r\n" + close, 405},
      {"CONNECT", "CONNECT example.com:443 HTTP/1.1\r\n" + close, 404},
      {"path traversal", "GET /../../etc/passwd HTTP/1.1\r\n" + close, 404},
      {"encoded traversal", "GET /%2e%2e/metrics HTTP/1.1\r\n" + close, 404},
      {"a prefix of a route", "GET /metrics/extra HTTP/1.1\r\n" + close, 404},
      {"long unknown path within the budget", "GET /" + std::string(6000, 'p') + " HTTP/1.1\r\n" + close,
       404},
      {"Content-Length and Transfer-Encoding together",
       "GET /healthz HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n" + close + "0\r\n\r\n",
       200},
  };
  std::map<std::string, double> sent_codes;
  for (const auto& c : cases) {
    const auto got = exchange(agent.port(), c.request);
    EXPECT_EQ(got.status, c.status) << c.what << ": " << got.bytes.substr(0, 200);
    EXPECT_TRUE(got.closed) << c.what << ": the connection was left open";
    if (c.status != 200) {
      EXPECT_NE(got.bytes.find("\r\nConnection: close\r\n"), std::string::npos)
          << c.what << ": " << got.bytes;
      EXPECT_LT(got.bytes.size(), 1024U) << c.what << ": error answers are small";
    }
    sent_codes[std::to_string(c.status)] += 1;
    ASSERT_EQ(agent.get("/healthz").status, 200) << "not serving after: " << c.what;
    ASSERT_TRUE(agent.running());
  }

  Scrape s(agent.get("/metrics").body);
  std::set<std::string> paths;
  const auto by_code = requests_by_code(s, &paths);
  for (const auto& [code, n] : sent_codes) {
    if (code == "200") continue;  // the health checks in between answer 200 too
    EXPECT_EQ(by_code.count(code) ? by_code.at(code) : 0, n) << "requests answered " << code;
  }
  // Unknown paths and methods cannot grow the label set.
  for (const auto& p : paths) {
    EXPECT_TRUE(p == "/metrics" || p == "/healthz" || p == "/readyz" || p == "/" || p == "other") << p;
  }
  expect_valid_scrape(agent);
}

// Sends one byte of a never-ending request head every 250 ms until the server closes the connection.
struct Trickler {
  int port;
  std::string answer;
  bool closed = false;
  void run() {
    const int fd = connect_loopback(port);
    if (fd < 0) return;
    const std::string head = "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    const auto give_up = Clock::now() + 30s;  // far beyond the agent's request timeout
    for (std::size_t i = 0; Clock::now() < give_up; ++i) {
      const char byte = i < head.size() ? head[i] : 'z';
      if (::send(fd, &byte, 1, MSG_NOSIGNAL) != 1) break;
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 250) <= 0) continue;
      char buf[4096];
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      answer.append(buf, static_cast<std::size_t>(n));
    }
    // Read what is left: the answer may come with the close.
    char buf[4096];
    for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT)) > 0;)
      answer.append(buf, static_cast<std::size_t>(n));
    closed = Clock::now() < give_up;
    ::close(fd);
  }
};

TEST_F(HostileHttp, SlowClientsAreCutAtTheRequestTimeoutWhileScrapesGoOn) {
  // More slow clients than workers: each holds a worker until its request timeout.
  AgentProcess agent(
      R"({"http": {"request_timeout_seconds": 2, "worker_threads": 4, "max_connections": 32}})");
  ASSERT_TRUE(agent.wait_serving()) << agent.logs();
  std::vector<Trickler> slow(8, Trickler{agent.port()});
  std::vector<std::thread> threads;
  for (auto& t : slow) threads.emplace_back([&t] { t.run(); });
  const int silent = connect_loopback(agent.port());  // connects and never sends a byte
  ASSERT_GE(silent, 0);

  // Scrapes made while the slow clients are connected are all answered.
  int scraped = 0;
  for (int i = 0; i < 10; ++i) {
    auto r = http_get(agent.port(), "/metrics", "", 15s);
    EXPECT_EQ(r.status, 200) << "scrape " << i;
    scraped += r.status == 200;
    std::this_thread::sleep_for(100ms);
  }
  for (auto& t : threads) t.join();
  for (const auto& t : slow) {
    EXPECT_TRUE(t.closed) << "a slow client was never cut";
    EXPECT_EQ(t.answer.rfind("HTTP/1.1 408 ", 0), 0U) << t.answer;
  }
  pollfd p{silent, POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 10000), 1) << "the silent connection was never closed";
  char c;
  EXPECT_EQ(::recv(silent, &c, 1, 0), 0) << "a silent connection is closed without an answer";
  ::close(silent);
  EXPECT_EQ(scraped, 10);
  EXPECT_EQ(requests_by_code(agent.scrape())["408"], 8);
}

// `clients` threads each scrape once at the same moment; returns the answers' status codes.
std::map<int, int> parallel_scrapes(int port, int clients, std::vector<std::string>* failures) {
  std::mutex mu;
  std::map<int, int> statuses;
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  threads.reserve(static_cast<std::size_t>(clients));
  for (int i = 0; i < clients; ++i) {
    threads.emplace_back([&, i] {
      httplib::Client c("127.0.0.1", port);
      // Scrapes are served one at a time (tens of ms each with every family, several times that
      // under the sanitizers): the last in line waits for all the others. The bound is "answered".
      c.set_connection_timeout(120, 0);
      c.set_read_timeout(120, 0);
      const bool om = i % 2 == 1;
      httplib::Headers h;
      if (om) h.emplace("Accept", "application/openmetrics-text;version=1.0.0");
      ready.fetch_add(1);
      while (ready.load() < clients) std::this_thread::yield();
      auto res = c.Get("/metrics", h);
      std::lock_guard lock(mu);
      if (!res) {
        statuses[0]++;
        failures->push_back(httplib::to_string(res.error()));
        return;
      }
      statuses[res->status]++;
      if (res->status == 200) {
        const auto parsed = parse_exposition_strictly(res->body, om);
        if (!parsed.ok()) failures->push_back(parsed.error);
      } else if (res->status == 503 && res->get_header_value("Retry-After") != "1") {
        failures->push_back("503 without Retry-After");
      }
    });
  }
  for (auto& t : threads) t.join();
  return statuses;
}

TEST_F(HostileHttp, HundredsOfParallelScrapesAreAllAnswered) {
  {
    AgentProcess agent(R"({"http": {"max_connections": 512}})");
    ASSERT_TRUE(agent.wait_serving()) << agent.logs();
    std::vector<std::string> failures;
    const auto statuses = parallel_scrapes(agent.port(), 200, &failures);
    EXPECT_EQ(statuses, (std::map<int, int>{{200, 200}}));
    EXPECT_TRUE(failures.empty()) << failures.front();
    // A request is counted just after its answer is flushed, so the last ones may lag the clients.
    std::optional<double> counted;
    for (int i = 0; i < 50 && counted != 200; ++i) {
      if (i > 0) std::this_thread::sleep_for(100ms);
      counted = agent.scrape().value("podsight_http_requests_total", {{"path", "/metrics"}, {"code", "200"}});
    }
    EXPECT_EQ(counted, 200) << "every answered scrape is counted";
  }
  // With the default limit, the connections beyond it are turned away at once with 503, never left
  // hanging; each client gets one of the two answers.
  AgentProcess agent;
  ASSERT_TRUE(agent.wait_serving()) << agent.logs();
  std::vector<std::string> failures;
  const auto statuses = parallel_scrapes(agent.port(), 300, &failures);
  int answered = 0;
  for (const auto& [status, n] : statuses) {
    EXPECT_TRUE(status == 200 || status == 503) << status << " x" << n;
    answered += n;
  }
  EXPECT_EQ(answered, 300);
  EXPECT_GT(statuses.count(200), 0U);
  EXPECT_TRUE(failures.empty()) << failures.front();
  expect_valid_scrape(agent);
}

std::size_t open_fds(pid_t pid) {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd"))
    ++n;
  return n;
}

// Polls until the agent holds at most `want` descriptors again (closing sockets is asynchronous).
bool fds_return_to(pid_t pid, std::size_t want) {
  const auto deadline = Clock::now() + 10s;
  while (Clock::now() < deadline) {
    if (open_fds(pid) <= want) return true;
    std::this_thread::sleep_for(50ms);
  }
  return false;
}

// The agent's descriptor count once the sockets of earlier requests are closed: unchanged for 300 ms.
std::size_t settled_fds(pid_t pid) {
  std::size_t last = open_fds(pid);
  for (int stable = 0; stable < 6;) {
    std::this_thread::sleep_for(50ms);
    const std::size_t now = open_fds(pid);
    stable = now == last ? stable + 1 : 0;
    last = now;
  }
  return last;
}

TEST_F(HostileHttp, MemoryAndDescriptorsStayBoundedUnderAbuse) {
  AgentProcess agent(R"({"http": {"max_connections": 256, "request_timeout_seconds": 2}})");
  ASSERT_TRUE(agent.wait_serving()) << agent.logs();
  ASSERT_EQ(agent.get("/metrics").status, 200);
  const std::size_t fds = settled_fds(agent.pid());
  const auto abuse = [&] {
    std::vector<std::string> failures;
    const auto statuses = parallel_scrapes(agent.port(), 50, &failures);
    EXPECT_EQ(statuses.count(0), 0U) << failures.front();
    std::vector<std::thread> threads;
    for (int i = 0; i < 40; ++i) {
      threads.emplace_back([&, i] {
        const std::string request = i % 2 == 0 ? "GET /" + std::string(30000, 'a') + " HTTP/1.1\r\n\r\n"
                                               : std::string("\x16\x03\x01 garbage\r\n\r\n");
        EXPECT_NE(exchange(agent.port(), request).status, 0);
      });
    }
    for (auto& t : threads) t.join();
    EXPECT_TRUE(fds_return_to(agent.pid(), fds)) << open_fds(agent.pid()) << " fds, was " << fds;
  };
  abuse();  // the first round sizes the allocator's pools; later rounds must not add to them
  const long rss_after_first = status_kib(agent.pid(), "VmRSS:");
  for (int round = 0; round < 4; ++round) abuse();
  const long rss_after_last = status_kib(agent.pid(), "VmRSS:");
  ASSERT_GT(rss_after_first, 0);
  RecordProperty("rss_first_round_kib", std::to_string(rss_after_first));
  RecordProperty("rss_last_round_kib", std::to_string(rss_after_last));
  std::printf("agent VmRSS after the first round %ld KiB, after the fifth %ld KiB\n", rss_after_first,
              rss_after_last);
#ifndef PODSIGHT_TEST_ASAN  // ASan keeps freed memory in quarantine; LeakSanitizer checks leaks there
  EXPECT_LT(rss_after_last - rss_after_first, 4096)
      << "memory grew by more than 4 MiB over four rounds of abuse";
#endif
  EXPECT_TRUE(agent.running());
  expect_valid_scrape(agent);
}

}  // namespace
}  // namespace podsight::testing
