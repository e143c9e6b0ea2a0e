// Loads the benchmark's empty programs (bench/bpf/floor.bpf.c) on the hooks asked for, holds the
// kernel's run-time statistics on (BPF_ENABLE_STATS) while it runs unless told not to, prints the
// program ids, and stays until stdin closes or a signal ends it.
#include "common.hpp"

#include "bpf/handles.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <net/if.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "floor.skel.h"

namespace podsight::bench {
namespace {

std::uint32_t prog_id(bpf_program* p) {
  bpf_prog_info info{};
  __u32 len = sizeof info;
  if (bpf_obj_get_info_by_fd(bpf_program__fd(p), &info, &len) != 0) return 0;
  return info.id;
}

}  // namespace

// --hooks exec_btf,exec_tp,exec_raw,tcp_raw,part_*,part_skb_*,part_tcp_*,tcp_btf,tcp_tp,cgroup_skb,xdp --cgroup-root DIR
// --ifname IF
// [--no-stats]
int floor_programs(const Args& a) {
  const std::string hooks = "," + a.str("hooks", "") + ",";
  const auto want = [&](const char* h) {
    return hooks.find(std::string(",") + h + ",") != std::string::npos;
  };
  bpf::UniqueFd stats;
  if (!a.flag("no-stats")) {
    stats.reset(bpf_enable_stats(BPF_STATS_RUN_TIME));
    if (!stats) throw std::runtime_error(std::string("BPF_ENABLE_STATS: ") + std::strerror(errno));
  }

  bpf::Skeleton<floor_bpf> owner(floor_bpf::open());
  if (!owner) throw std::runtime_error("open floor skeleton");
  floor_bpf* skel = owner.get();
  struct Hook {
    const char* name;
    bpf_program* prog;
  };
  const std::vector<Hook> all = {{"exec_btf", skel->progs.floor_exec_btf},
                                 {"exec_tp", skel->progs.floor_exec_tp},
                                 {"tcp_btf", skel->progs.floor_tcp_btf},
                                 {"tcp_tp", skel->progs.floor_tcp_tp},
                                 {"exec_raw", skel->progs.floor_exec_raw},
                                 {"tcp_raw", skel->progs.floor_tcp_raw},
                                 {"cgroup_skb", skel->progs.floor_skb_in},
                                 {"cgroup_skb", skel->progs.floor_skb_out},
                                 {"xdp", skel->progs.floor_xdp},
                                 {"part_cgroup_id", skel->progs.part_cgroup_id},
                                 {"part_comm", skel->progs.part_comm},
                                 {"part_key_btf", skel->progs.part_key_btf},
                                 {"part_array_add", skel->progs.part_array_add},
                                 {"part_pcpu_hash", skel->progs.part_pcpu_hash},
                                 {"part_pcpu_plain", skel->progs.part_pcpu_plain},
                                 {"part_shared_hash", skel->progs.part_shared_hash},
                                 {"part_slot_pcpu", skel->progs.part_slot_pcpu},
                                 {"part_slot_shared", skel->progs.part_slot_shared},
                                 {"part_shared_add", skel->progs.part_shared_add},
                                 // cgroup_skb parts: an ingress and egress pair per hook name
                                 {"part_skb_cgid", skel->progs.part_skb_cgid_in},
                                 {"part_skb_cgid", skel->progs.part_skb_cgid_out},
                                 {"part_skb_pcpu", skel->progs.part_skb_pcpu_in},
                                 {"part_skb_pcpu", skel->progs.part_skb_pcpu_out},
                                 {"part_skb_1add", skel->progs.part_skb_1add_in},
                                 {"part_skb_1add", skel->progs.part_skb_1add_out},
                                 {"part_skb_plain", skel->progs.part_skb_plain_in},
                                 {"part_skb_plain", skel->progs.part_skb_plain_out},
                                 {"part_skb_shared", skel->progs.part_skb_shared_in},
                                 {"part_skb_shared", skel->progs.part_skb_shared_out},
                                 {"part_skb_array", skel->progs.part_skb_array_in},
                                 {"part_skb_array", skel->progs.part_skb_array_out},
                                 {"part_skb_sk", skel->progs.part_skb_sk_in},
                                 {"part_skb_sk", skel->progs.part_skb_sk_out},
                                 {"part_skb_in_only", skel->progs.part_skb_in_only},
                                 {"part_skb_out_only", skel->progs.part_skb_out_only},
                                 {"part_tcp_filter", skel->progs.part_tcp_filter},
                                 {"part_tcp_cgroup", skel->progs.part_tcp_cgroup},
                                 {"part_tcp_ktime", skel->progs.part_tcp_ktime},
                                 {"part_tcp_read", skel->progs.part_tcp_read},
                                 {"part_tcp_storage", skel->progs.part_tcp_storage},
                                 {"part_tcp_sk_create", skel->progs.part_tcp_sk_create},
                                 {"part_tcp_hash", skel->progs.part_tcp_hash},
                                 {"part_tcp_stats_add", skel->progs.part_tcp_stats_add},
                                 {"part_tcp_shared_atomic", skel->progs.part_tcp_shared_atomic}};
  for (const auto& h : all) bpf_program__set_autoload(h.prog, want(h.name));
  if (int err = floor_bpf::load(skel); err != 0) {
    throw std::runtime_error(std::string("load floor programs: ") + std::strerror(-err));
  }
  std::vector<bpf::Link> links;
  bpf::UniqueFd cg;
  nlohmann::json ids = nlohmann::json::object();
  for (const auto& h : all) {
    if (!want(h.name)) continue;
    bpf_link* link = nullptr;
    if (bpf_program__type(h.prog) == BPF_PROG_TYPE_CGROUP_SKB) {
      if (!cg) {
        const std::string root = a.required("cgroup-root");
        cg.reset(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (!cg) throw std::runtime_error(root + ": " + std::strerror(errno));
      }
      link = bpf_program__attach_cgroup(h.prog, cg.get());
    } else if (std::string(h.name) == "xdp") {
      const std::string ifname = a.required("ifname");
      const unsigned ifindex = if_nametoindex(ifname.c_str());
      if (ifindex == 0) throw std::runtime_error(ifname + ": no such interface");
      link = bpf_program__attach_xdp(h.prog, static_cast<int>(ifindex));
    } else {
      link = bpf_program__attach(h.prog);
    }
    if (link == nullptr) {
      throw std::runtime_error(std::string("attach ") + bpf_program__name(h.prog) + ": " +
                               std::strerror(errno));
    }
    links.emplace_back(link);
    ids[bpf_program__name(h.prog)] = prog_id(h.prog);
  }
  emit({{"progs", ids}});
  // Until the orchestrator closes our stdin (or kills us).
  char c;
  while (::read(STDIN_FILENO, &c, 1) > 0) {
  }
  return 0;
}

}  // namespace podsight::bench
