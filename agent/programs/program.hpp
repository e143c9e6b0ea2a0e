// A program family's lifecycle: open -> configure -> load -> attach, with its state, chosen variant and
// error kept for /readyz, `--check` and self-metrics. A family that fails reports it and never stops
// the others; every attachment is a bpf_link owned here and released by stop().
#pragma once

#include "bpf/probe.hpp"
#include "config/config.hpp"
#include "util/result.hpp"

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

struct bpf_map;

namespace podsight::programs {

enum class State { kDisabled, kAttached, kDegraded, kFailed };
std::string_view to_string(State s);

struct FamilyStatus {
  State state = State::kDisabled;
  std::string variant;  // e.g. "tp_btf", "tracepoint"; empty when nothing loaded
  std::string error;    // why it failed or is degraded; empty otherwise
};

// A map the family owns, for podsight_map_entries / _capacity / _update_errors_total.
struct MapRef {
  std::string name;
  int fd = -1;
  std::uint32_t capacity = 0;
  std::uint32_t key_size = 0;
  int error_index = -1;  // slot in the family's map_errors array, -1 if the map never inserts
  // Byte offset of the u64 cgroup id inside the key, for maps keyed by cgroup: entries of cgroups that
  // no longer exist can then be deleted after a grace period. -1 when the key holds no cgroup id.
  int cgroup_id_offset = -1;
};

// A loaded BPF program, for podsight_program_runs_total / _run_seconds_total.
struct ProgRef {
  std::string name;
  int fd = -1;
};

struct Context {
  bpf::Features& features;
  const config::Config& config;
};

class Family {
 public:
  virtual ~Family() = default;
  [[nodiscard]] virtual std::string_view name() const = 0;
  [[nodiscard]] virtual bool enabled() const = 0;

  // Opens, configures, loads and attaches. Never throws; the outcome is in status().
  void start(Context& ctx);
  // Detaches and unloads everything. Idempotent; safe after a failed start.
  void stop();

  [[nodiscard]] FamilyStatus status() const;
  // Valid between a successful start() and stop().
  [[nodiscard]] virtual std::vector<MapRef> maps() const = 0;
  [[nodiscard]] virtual std::vector<ProgRef> progs() const = 0;
  // fd of the family's per-CPU map_errors array and its length, or -1.
  [[nodiscard]] virtual int map_errors_fd() const = 0;
  [[nodiscard]] virtual std::uint32_t map_errors_entries() const = 0;
  // A choice made at start-up besides the variant, for `podsight --check` (e.g. how the tcp family
  // reads open connections); empty when there is none.
  [[nodiscard]] virtual std::string detail() const { return {}; }

 protected:
  // Loads and attaches; returns the variant used, or an error. On error the implementation must have
  // released whatever it loaded. A partially working family returns its variant and calls degrade().
  virtual Result<std::string> do_start(Context& ctx) = 0;
  virtual void do_stop() = 0;
  void degrade(std::string why);
  // For families that keep changing after start (interfaces coming and going): replaces the whole
  // degradation reason, empty for none. While running this moves the state between attached and
  // degraded (logged); during do_start() it is what start() then reports.
  void set_degraded(std::string why);

 private:
  mutable std::mutex mu_;
  FamilyStatus status_;
  std::string degraded_;
};

// Picks the variant to try first and the fallbacks, in order. `forced` ("auto" or a variant name)
// comes from the config; `usable` says which variants the probes allow, best first.
std::vector<std::string> variant_order(const std::string& forced,
                                       const std::vector<std::pair<std::string, bool>>& usable);

// Tries `attempt(variant)` for each variant of `order` until one works, logging each failure; returns
// the variant that worked, or the first (best) variant's error naming the fallbacks that failed too (a
// "no usable variant" error when `order` is empty).
// `attempt` must leave nothing loaded when it fails.
Result<std::string> first_working_variant(std::string_view family, const std::vector<std::string>& order,
                                          const std::function<Status(const std::string&)>& attempt);

// Slots of an array map in which the keys a family already knows count without a hash lookup
// (cgroup_skb_slots, exec_slots): the largest power of two <= min(max_entries, kMaxSlots), so never
// more slots than keys tracked. Keys beyond them count in the family's hash, as without slots.
inline constexpr std::uint32_t kMaxSlots = 1024;
std::uint32_t slot_count(std::uint32_t max_entries);

// Before load: whether a hash map allocates each element as its key arrives (BPF_F_NO_PREALLOC) or
// all max_entries at creation. A per-CPU counter map preallocated holds max_entries x value size x
// possible CPUs of kernel memory whether or not a key ever comes (tcp_stats: 768 KiB per CPU at the
// default 16,384 entries, 96 MiB on a 128-CPU node); allocated on use, it holds what its keys need,
// for an allocation at a key's first event. Kprobe and raw tracepoint programs may use such maps only
// where Features::tracing_maps_may_allocate().
Status allocate_on_use(struct bpf_map* map, const std::string& name, bool on_use);

}  // namespace podsight::programs
