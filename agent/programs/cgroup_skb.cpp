// cgroup_skb program family: checks the cgroup2 root, sizes the map, loads, attaches both directions.
#include "programs/cgroup_skb.hpp"

#include "log/log.hpp"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>

// clang-format off
#include <linux/types.h>
#include "cgroup_skb.h"
#include "cgroup_skb.skel.h"
// clang-format on

#include <cerrno>
#include <cstddef>

namespace podsight::programs {
namespace {
static_assert(sizeof(cgroup_skb_key) == 8, "cgroup_skb_key layout is shared with bpf/cgroup_skb.bpf.c");
static_assert(sizeof(cgroup_skb_value) == 32, "cgroup_skb_value layout is shared with bpf/cgroup_skb.bpf.c");
static_assert(sizeof(cgroup_skb_slot) == 40, "cgroup_skb_slot layout is shared with bpf/cgroup_skb.bpf.c");
static_assert(CGROUP_SKB_INGRESS == 0 && CGROUP_SKB_EGRESS == 1, "directions index cgroup_skb_value::dir");

// The root of a cgroup2 hierarchy has cgroup id (inode number) 1; a cgroup namespace or a
// configured subdirectory shows some other cgroup as the top.
constexpr ino_t kCgroup2RootIno = 1;

std::string attach_hint(int err) {
  if (err == EPERM) {
    return "; needs CAP_BPF and CAP_NET_ADMIN, and the kernel refuses it while a program is attached "
           "there without BPF_F_ALLOW_MULTI";
  }
  return {};
}

}  // namespace

CgroupSkb::CgroupSkb(const config::CgroupSkbConfig& cfg, std::string cgroup_root)
    : cfg_(cfg), root_(std::move(cgroup_root)) {}
CgroupSkb::~CgroupSkb() { CgroupSkb::do_stop(); }

Result<std::string> CgroupSkb::do_start(Context& /*ctx*/) {
  // One variant: see the comment at the top of bpf/cgroup_skb.bpf.c for why there is nothing to
  // probe. A kernel without cgroup bpf_links (< 5.7) fails here with the load or attach error.
  auto order = variant_order(cfg_.variant, {{"link", true}});
  return first_working_variant(name(), order, [this](const std::string& v) { return try_variant(v); });
}

Result<bpf::UniqueFd> CgroupSkb::open_root() {
  if (root_.empty()) return Error{"no cgroup2 mount found; set cgroup_root", "cgroup_skb", ENOENT};
  bpf::UniqueFd fd(::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return errno_error("open cgroup root", root_);
  struct statfs fs {};
  if (::fstatfs(fd.get(), &fs) != 0) return errno_error("statfs cgroup root", root_);
  if (fs.f_type != CGROUP2_SUPER_MAGIC) return Error{"not a cgroup v2 directory", root_, ENOTDIR};
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return errno_error("stat cgroup root", root_);
  if (st.st_ino != kCgroup2RootIno) {
    degrade("cgroup_root " + root_ + " is not the root of the cgroup2 hierarchy (cgroup id " +
            std::to_string(st.st_ino) + "): only sockets in cgroups below it are counted");
  }
  return fd;
}

Status CgroupSkb::try_variant(const std::string& variant) {
  do_stop();
  if (variant != "link") return Error{"unknown variant " + variant, "cgroup_skb", EINVAL};
  auto root = open_root();
  if (!root) return root.error();
  cgroup_skb_bpf* raw = cgroup_skb_bpf::open();
  if (raw == nullptr) return errno_error("open BPF object", "cgroup_skb");
  skel_ = bpf::Skeleton<cgroup_skb_bpf>(raw);
  if (int err = bpf_map__set_max_entries(skel_->maps.cgroup_skb_counts, cfg_.max_entries); err != 0) {
    do_stop();
    return errno_error("set max_entries", "map cgroup_skb_counts", -err);
  }
  const std::uint32_t slots = slot_count(cfg_.max_entries);
  if (int err = bpf_map__set_max_entries(skel_->maps.cgroup_skb_slots, slots); err != 0) {
    do_stop();
    return errno_error("set max_entries", "map cgroup_skb_slots", -err);
  }
  skel_->rodata->slot_mask = slots - 1;
  if (int err = cgroup_skb_bpf::load(skel_.get()); err != 0) {
    do_stop();
    return errno_error("load BPF programs", "cgroup_skb", -err);
  }
  // bpf_program__attach_cgroup makes a bpf_link (BPF_LINK_CREATE): always multi-attach, and detached
  // by the kernel when the last fd to it closes, also when the agent is SIGKILLed.
  std::string failed;
  int first_err = 0;
  auto attach = [&](bpf_program* prog, const char* dir, bpf::Link& out) {
    bpf_link* link = bpf_program__attach_cgroup(prog, root.value().get());
    if (link != nullptr) {
      out.reset(link);
      return;
    }
    const int err = errno;
    if (first_err == 0) first_err = err;
    if (!failed.empty()) failed += "; ";
    failed += errno_error(std::string("attach cgroup_skb/") + dir, root_, err).message() + attach_hint(err);
  };
  attach(skel_->progs.cgroup_skb_ingress, "ingress", ingress_);
  attach(skel_->progs.cgroup_skb_egress, "egress", egress_);
  if (!ingress_ && !egress_) {
    do_stop();
    return Error{failed, {}, 0};
  }
  if (!failed.empty()) degrade(failed);
  return {};
}

void CgroupSkb::do_stop() {
  ingress_.reset();
  egress_.reset();
  skel_.reset();
}

int CgroupSkb::counts_fd() const { return skel_ ? bpf_map__fd(skel_->maps.cgroup_skb_counts) : -1; }

int CgroupSkb::slots_fd() const { return skel_ ? bpf_map__fd(skel_->maps.cgroup_skb_slots) : -1; }
std::uint32_t CgroupSkb::slots() const {
  return skel_ ? bpf_map__max_entries(skel_->maps.cgroup_skb_slots) : 0;
}

std::vector<MapRef> CgroupSkb::maps() const {
  if (!skel_) return {};
  return {MapRef{"cgroup_skb_counts", bpf_map__fd(skel_->maps.cgroup_skb_counts),
                 bpf_map__max_entries(skel_->maps.cgroup_skb_counts),
                 static_cast<std::uint32_t>(sizeof(cgroup_skb_key)), CGROUP_SKB_MAP_COUNTS,
                 static_cast<int>(offsetof(cgroup_skb_key, cgroup_id))}};
}

std::vector<ProgRef> CgroupSkb::progs() const {
  std::vector<ProgRef> out;
  if (!skel_) return out;
  if (ingress_) out.push_back({"cgroup_skb_ingress", bpf_program__fd(skel_->progs.cgroup_skb_ingress)});
  if (egress_) out.push_back({"cgroup_skb_egress", bpf_program__fd(skel_->progs.cgroup_skb_egress)});
  return out;
}

int CgroupSkb::map_errors_fd() const { return skel_ ? bpf_map__fd(skel_->maps.map_errors) : -1; }
std::uint32_t CgroupSkb::map_errors_entries() const { return CGROUP_SKB_MAP_NR; }

}  // namespace podsight::programs
