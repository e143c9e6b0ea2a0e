// exec program family: counts execve() per (cgroup, comm) from sched/sched_process_exec.
#pragma once

#include "bpf/handles.hpp"
#include "programs/program.hpp"

#include <linux/types.h>

struct exec_bpf;

namespace podsight::programs {

class Exec final : public Family {
 public:
  explicit Exec(const config::ExecConfig& cfg);
  ~Exec() override;

  [[nodiscard]] std::string_view name() const override { return "exec"; }
  [[nodiscard]] bool enabled() const override { return cfg_.enabled; }
  [[nodiscard]] std::vector<MapRef> maps() const override;
  [[nodiscard]] std::vector<ProgRef> progs() const override;
  [[nodiscard]] int map_errors_fd() const override;
  [[nodiscard]] std::uint32_t map_errors_entries() const override;

  // fd of the (cgroup id, comm) -> per-CPU count map, -1 when not loaded.
  [[nodiscard]] int counts_fd() const;
  // fd of the per-CPU array of exec_slot (see bpf/shared/exec.h), -1 when not loaded, and its number of slots
  // (a power of two: a key's slot is exec_slot_index(key, slots - 1)).
  [[nodiscard]] int slots_fd() const;
  [[nodiscard]] std::uint32_t slots() const;

 protected:
  Result<std::string> do_start(Context& ctx) override;
  void do_stop() override;

 private:
  Status try_variant(const std::string& variant);

  config::ExecConfig cfg_;
  bpf::Skeleton<exec_bpf> skel_;
  bpf::Link link_;
  std::string variant_;
  bool tracing_maps_may_allocate_ = false;  // Features::tracing_maps_may_allocate(), at start
};

}  // namespace podsight::programs
