// bpf::for_each_entry against real kernel maps: batch lookups and key-by-key iteration visit the same
// entries with the same per-CPU sums, whichever method is asked for.
#include "bpf/maps.hpp"

#include "bpf/handles.hpp"
#include "integration/support/harness.hpp"

#include <bpf/bpf.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <vector>

namespace podsight::bpf {
namespace {

struct Key {
  std::uint64_t id;
  std::uint32_t kind;
  std::uint32_t pad;
};
struct Value {
  std::uint64_t a;
  std::uint64_t b;
};

class MapWalk : public ::testing::TestWithParam<Walk> {};

// A per-CPU hash with more entries than one batch holds, each CPU's slot a different known value.
TEST_P(MapWalk, VisitsEveryEntryOnceWithPerCpuSums) {
  PODSIGHT_REQUIRE_PRIVILEGES();
  auto ncpus = possible_cpus();
  ASSERT_TRUE(ncpus) << ncpus.error().message();
  constexpr std::uint32_t kEntries = 10000;  // more than the 4096 a batch asks for
  UniqueFd fd(
      bpf_map_create(BPF_MAP_TYPE_PERCPU_HASH, "test_walk", sizeof(Key), sizeof(Value), kEntries, nullptr));
  ASSERT_TRUE(fd) << errno;
  std::vector<Value> values(static_cast<std::size_t>(*ncpus));
  for (std::uint32_t i = 0; i < kEntries; ++i) {
    const Key k{i * 7919ULL, i % 2, 0};
    for (int c = 0; c < *ncpus; ++c) values[static_cast<std::size_t>(c)] = {i + 1ULL, (c + 1ULL) * i};
    ASSERT_EQ(bpf_map_update_elem(fd.get(), &k, values.data(), BPF_NOEXIST), 0) << errno;
  }
  std::map<std::uint64_t, Value> seen;
  auto n = for_each_percpu_sum<Key, Value>(
      fd.get(), *ncpus, "test_walk",
      [&](const Key& k, const Value& v) {
        EXPECT_EQ(k.kind, (k.id / 7919) % 2);
        EXPECT_TRUE(seen.emplace(k.id, v).second) << "seen twice: " << k.id;
      },
      GetParam());
  ASSERT_TRUE(n) << n.error().message();
  EXPECT_EQ(*n, kEntries);
  ASSERT_EQ(seen.size(), kEntries);
  const std::uint64_t cpu_sum = static_cast<std::uint64_t>(*ncpus) * (*ncpus + 1) / 2;
  for (const auto& [id, v] : seen) {
    const std::uint64_t i = id / 7919;
    EXPECT_EQ(v.a, (i + 1) * static_cast<std::uint64_t>(*ncpus)) << i;
    EXPECT_EQ(v.b, cpu_sum * i) << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Methods, MapWalk, ::testing::Values(Walk::kAuto, Walk::kBatch, Walk::kKeyByKey),
                         [](const ::testing::TestParamInfo<Walk>& p) {
                           switch (p.param) {
                             case Walk::kBatch:
                               return "batch";
                             case Walk::kKeyByKey:
                               return "key_by_key";
                             default:
                               return "auto";
                           }
                         });

// Cgroup storage has no batch ops: kAuto falls back to key-by-key (and finds the map empty, nothing
// being attached); kBatch says it cannot rather than returning nothing.
TEST(MapWalkFallback, MapWithoutBatchOps) {
  PODSIGHT_REQUIRE_PRIVILEGES();
  UniqueFd fd(bpf_map_create(BPF_MAP_TYPE_CGROUP_STORAGE, "test_cgs", sizeof(std::uint64_t), 8, 0, nullptr));
  ASSERT_TRUE(fd) << errno;
  auto all = for_each_entry(
      fd.get(), [](const void*, const void*) {}, "test_cgs", Walk::kAuto);
  ASSERT_TRUE(all) << all.error().message();
  EXPECT_EQ(*all, 0u);
  auto batch = for_each_entry(
      fd.get(), [](const void*, const void*) {}, "test_cgs", Walk::kBatch);
  ASSERT_FALSE(batch);
  EXPECT_EQ(batch.error().err, EOPNOTSUPP);
}

}  // namespace
}  // namespace podsight::bpf
