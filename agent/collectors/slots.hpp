// The agent's half of the slot protocol (bpf/shared/cgroup_skb.h, bpf/shared/exec.h): keys a family's
// hash already holds get a slot of an array map of their own, where the program counts them without
// a hash lookup. Only the agent writes owners, here, once per scrape.
#pragma once

#include "bpf/maps.hpp"
#include "util/result.hpp"

#include <bpf/bpf.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace podsight::collectors {

// Adds every owned slot to its owner's entry of `totals` (the family's hash, read this scrape), frees
// slots whose owner is no longer in it (garbage collection of a removed cgroup; the slot's counts go
// with that owner's series), and gives free slots to keys of `totals` whose index is free.
//
// Slots: the map's value type, `per_slot` of them per index (the CPUs of a per-CPU array, else 1).
// Traits (static members):
//   using Slot;                                      the value type, trivially copyable
//   bool owned(const Slot&);                         false: free
//   Key owner(const Slot&);                          the key of `totals` that owns it
//   bool may_own(const Key&);                        false for keys that never get a slot
//   std::uint32_t index(const Key&, std::uint32_t mask);
//   void add(Totals::mapped_type&, const Slot&);     adds the slot's counts
//   Slot given(const Key&);                          zero counts, owned by the key
//
// A slot is given only if it was free when read here, so one freed now is given at the next scrape at
// the earliest: a program that read the old owner just before the free has long finished, and
// whatever it added is overwritten by the zeroed counts the new owner starts from.
template <class Traits, class Totals>
Status sync_slots(int fd, std::uint32_t nslots, std::size_t per_slot, Totals& totals,
                  const std::string& map) {
  using Slot = typename Traits::Slot;
  if (fd < 0 || nslots == 0 || per_slot == 0) return {};
  const std::uint32_t mask = nslots - 1;
  std::vector<Slot> values(per_slot);
  std::vector<std::uint32_t> to_free;
  std::vector<bool> free(nslots, false);
  // One batch lookup for every slot (key-by-key where the kernel has no batch ops for arrays).
  auto read = bpf::for_each_entry(
      fd,
      [&](const void* key, const void* value) {
        std::uint32_t idx = 0;
        std::memcpy(&idx, key, sizeof idx);
        if (idx >= nslots) return;
        std::memcpy(values.data(), value, values.size() * sizeof(Slot));
        bool owned = false;
        for (const Slot& s : values) {
          if (!Traits::owned(s)) continue;
          owned = true;
          auto it = totals.find(Traits::owner(s));
          if (it == totals.end()) {
            if (to_free.empty() || to_free.back() != idx) to_free.push_back(idx);
            continue;
          }
          Traits::add(it->second, s);
        }
        free[idx] = !owned;
      },
      map);
  if (!read) return read.error();
  std::fill(values.begin(), values.end(), Slot{});
  for (const std::uint32_t idx : to_free) {
    if (bpf_map_update_elem(fd, &idx, values.data(), BPF_EXIST) != 0) return errno_error("free slot", map);
  }
  for (const auto& [key, v] : totals) {
    if (!Traits::may_own(key)) continue;
    const std::uint32_t idx = Traits::index(key, mask);
    if (idx >= nslots || !free[idx]) continue;
    std::fill(values.begin(), values.end(), Traits::given(key));
    if (bpf_map_update_elem(fd, &idx, values.data(), BPF_EXIST) != 0) return errno_error("give slot", map);
    free[idx] = false;
  }
  return {};
}

}  // namespace podsight::collectors
