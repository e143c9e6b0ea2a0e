// Map reads: one scrape-time walk of a map laid out like one of the agent's, by batch lookups and by
// key-by-key iteration, through podsight_core's own bpf/maps.hpp walks (what the collectors call).
// The two methods alternate in every round (AB, then BA) so that machine noise falls on both alike.
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

// clang-format off
#include "exec.h"
#include "cgroup_skb.h"
// clang-format on

namespace podsight::bench {
namespace {

// Two layouts: a plain (shared) hash keyed like exec_counts, (cgroup id, comm) -> u64, and a per-CPU
// hash like cgroup_skb_counts, cgroup id -> both directions' packets and bytes.
struct Layout {
  const char* name;
  bpf_map_type type;
  std::uint32_t key_size;
  std::uint32_t value_size;
};
constexpr Layout kExec{"exec_counts", BPF_MAP_TYPE_HASH, sizeof(exec_key), sizeof(std::uint64_t)};
constexpr Layout kCgroupSkb{"cgroup_skb_counts", BPF_MAP_TYPE_PERCPU_HASH, sizeof(cgroup_skb_key),
                            sizeof(cgroup_skb_value)};

void make_key(const Layout& l, std::uint32_t i, unsigned char* out) {
  if (l.type == BPF_MAP_TYPE_HASH) {
    exec_key k{};
    k.cgroup_id = 1000 + i % 100;
    std::snprintf(k.comm, sizeof k.comm, "bench-%09u", i);
    std::memcpy(out, &k, sizeof k);
  } else {
    const cgroup_skb_key k{1000ULL + i};
    std::memcpy(out, &k, sizeof k);
  }
}

int make_map(const Layout& l, std::uint32_t entries, int ncpus) {
  int fd = bpf_map_create(l.type, "bench_mapread", l.key_size, l.value_size, entries, nullptr);
  if (fd < 0)
    throw std::runtime_error("bpf_map_create(" + std::to_string(entries) + "): " + std::strerror(errno));
  const std::size_t vbytes =
      l.type == BPF_MAP_TYPE_HASH ? l.value_size : l.value_size * static_cast<std::size_t>(ncpus);
  constexpr std::uint32_t kChunk = 4096;
  std::vector<unsigned char> keys(static_cast<std::size_t>(kChunk) * l.key_size);
  // Every u64 of every value is 1, so a walk's total is known.
  std::vector<std::uint64_t> values(kChunk * vbytes / sizeof(std::uint64_t), 1);
  for (std::uint32_t done = 0; done < entries;) {
    const std::uint32_t n = std::min(kChunk, entries - done);
    for (std::uint32_t j = 0; j < n; ++j)
      make_key(l, done + j, keys.data() + static_cast<std::size_t>(j) * l.key_size);
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

double walk(const Layout& l, int fd, int ncpus, bpf::Walk how, std::uint32_t expect) {
  std::uint64_t total = 0;
  std::uint64_t want = 0;
  const double t0 = now_seconds();
  Result<std::size_t> n = std::size_t{0};
  if (l.type == BPF_MAP_TYPE_HASH) {
    n = bpf::for_each_value<exec_key, std::uint64_t>(
        fd, l.name, [&](const exec_key&, const std::uint64_t& v) { total += v; }, how);
    want = expect;
  } else {
    n = bpf::for_each_percpu_sum<cgroup_skb_key, cgroup_skb_value>(
        fd, ncpus, l.name,
        [&](const cgroup_skb_key&, const cgroup_skb_value& v) {
          total += v.dir[0].packets + v.dir[0].bytes + v.dir[1].packets + v.dir[1].bytes;
        },
        how);
    want = 4ULL * expect * static_cast<std::uint64_t>(ncpus);
  }
  const double t1 = now_seconds();
  if (!n) throw std::runtime_error(n.error().message());
  if (*n != expect || total != want) {
    throw std::runtime_error("walk saw " + std::to_string(*n) + " of " + std::to_string(expect) + " entries");
  }
  return t1 - t0;
}

}  // namespace

// --sizes 10000,100000,1000000 --rounds R --maps exec,cgroup_skb
int mapread(const Args& a) {
  auto sizes = a.list("sizes");
  if (sizes.empty()) sizes = {10000, 100000, 1000000};
  const auto rounds = a.num("rounds", 5);
  const std::string maps = "," + a.str("maps", "exec,cgroup_skb") + ",";
  auto ncpus = bpf::possible_cpus();
  if (!ncpus) throw std::runtime_error(ncpus.error().message());
  nlohmann::json out = nlohmann::json::array();
  for (const Layout* l : {&kExec, &kCgroupSkb}) {
    if (maps.find(std::string(",") + (l == &kExec ? "exec" : "cgroup_skb") + ",") == std::string::npos)
      continue;
    for (auto size : sizes) {
      const auto entries = static_cast<std::uint32_t>(size);
      int fd = make_map(*l, entries, *ncpus);
      std::vector<double> batch;
      std::vector<double> keyed;
      walk(*l, fd, *ncpus, bpf::Walk::kBatch, entries);  // warm-up: page in the map once
      for (std::int64_t r = 0; r < rounds; ++r) {
        if (r % 2 == 0) {
          batch.push_back(walk(*l, fd, *ncpus, bpf::Walk::kBatch, entries));
          keyed.push_back(walk(*l, fd, *ncpus, bpf::Walk::kKeyByKey, entries));
        } else {
          keyed.push_back(walk(*l, fd, *ncpus, bpf::Walk::kKeyByKey, entries));
          batch.push_back(walk(*l, fd, *ncpus, bpf::Walk::kBatch, entries));
        }
      }
      ::close(fd);
      out.push_back({{"map", l->name},
                     {"entries", entries},
                     {"ncpus", *ncpus},
                     {"batch_seconds", batch},
                     {"keybykey_seconds", keyed}});
    }
  }
  emit({{"sizes", out}});
  return 0;
}

}  // namespace podsight::bench
