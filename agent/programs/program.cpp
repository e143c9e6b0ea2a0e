// Shared lifecycle bookkeeping for program families.
#include "programs/program.hpp"

#include "log/log.hpp"

#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include <cerrno>
#include <optional>

namespace podsight::programs {

std::string_view to_string(State s) {
  switch (s) {
    case State::kDisabled: return "disabled";
    case State::kAttached: return "attached";
    case State::kDegraded: return "degraded";
    case State::kFailed: return "failed";
  }
  return "unknown";
}

void Family::start(Context& ctx) {
  if (!enabled()) {
    std::lock_guard lock(mu_);
    status_ = FamilyStatus{State::kDisabled, {}, {}};
    log::info("program family disabled", {{"program", std::string(name())}});
    return;
  }
  {
    std::lock_guard lock(mu_);
    degraded_.clear();
  }
  auto variant = do_start(ctx);
  std::lock_guard lock(mu_);
  if (!variant) {
    status_ = FamilyStatus{State::kFailed, {}, variant.error().message()};
    log::error("program family failed", {{"program", std::string(name())}, {"error", status_.error}});
    return;
  }
  if (!degraded_.empty()) {
    status_ = FamilyStatus{State::kDegraded, *variant, degraded_};
    log::warn("program family degraded",
              {{"program", std::string(name())}, {"variant", *variant}, {"error", degraded_}});
    return;
  }
  status_ = FamilyStatus{State::kAttached, *variant, {}};
  log::info("program family attached", {{"program", std::string(name())}, {"variant", *variant}});
}

void Family::stop() {
  do_stop();
  std::lock_guard lock(mu_);
  if (status_.state == State::kAttached || status_.state == State::kDegraded) {
    status_ = FamilyStatus{State::kDisabled, status_.variant, "stopped"};
  }
}

FamilyStatus Family::status() const {
  std::lock_guard lock(mu_);
  return status_;
}

void Family::degrade(std::string why) {
  std::lock_guard lock(mu_);
  if (!degraded_.empty()) degraded_ += "; ";
  degraded_ += why;
}

void Family::set_degraded(std::string why) {
  std::lock_guard lock(mu_);
  degraded_ = std::move(why);
  if (status_.state != State::kAttached && status_.state != State::kDegraded) return;
  const State next = degraded_.empty() ? State::kAttached : State::kDegraded;
  if (next == status_.state && status_.error == degraded_) return;
  status_.state = next;
  status_.error = degraded_;
  if (next == State::kDegraded) {
    log::warn("program family degraded",
              {{"program", std::string(name())}, {"variant", status_.variant}, {"error", degraded_}});
  } else {
    log::info("program family recovered", {{"program", std::string(name())}, {"variant", status_.variant}});
  }
}

std::vector<std::string> variant_order(const std::string& forced,
                                       const std::vector<std::pair<std::string, bool>>& usable) {
  std::vector<std::string> order;
  if (forced != "auto") {
    order.push_back(forced);  // forced even if probes say no: the load error then says why
    return order;
  }
  for (const auto& [v, ok] : usable) {
    if (ok) order.push_back(v);
  }
  return order;
}

Result<std::string> first_working_variant(std::string_view family, const std::vector<std::string>& order,
                                          const std::function<Status(const std::string&)>& attempt) {
  if (order.empty()) {
    return Error{"no usable variant: the kernel offers none of the attach points this family needs",
                 std::string(family), ENOENT};
  }
  // The best variant's error says why the family failed; a fallback usually fails for want of what
  // the best one had (e.g. "needs the tp_btf or fentry variant"), so it is only named after it.
  std::optional<Error> first;
  for (const auto& v : order) {
    auto st = attempt(v);
    if (st) return v;
    log::warn("variant unavailable",
              {{"program", std::string(family)}, {"variant", v}, {"error", st.error().message()}});
    if (!first) {
      first = st.error();
    } else {
      first->what += "; variant " + v + " failed too";
    }
  }
  return *first;
}

Status allocate_on_use(struct bpf_map* map, const std::string& name, bool on_use) {
  const std::uint32_t flags = bpf_map__map_flags(map);
  const std::uint32_t want = on_use ? flags | BPF_F_NO_PREALLOC : flags & ~std::uint32_t{BPF_F_NO_PREALLOC};
  if (int err = bpf_map__set_map_flags(map, want); err != 0) {
    return errno_error(on_use ? "set BPF_F_NO_PREALLOC" : "clear BPF_F_NO_PREALLOC", "map " + name, -err);
  }
  return {};
}

std::uint32_t slot_count(std::uint32_t max_entries) {
  std::uint32_t n = 1;
  while (n * 2 <= max_entries && n * 2 <= kMaxSlots) n *= 2;
  return n;
}

}  // namespace podsight::programs
