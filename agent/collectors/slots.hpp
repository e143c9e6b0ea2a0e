// The agent's half of the slot protocol (bpf/shared/cgroup_skb.h, bpf/shared/exec.h): keys a family's
// hash already holds get a slot of an array map of their own, where the program counts them without
// a hash lookup. Only the agent writes owners, here, once per scrape.
#pragma once

#include "bpf/maps.hpp"
#include "util/result.hpp"

#include <bpf/bpf.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace podsight::collectors {

// One scrape's view of a family's slots, used in three steps while the collector walks its hash once
// and hands each entry on as it comes (no copy of the hash is kept: at 100k keys one was 3 MiB of the
// scrape's peak):
//   read()   every slot, its owner and its counts summed over CPUs;
//   add()    for each entry of the hash: the counts of the slot the key owns join the entry's;
//            a key whose index is free is noted for it;
//   write()  frees slots whose owner was not in the hash (garbage collection of a removed cgroup: the
//            slot's counts go with that owner's series) and gives the noted ones.
// A slot is given only if it was free when read here, so one freed now is given at the next scrape at
// the earliest: a program that read the old owner just before the free has long finished, and
// whatever it added is overwritten by the zeroed counts the new owner starts from.
//
// Traits (static members):
//   using Slot;                                  the slot map's value type, trivially copyable
//   using Key; using Value;                      the hash's key, and the counts the collector adds up
//   bool owned(const Slot&);                     false: free
//   Key owner(const Slot&);
//   bool same(const Key&, const Key&);
//   bool may_own(const Key&);                    false for keys that never get a slot
//   std::uint32_t index(const Key&, std::uint32_t mask);
//   Value counts(const Slot&);                   the slot's counts on one CPU
//   void add(Value&, const Value&);
//   Slot given(const Key&);                      zero counts, owned by the key
template <class Traits>
class SlotTable {
 public:
  using Slot = typename Traits::Slot;
  using Key = typename Traits::Key;
  using Value = typename Traits::Value;

  // `per_slot` values per index: the CPUs of a per-CPU array, else 1. A map that is not there (fd < 0,
  // no slots) makes every step a no-op.
  Status read(int fd, std::uint32_t nslots, std::size_t per_slot, std::string map) {
    fd_ = fd;
    per_slot_ = per_slot;
    map_ = std::move(map);
    entries_.clear();
    if (fd < 0 || nslots == 0 || per_slot == 0) return {};
    mask_ = nslots - 1;
    entries_.assign(nslots, Entry{});
    std::vector<Slot> values(per_slot);
    // One batch lookup for every slot (key-by-key where the kernel has no batch ops for arrays).
    auto read = bpf::for_each_entry(
        fd,
        [&](const void* key, const void* value) {
          std::uint32_t idx = 0;
          std::memcpy(&idx, key, sizeof idx);
          if (idx >= entries_.size()) return;
          std::memcpy(values.data(), value, values.size() * sizeof(Slot));
          Entry& e = entries_[idx];
          // The agent writes one owner to every CPU at once; a CPU that names another (none should)
          // is left out rather than counted for the wrong key.
          for (const Slot& s : values) {
            if (!Traits::owned(s)) continue;
            if (e.state == State::kFree) {
              e.state = State::kOwned;
              e.key = Traits::owner(s);
            } else if (!Traits::same(e.key, Traits::owner(s))) {
              continue;
            }
            Traits::add(e.counts, Traits::counts(s));
          }
        },
        map_);
    if (!read) {
      entries_.clear();
      return read.error();
    }
    return {};
  }

  // Called once for each entry of the hash, with the counts the collector is about to hand on.
  void add(const Key& key, Value& total) {
    if (entries_.empty() || !Traits::may_own(key)) return;
    const std::uint32_t idx = Traits::index(key, mask_);
    if (idx >= entries_.size()) return;
    Entry& e = entries_[idx];
    if (e.state == State::kOwned && Traits::same(e.key, key)) {
      Traits::add(total, e.counts);
      e.state = State::kSeen;
    } else if (e.state == State::kFree) {
      e.state = State::kGive;
      e.key = key;
    }
  }

  Status write() {
    std::vector<Slot> values(per_slot_);
    for (std::uint32_t idx = 0; idx < entries_.size(); ++idx) {
      const Entry& e = entries_[idx];
      if (e.state == State::kOwned) {
        values.assign(per_slot_, Slot{});
        if (bpf_map_update_elem(fd_, &idx, values.data(), BPF_EXIST) != 0) return errno_error("free slot", map_);
      } else if (e.state == State::kGive) {
        values.assign(per_slot_, Traits::given(e.key));
        if (bpf_map_update_elem(fd_, &idx, values.data(), BPF_EXIST) != 0) return errno_error("give slot", map_);
      }
    }
    return {};
  }

 private:
  enum class State : std::uint8_t {
    kFree,   // no owner when read
    kOwned,  // an owner, not (yet) found in the hash
    kSeen,   // an owner found in the hash: its counts were added
    kGive,   // free, and noted for a key of the hash
  };
  struct Entry {
    Key key{};
    Value counts{};
    State state = State::kFree;
  };
  int fd_ = -1;
  std::size_t per_slot_ = 0;
  std::uint32_t mask_ = 0;
  std::string map_;
  std::vector<Entry> entries_;
};

}  // namespace podsight::collectors
