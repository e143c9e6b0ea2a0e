// cgroup_skb program family: IP packets and bytes per (cgroup, direction) from cgroup_skb ingress and
// egress programs attached with bpf_links at the cgroup2 root.
#pragma once

#include "bpf/handles.hpp"
#include "programs/program.hpp"

#include <string>

struct cgroup_skb_bpf;

namespace podsight::programs {

class CgroupSkb final : public Family {
 public:
  // `cgroup_root` is the cgroup2 directory to attach at: the agent's configured or detected root.
  CgroupSkb(const config::CgroupSkbConfig& cfg, std::string cgroup_root);
  ~CgroupSkb() override;

  [[nodiscard]] std::string_view name() const override { return "cgroup_skb"; }
  [[nodiscard]] bool enabled() const override { return cfg_.enabled; }
  [[nodiscard]] std::vector<MapRef> maps() const override;
  [[nodiscard]] std::vector<ProgRef> progs() const override;
  [[nodiscard]] int map_errors_fd() const override;
  [[nodiscard]] std::uint32_t map_errors_entries() const override;

  // fd of the (cgroup id, direction) -> per-CPU {packets, bytes} map, -1 when not loaded.
  [[nodiscard]] int counts_fd() const;
  // fd of the per-CPU array of cgroup_skb_slot (see bpf/shared/cgroup_skb.h), -1 when not loaded, and
  // its number of slots (a power of two: a cgroup's slot is its id & (slots - 1)).
  [[nodiscard]] int slots_fd() const;
  [[nodiscard]] std::uint32_t slots() const;

 protected:
  Result<std::string> do_start(Context& ctx) override;
  void do_stop() override;

 private:
  Status try_variant(const std::string& variant);
  Result<bpf::UniqueFd> open_root();

  config::CgroupSkbConfig cfg_;
  std::string root_;
  bpf::Skeleton<cgroup_skb_bpf> skel_;
  bpf::Link ingress_;
  bpf::Link egress_;
};

}  // namespace podsight::programs
