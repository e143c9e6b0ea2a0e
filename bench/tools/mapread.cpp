// Map reads: one scrape-time walk of a per-CPU hash laid out like exec_counts, by batch lookups and by
// key-by-key iteration, through podsight_core's own bpf::for_each_percpu_sum. The two methods
// alternate in every round (ABAB, then BABA) so that machine noise falls on both alike.
#include "common.hpp"

#include "bpf/maps.hpp"

#include <bpf/bpf.h>
#include <linux/types.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "exec.h"

namespace podsight::bench {
namespace {

int make_map(std::uint32_t entries, int ncpus) {
  int fd = bpf_map_create(BPF_MAP_TYPE_PERCPU_HASH, "bench_mapread", sizeof(exec_key), sizeof(std::uint64_t),
                          entries, nullptr);
  if (fd < 0)
    throw std::runtime_error("bpf_map_create(" + std::to_string(entries) + "): " + std::strerror(errno));
  constexpr std::uint32_t kChunk = 4096;
  std::vector<exec_key> keys(kChunk);
  std::vector<std::uint64_t> values(static_cast<std::size_t>(kChunk) * static_cast<std::size_t>(ncpus), 1);
  for (std::uint32_t done = 0; done < entries;) {
    const std::uint32_t n = std::min(kChunk, entries - done);
    for (std::uint32_t j = 0; j < n; ++j) {
      keys[j] = exec_key{};
      keys[j].cgroup_id = 1000 + (done + j) % 100;
      std::snprintf(keys[j].comm, sizeof keys[j].comm, "bench-%09u", done + j);
    }
    __u32 count = n;
    if (bpf_map_update_batch(fd, keys.data(), values.data(), &count, nullptr) != 0) {
      const int err = errno;
      ::close(fd);
      throw std::runtime_error("fill: " + std::string(std::strerror(err)));
    }
    done += n;
  }
  return fd;
}

double walk(int fd, int ncpus, bpf::Walk how, std::uint32_t expect) {
  std::uint64_t total = 0;
  const double t0 = now_seconds();
  auto n = bpf::for_each_percpu_sum<exec_key, std::uint64_t>(
      fd, ncpus, "bench_mapread", [&](const exec_key&, const std::uint64_t& v) { total += v; }, how);
  const double t1 = now_seconds();
  if (!n) throw std::runtime_error(n.error().message());
  if (*n != expect || total != static_cast<std::uint64_t>(expect) * static_cast<std::uint64_t>(ncpus)) {
    throw std::runtime_error("walk saw " + std::to_string(*n) + " of " + std::to_string(expect) + " entries");
  }
  return t1 - t0;
}

}  // namespace

// --sizes 10000,100000,1000000 --rounds R
int mapread(const Args& a) {
  auto sizes = a.list("sizes");
  if (sizes.empty()) sizes = {10000, 100000, 1000000};
  const auto rounds = a.num("rounds", 5);
  auto ncpus = bpf::possible_cpus();
  if (!ncpus) throw std::runtime_error(ncpus.error().message());
  nlohmann::json out = nlohmann::json::array();
  for (auto size : sizes) {
    const auto entries = static_cast<std::uint32_t>(size);
    int fd = make_map(entries, *ncpus);
    std::vector<double> batch;
    std::vector<double> keyed;
    walk(fd, *ncpus, bpf::Walk::kBatch, entries);  // warm-up: page in the map once
    for (std::int64_t r = 0; r < rounds; ++r) {
      if (r % 2 == 0) {
        batch.push_back(walk(fd, *ncpus, bpf::Walk::kBatch, entries));
        keyed.push_back(walk(fd, *ncpus, bpf::Walk::kKeyByKey, entries));
      } else {
        keyed.push_back(walk(fd, *ncpus, bpf::Walk::kKeyByKey, entries));
        batch.push_back(walk(fd, *ncpus, bpf::Walk::kBatch, entries));
      }
    }
    ::close(fd);
    out.push_back(
        {{"entries", entries}, {"ncpus", *ncpus}, {"batch_seconds", batch}, {"keybykey_seconds", keyed}});
  }
  emit({{"sizes", out}});
  return 0;
}

}  // namespace podsight::bench
