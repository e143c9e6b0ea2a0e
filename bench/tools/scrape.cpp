// Scraper for the scrape-latency benchmark: `threads` clients, each on its own keep-alive connection,
// each GETting `count` times; every request's latency is reported. Bodies are not decompressed, so a
// gzip scrape costs the client the same whatever the target.
#include "common.hpp"

#include <httplib.h>

#include <algorithm>
#include <mutex>
#include <thread>
#include <vector>

namespace podsight::bench {

// --host H --port P --path /metrics --count N --threads T --gzip --timeout S
int scrape(const Args& a) {
  const std::string host = a.str("host", "127.0.0.1");
  const int port = static_cast<int>(a.num("port", 10795));
  const std::string path = a.str("path", "/metrics");
  const auto count = a.num("count", 10);
  const auto threads = a.num("threads", 1);
  const bool gzip = a.flag("gzip");
  const auto timeout = static_cast<time_t>(a.num("timeout", 30));

  std::mutex mu;
  std::vector<double> latencies;
  std::int64_t errors = 0;
  std::size_t bytes = 0;
  std::vector<std::thread> workers;
  const double t0 = now_seconds();
  for (std::int64_t t = 0; t < threads; ++t) {
    workers.emplace_back([&] {
      httplib::Client cli(host, port);
      cli.set_keep_alive(true);
      cli.set_decompress(false);
      cli.set_read_timeout(timeout, 0);
      httplib::Headers headers;
      if (gzip) headers.emplace("Accept-Encoding", "gzip");
      std::vector<double> mine;
      std::int64_t my_errors = 0;
      std::size_t my_bytes = 0;
      for (std::int64_t i = 0; i < count; ++i) {
        const double s = now_seconds();
        auto res = cli.Get(path, headers);
        const double e = now_seconds();
        if (!res || res->status != 200) {
          ++my_errors;
          continue;
        }
        mine.push_back((e - s) * 1e3);
        my_bytes = res->body.size();
      }
      std::lock_guard lock(mu);
      latencies.insert(latencies.end(), mine.begin(), mine.end());
      errors += my_errors;
      bytes = std::max(bytes, my_bytes);
    });
  }
  for (auto& w : workers) w.join();
  const double t1 = now_seconds();
  emit({{"latencies_ms", latencies}, {"errors", errors}, {"bytes", bytes}, {"seconds", t1 - t0}});
  return errors == 0 ? 0 : 1;
}

}  // namespace podsight::bench
