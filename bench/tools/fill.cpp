// Fills a running agent's map with synthetic entries, so that a scrape has a chosen number of series.
// Keys are deterministic (entry i is always the same key), so filling to 10k after 1k adds 9k.
#include "common.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
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

struct Filler {
  std::size_t key_size;
  std::size_t value_size;  // per CPU
  // Writes key i and its per-CPU value (for one CPU) into the given buffers.
  void (*make)(std::uint64_t i, const std::vector<std::uint64_t>& cgroups, void* key, void* value);
};

void make_exec(std::uint64_t i, const std::vector<std::uint64_t>& cgroups, void* key, void* value) {
  exec_key k{};
  k.cgroup_id = cgroups[i % cgroups.size()];
  // Distinct comms, printable, fitting TASK_COMM_LEN like real ones.
  std::snprintf(k.comm, sizeof k.comm, "bench-%09llu", static_cast<unsigned long long>(i));
  std::memcpy(key, &k, sizeof k);
  const std::uint64_t v = 1 + i % 1000;
  std::memcpy(value, &v, sizeof v);
}

void make_cgroup_skb(std::uint64_t i, const std::vector<std::uint64_t>& cgroups, void* key, void* value) {
  if (i >= cgroups.size()) throw std::invalid_argument("cgroup_skb: at most one entry per --cgroups id");
  cgroup_skb_key k{};
  k.cgroup_id = cgroups[i];
  std::memcpy(key, &k, sizeof k);
  const std::uint64_t n = 1 + i % 1000;
  cgroup_skb_value v{};
  v.dir[CGROUP_SKB_INGRESS] = {n, 1500 * n};
  v.dir[CGROUP_SKB_EGRESS] = {n, 100 * n};
  std::memcpy(value, &v, sizeof v);
}

}  // namespace

// --map-id ID --kind exec|cgroup_skb --entries N --cgroups ID,ID,...
int fill(const Args& a) {
  const auto map_id = static_cast<std::uint32_t>(a.num("map-id", 0));
  const std::string kind = a.required("kind");
  const auto entries = static_cast<std::uint64_t>(a.num("entries", 0));
  const auto cgroups = a.list("cgroups");
  if (cgroups.empty()) throw std::invalid_argument("--cgroups needs at least one cgroup id");
  Filler f{};
  if (kind == "exec") {
    f = {sizeof(exec_key), sizeof(std::uint64_t), make_exec};
  } else if (kind == "cgroup_skb") {
    f = {sizeof(cgroup_skb_key), sizeof(cgroup_skb_value), make_cgroup_skb};
  } else {
    throw std::invalid_argument("--kind must be exec or cgroup_skb");
  }
  int fd = bpf_map_get_fd_by_id(map_id);
  if (fd < 0) throw std::runtime_error("map id " + std::to_string(map_id) + ": " + std::strerror(errno));
  bpf_map_info info{};
  __u32 len = sizeof info;
  if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0 || info.key_size != f.key_size ||
      info.value_size != f.value_size) {
    throw std::runtime_error("map id " + std::to_string(map_id) + " is not a " + kind + " counts map");
  }
  const int ncpus = libbpf_num_possible_cpus();
  if (ncpus <= 0) throw std::runtime_error("libbpf_num_possible_cpus failed");
  const bool percpu = info.type == BPF_MAP_TYPE_PERCPU_HASH || info.type == BPF_MAP_TYPE_LRU_PERCPU_HASH;
  const std::size_t stride = (f.value_size + 7) / 8 * 8;
  const std::size_t vbytes = percpu ? stride * static_cast<std::size_t>(ncpus) : f.value_size;

  constexpr std::uint64_t kChunk = 4096;
  std::vector<unsigned char> keys(kChunk * f.key_size);
  std::vector<unsigned char> values(kChunk * vbytes);
  std::uint64_t done = 0;
  const double t0 = now_seconds();
  while (done < entries) {
    const std::uint64_t n = std::min(kChunk, entries - done);
    std::fill(values.begin(), values.end(), 0);
    for (std::uint64_t j = 0; j < n; ++j) {
      // In a per-CPU map the value goes in CPU 0's slot only: the scrape sums them.
      f.make(done + j, cgroups, keys.data() + j * f.key_size, values.data() + j * vbytes);
    }
    __u32 count = static_cast<__u32>(n);
    LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = BPF_ANY);
    if (bpf_map_update_batch(fd, keys.data(), values.data(), &count, &opts) != 0) {
      const int err = errno;
      ::close(fd);
      throw std::runtime_error("BPF_MAP_UPDATE_BATCH after " + std::to_string(done + count) +
                               " entries: " + std::strerror(err));
    }
    done += n;
  }
  const double t1 = now_seconds();
  ::close(fd);
  emit({{"map_id", map_id}, {"kind", kind}, {"entries", done}, {"seconds", t1 - t0}});
  return 0;
}

}  // namespace podsight::bench
