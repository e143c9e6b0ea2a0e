// exec program family: variant choice (tp_btf, then the raw tracepoint), configure, load, attach.
#include "programs/exec.hpp"

#include "log/log.hpp"

// clang-format off
#include <linux/types.h>
#include "exec.h"
#include "exec.skel.h"
// clang-format on

#include <cerrno>
#include <cstddef>

namespace podsight::programs {
namespace {
static_assert(sizeof(exec_key) == 24, "exec_key layout is shared with bpf/exec.bpf.c");
static_assert(sizeof(exec_slot) == 32 && offsetof(exec_slot, owner) == 8,
              "exec_slot layout is shared with bpf/exec.bpf.c");
}  // namespace

Result<std::string> Exec::do_start(Context& ctx) {
  tracing_maps_may_allocate_ = ctx.features.tracing_maps_may_allocate();
  auto order =
      variant_order(cfg_.variant, {
                                      {"tp_btf", ctx.features.has_tp_btf("sched_process_exec")},
                                      {"tracepoint", ctx.features.has_raw_tracepoint("sched_process_exec")},
                                  });
  return first_working_variant(name(), order, [this](const std::string& v) { return try_variant(v); });
}

Status Exec::try_variant(const std::string& variant) {
  do_stop();
  if (variant != "tp_btf" && variant != "tracepoint")
    return Error{"unknown variant " + variant, "exec", EINVAL};
  exec_bpf* raw = exec_bpf::open();
  if (raw == nullptr) return errno_error("open BPF object", "exec");
  skel_ = bpf::Skeleton<exec_bpf>(raw);

  const bool btf = variant == "tp_btf";
  bpf_program__set_autoload(skel_->progs.exec_tp_btf, btf);
  bpf_program__set_autoload(skel_->progs.exec_tracepoint, !btf);
  if (int err = bpf_map__set_max_entries(skel_->maps.exec_counts, cfg_.max_entries); err != 0) {
    do_stop();
    return errno_error("set max_entries", "map exec_counts", -err);
  }
  if (auto st = allocate_on_use(skel_->maps.exec_counts, "exec_counts", btf || tracing_maps_may_allocate_); !st) {
    do_stop();
    return st;
  }
  const std::uint32_t slots = slot_count(cfg_.max_entries);
  if (int err = bpf_map__set_max_entries(skel_->maps.exec_slots, slots); err != 0) {
    do_stop();
    return errno_error("set max_entries", "map exec_slots", -err);
  }
  skel_->rodata->slot_mask = slots - 1;
  if (int err = exec_bpf::load(skel_.get()); err != 0) {
    do_stop();
    return errno_error("load BPF programs (variant " + variant + ")", "exec", -err);
  }
  bpf_program* prog = btf ? skel_->progs.exec_tp_btf : skel_->progs.exec_tracepoint;
  bpf_link* link = bpf_program__attach(prog);
  if (link == nullptr) {
    int err = errno;
    do_stop();
    return errno_error(btf ? "attach tp_btf/sched_process_exec" : "attach raw tracepoint sched_process_exec",
                       "exec", err);
  }
  link_.reset(link);
  variant_ = variant;
  return {};
}

Exec::Exec(const config::ExecConfig& cfg) : cfg_(cfg) {}
Exec::~Exec() { Exec::do_stop(); }

void Exec::do_stop() {
  link_.reset();
  skel_.reset();
  variant_.clear();
}

int Exec::counts_fd() const { return skel_ ? bpf_map__fd(skel_->maps.exec_counts) : -1; }
int Exec::slots_fd() const { return skel_ ? bpf_map__fd(skel_->maps.exec_slots) : -1; }
std::uint32_t Exec::slots() const { return skel_ ? bpf_map__max_entries(skel_->maps.exec_slots) : 0; }

std::vector<MapRef> Exec::maps() const {
  if (!skel_) return {};
  return {MapRef{"exec_counts", bpf_map__fd(skel_->maps.exec_counts),
                 bpf_map__max_entries(skel_->maps.exec_counts), static_cast<std::uint32_t>(sizeof(exec_key)),
                 EXEC_MAP_COUNTS, static_cast<int>(offsetof(exec_key, cgroup_id))}};
}

std::vector<ProgRef> Exec::progs() const {
  if (!skel_ || !link_) return {};
  bpf_program* p = variant_ == "tp_btf" ? skel_->progs.exec_tp_btf : skel_->progs.exec_tracepoint;
  return {ProgRef{"exec", bpf_program__fd(p)}};
}

int Exec::map_errors_fd() const { return skel_ ? bpf_map__fd(skel_->maps.map_errors) : -1; }
std::uint32_t Exec::map_errors_entries() const { return EXEC_MAP_NR; }

}  // namespace podsight::programs
