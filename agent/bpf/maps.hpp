// Reading BPF maps at scrape time: batch lookups where the kernel has them (one syscall per few
// thousand entries), key-by-key iteration where it does not, per-CPU values summed.
#pragma once

#include "util/result.hpp"

#include <bpf/bpf.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

namespace podsight::bpf {

// Number of possible CPUs (the per-CPU value stride), or an error if libbpf cannot tell.
Result<int> possible_cpus();

struct MapInfo {
  std::uint32_t type = 0;
  std::uint32_t key_size = 0;
  std::uint32_t value_size = 0;
  std::uint32_t max_entries = 0;
  std::uint32_t id = 0;
  std::string name;
};
Result<MapInfo> map_info(int map_fd);

// How a walk reads the map: kAuto takes batch lookups and falls back to key-by-key iteration where the
// kernel has no batch ops for the map; the other two force one method (bench/ compares them).
enum class Walk { kAuto, kBatch, kKeyByKey };

// Visits every entry of a hash/LRU map (per-CPU or not). `value` holds `value_stride * ncpus` bytes for
// per-CPU maps (stride = value_size rounded up to 8), `value_size` bytes otherwise. Entries inserted or
// deleted during the walk may or may not be seen; none is seen twice. Returns the number visited.
using RawVisitor = std::function<void(const void* key, const void* value)>;
Result<std::size_t> for_each_entry(int map_fd, const RawVisitor& visit, const std::string& map_name,
                                   Walk walk = Walk::kAuto);

namespace detail {
// Copies the raw key and value out (map buffers carry no alignment promise) and calls visit.
template <typename K, typename V>
void visit_copy(const void* key, const void* value, const std::function<void(const K&, const V&)>& visit) {
  static_assert(std::is_trivially_copyable_v<K> && std::is_trivially_copyable_v<V>);
  K k;
  V v;
  std::memcpy(&k, key, sizeof(K));
  std::memcpy(&v, value, sizeof(V));
  visit(k, v);
}
}  // namespace detail

// Same walk for a per-CPU map whose value type V is made only of std::uint64_t fields: calls
// visit(key, sum) with every field summed over CPUs.
template <typename K, typename V>
Result<std::size_t> for_each_percpu_sum(int map_fd, int ncpus, const std::string& map_name,
                                        const std::function<void(const K&, const V&)>& visit,
                                        Walk walk = Walk::kAuto) {
  static_assert(std::is_trivially_copyable_v<K> && std::is_trivially_copyable_v<V>);
  static_assert(sizeof(V) % sizeof(std::uint64_t) == 0, "per-CPU values are u64 counters");
  constexpr std::size_t kWords = sizeof(V) / sizeof(std::uint64_t);
  return for_each_entry(
      map_fd,
      [&](const void* key, const void* value) {
        std::uint64_t sum[kWords] = {};
        const auto* bytes = static_cast<const unsigned char*>(value);
        for (int cpu = 0; cpu < ncpus; ++cpu) {
          std::uint64_t words[kWords];
          std::memcpy(words, bytes + static_cast<std::size_t>(cpu) * sizeof(V), sizeof(V));
          for (std::size_t w = 0; w < kWords; ++w) sum[w] += words[w];
        }
        detail::visit_copy<K, V>(key, sum, visit);
      },
      map_name, walk);
}

// The walk for a map that is not per-CPU: calls visit(key, value) with the value as the kernel holds it.
template <typename K, typename V>
Result<std::size_t> for_each_value(int map_fd, const std::string& map_name,
                                   const std::function<void(const K&, const V&)>& visit,
                                   Walk walk = Walk::kAuto) {
  return for_each_entry(
      map_fd, [&](const void* key, const void* value) { detail::visit_copy<K, V>(key, value, visit); },
      map_name, walk);
}

// Sums a per-CPU array of u64 (e.g. a family's map_errors) into one value per index.
Result<std::vector<std::uint64_t>> read_percpu_u64_array(int map_fd, std::uint32_t entries, int ncpus,
                                                         const std::string& map_name);

// Visits keys only (for counting entries of maps no collector walks, and for garbage collection).
// Keys must not be deleted from inside `visit`: collect them and delete after the walk. The walk stops
// after `max_keys` keys (a key evicted under the cursor restarts the kernel's iteration).
Result<std::size_t> for_each_key(int map_fd, std::uint32_t key_size,
                                 const std::function<void(const void* key)>& visit,
                                 const std::string& map_name, std::size_t max_keys = SIZE_MAX);
Result<std::size_t> count_entries(int map_fd, std::uint32_t key_size, const std::string& map_name);

}  // namespace podsight::bpf
