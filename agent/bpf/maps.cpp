// Scrape-time map walks: BPF_MAP_LOOKUP_BATCH first, get_next_key + lookup as the fallback.
#include "bpf/maps.hpp"

#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include <algorithm>
#include <cerrno>
#include <memory>

namespace podsight::bpf {
namespace {

// The kernel-internal ENOTSUPP (524) leaks to userspace from some map types without batch ops.
constexpr int kENOTSUPP = 524;

bool is_percpu(std::uint32_t type) {
  return type == BPF_MAP_TYPE_PERCPU_HASH || type == BPF_MAP_TYPE_LRU_PERCPU_HASH ||
         type == BPF_MAP_TYPE_PERCPU_ARRAY || type == BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE;
}

std::size_t value_bytes(const MapInfo& info, int ncpus) {
  if (!is_percpu(info.type)) return info.value_size;
  const std::size_t stride = (static_cast<std::size_t>(info.value_size) + 7) / 8 * 8;
  return stride * static_cast<std::size_t>(ncpus);
}

// Returns false (and leaves `visited` as is) if the kernel has no batch ops for this map, so the caller
// can fall back; true with `status` set otherwise.
bool walk_batched(int fd, const MapInfo& info, std::size_t vbytes, const RawVisitor& visit,
                  const std::string& name, std::size_t& visited, Status& status) {
  std::uint32_t batch = std::clamp<std::uint32_t>(info.max_entries, 1, 4096);
  // Not zero-filled: the kernel writes the entries it returns and only those are read. A batch is
  // sized for 4096 entries however few the map holds (tcp_stats: 450 KiB), and zero-filling it
  // touched every page, each scrape anew once the allocator had handed them back (a fifth of a
  // small scrape's CPU time on a VM where page faults are dear).
  std::unique_ptr<unsigned char[]> keys;
  std::unique_ptr<unsigned char[]> values;
  std::uint32_t allocated = 0;
  // The batch token is a bucket cursor for hash maps; key-sized is always large enough.
  std::vector<unsigned char> in_token(std::max<std::size_t>(info.key_size, 8));
  std::vector<unsigned char> out_token(in_token.size());
  bool first = true;
  LIBBPF_OPTS(bpf_map_batch_opts, opts);
  for (;;) {
    if (allocated < batch) {
      keys = std::make_unique_for_overwrite<unsigned char[]>(static_cast<std::size_t>(batch) * info.key_size);
      values = std::make_unique_for_overwrite<unsigned char[]>(static_cast<std::size_t>(batch) * vbytes);
      allocated = batch;
    }
    std::uint32_t count = batch;
    int rc = bpf_map_lookup_batch(fd, first ? nullptr : in_token.data(), out_token.data(), keys.get(),
                                  values.get(), &count, &opts);
    int err = rc < 0 ? errno : 0;
    if (rc < 0 && err == ENOSPC && batch < (1u << 20)) {
      // a single bucket holds more entries than fit in one batch: retry the same cursor, larger
      batch *= 2;
      continue;
    }
    if (rc < 0 && first && (err == EINVAL || err == ENOTSUP || err == EOPNOTSUPP || err == kENOTSUPP)) {
      return false;
    }
    if (rc < 0 && err != ENOENT) {
      status = errno_error("BPF_MAP_LOOKUP_BATCH", name, err);
      return true;
    }
    for (std::uint32_t i = 0; i < count; ++i) {
      visit(keys.get() + static_cast<std::size_t>(i) * info.key_size,
            values.get() + static_cast<std::size_t>(i) * vbytes);
    }
    visited += count;
    if (rc < 0) return true;  // ENOENT: that was the last batch
    in_token = out_token;
    first = false;
  }
}

}  // namespace

Result<int> possible_cpus() {
  int n = libbpf_num_possible_cpus();
  if (n <= 0) return errno_error("libbpf_num_possible_cpus", "/sys/devices/system/cpu/possible", -n);
  return n;
}

Result<MapInfo> map_info(int map_fd) {
  bpf_map_info info{};
  __u32 len = sizeof info;
  if (bpf_obj_get_info_by_fd(map_fd, &info, &len) != 0) {
    return errno_error("BPF_OBJ_GET_INFO_BY_FD", "map fd " + std::to_string(map_fd));
  }
  return MapInfo{info.type, info.key_size, info.value_size, info.max_entries, info.id, info.name};
}

Result<std::size_t> for_each_entry(int map_fd, const RawVisitor& visit, const std::string& map_name,
                                   Walk walk) {
  auto info = map_info(map_fd);
  if (!info) return info.error();
  auto ncpus = possible_cpus();
  if (!ncpus) return ncpus.error();
  const std::size_t vbytes = value_bytes(*info, *ncpus);

  std::size_t visited = 0;
  Status status;
  if (walk != Walk::kKeyByKey && walk_batched(map_fd, *info, vbytes, visit, map_name, visited, status)) {
    if (!status) return status.error();
    return visited;
  }
  if (walk == Walk::kBatch) {
    return Error{"BPF_MAP_LOOKUP_BATCH not supported for this map type", map_name, EOPNOTSUPP};
  }

  std::vector<unsigned char> key(info->key_size);
  std::vector<unsigned char> next(info->key_size);
  std::vector<unsigned char> value(vbytes);
  bool first = true;
  for (;;) {
    if (bpf_map_get_next_key(map_fd, first ? nullptr : key.data(), next.data()) != 0) {
      if (errno == ENOENT) break;
      return errno_error("BPF_MAP_GET_NEXT_KEY", map_name);
    }
    first = false;
    key.swap(next);
    if (bpf_map_lookup_elem(map_fd, key.data(), value.data()) != 0) {
      if (errno == ENOENT) continue;  // deleted between next_key and lookup
      return errno_error("BPF_MAP_LOOKUP_ELEM", map_name);
    }
    visit(key.data(), value.data());
    ++visited;
  }
  return visited;
}

Result<std::vector<std::uint64_t>> read_percpu_u64_array(int map_fd, std::uint32_t entries, int ncpus,
                                                         const std::string& map_name) {
  std::vector<std::uint64_t> sums(entries);
  std::vector<std::uint64_t> per_cpu(static_cast<std::size_t>(ncpus));
  for (std::uint32_t i = 0; i < entries; ++i) {
    if (bpf_map_lookup_elem(map_fd, &i, per_cpu.data()) != 0) {
      return errno_error("BPF_MAP_LOOKUP_ELEM", map_name + "[" + std::to_string(i) + "]");
    }
    for (auto v : per_cpu) sums[i] += v;
  }
  return sums;
}

Result<std::size_t> for_each_key(int map_fd, std::uint32_t key_size,
                                 const std::function<void(const void* key)>& visit,
                                 const std::string& map_name, std::size_t max_keys) {
  std::vector<unsigned char> key(key_size);
  std::vector<unsigned char> next(key_size);
  std::size_t n = 0;
  bool first = true;
  while (n < max_keys) {
    if (bpf_map_get_next_key(map_fd, first ? nullptr : key.data(), next.data()) != 0) {
      if (errno == ENOENT) return n;
      return errno_error("BPF_MAP_GET_NEXT_KEY", map_name);
    }
    first = false;
    key.swap(next);
    visit(key.data());
    ++n;
  }
  return n;
}

Result<std::size_t> count_entries(int map_fd, std::uint32_t key_size, const std::string& map_name) {
  return for_each_key(
      map_fd, key_size, [](const void*) {}, map_name);
}

}  // namespace podsight::bpf
