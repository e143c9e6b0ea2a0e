// xdp program family: load once, attach per interface (native, else generic), never replace another
// XDP program, and follow link changes from rtnetlink until stopped.
#include "programs/xdp.hpp"

#include "log/log.hpp"

// clang-format off
#include <linux/types.h>
#include "xdp.h"
#include "xdp.skel.h"
// clang-format on

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <linux/if_link.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <set>

namespace podsight::programs {
namespace {

static_assert(sizeof(xdp_key) == 8, "xdp_key layout is shared with bpf/xdp.bpf.c");
static_assert(sizeof(xdp_value) == 16, "xdp_value layout is shared with bpf/xdp.bpf.c");

// One map entry per (interface, family, protocol): the map can never be full while at most
// max_interfaces interfaces are attached.
constexpr std::uint32_t kKeysPerInterface = static_cast<std::uint32_t>(XDP_FAM_NR) * XDP_PROTO_NR;
// Reasons listed in /readyz before the rest are only counted: a node with hundreds of failing
// interfaces must not produce a readiness body of megabytes.
constexpr std::size_t kMaxReasons = 8;
constexpr int kSweepDelayMs = 1000;
constexpr int kErrorBackoffMs = 1000;

// BPF_LINK_CREATE for XDP came with struct bpf_xdp_link (Linux 5.9). Without vmlinux BTF we cannot tell
// and let the attach itself say.
bool kernel_has_xdp_link(bpf::Features& features) {
  const auto* btf = features.vmlinux_btf();
  return btf == nullptr || btf__find_by_name_kind(btf, "bpf_xdp_link", BTF_KIND_STRUCT) > 0;
}

struct Occupant {
  std::uint32_t id = 0;
  std::string mode;
};

// The XDP program on `ifindex`, if any, and its mode.
Result<Occupant> query_xdp(std::uint32_t ifindex) {
  LIBBPF_OPTS(bpf_xdp_query_opts, q);
  if (int err = bpf_xdp_query(static_cast<int>(ifindex), 0, &q); err != 0) {
    return errno_error("bpf_xdp_query", "ifindex " + std::to_string(ifindex), -err);
  }
  if (q.hw_prog_id != 0) return Occupant{q.hw_prog_id, "offload"};
  if (q.drv_prog_id != 0) return Occupant{q.drv_prog_id, "native"};
  if (q.skb_prog_id != 0) return Occupant{q.skb_prog_id, "generic"};
  return Occupant{};
}

std::string with_errno(const std::string& what, int err) { return Error{what, {}, err}.message(); }

}  // namespace

Xdp::Xdp(const config::XdpConfig& cfg) : cfg_(cfg), selector_(cfg.interfaces, cfg.include, cfg.exclude) {}
Xdp::~Xdp() { Xdp::do_stop(); }

Result<std::string> Xdp::do_start(Context& ctx) {
  const bool has_link = kernel_has_xdp_link(ctx.features);
  if (cfg_.variant == "auto" && !has_link) {
    // A netlink-attached program would outlive a SIGKILLed agent on every selected interface.
    return Error{
        "XDP needs link-based attachment (bpf_link for XDP, Linux >= 5.9), which this kernel lacks; "
        "podsight does not fall back to netlink attachment, which would outlive the agent",
        "xdp", ENOTSUP};
  }
  auto order = variant_order(cfg_.variant, {{"link", has_link}});
  return first_working_variant(name(), order, [this](const std::string&) { return try_start(); });
}

Status Xdp::try_start() {
  do_stop();
  xdp_bpf* raw = xdp_bpf::open();
  if (raw == nullptr) return errno_error("open BPF object", "xdp");
  skel_ = bpf::Skeleton<xdp_bpf>(raw);
  if (int err = bpf_map__set_max_entries(skel_->maps.xdp_counts, cfg_.max_interfaces * kKeysPerInterface);
      err != 0) {
    do_stop();
    return errno_error("set max_entries", "map xdp_counts", -err);
  }
  if (int err = xdp_bpf::load(skel_.get()); err != 0) {
    do_stop();
    return errno_error("load BPF program", "xdp", -err);
  }
  bpf_prog_info info{};
  __u32 len = sizeof info;
  if (bpf_obj_get_info_by_fd(bpf_program__fd(skel_->progs.xdp_count), &info, &len) != 0) {
    auto e = errno_error("BPF_OBJ_GET_INFO_BY_FD", "program xdp_count");
    do_stop();
    return e;
  }
  prog_id_ = info.id;
  // Subscribe before listing, so a link that changes in between is seen as a change afterwards.
  auto monitor = net::LinkMonitor::open();
  if (!monitor) {
    do_stop();
    return monitor.error();
  }
  monitor_ = std::move(*monitor);
  wake_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake_) {
    auto e = errno_error("eventfd", "xdp");
    do_stop();
    return e;
  }
  if (auto st = resync(); !st) {
    do_stop();
    return st;
  }
  if (ifaces_.empty() && selector_.names().empty()) {
    log::warn(
        "no interface matches programs.xdp.include/exclude yet; attaching to matching ones as they appear",
        {{"program", "xdp"}});
  }
  thread_ = std::thread([this] { watch(); });
  return {};
}

Status Xdp::resync() {
  auto links = net::list_links();
  if (!links) return links.error();
  std::set<std::uint32_t> present;
  for (const auto& l : *links) present.insert(l.ifindex);
  std::vector<std::uint32_t> gone;
  for (const auto& [ifindex, a] : ifaces_) {
    if (present.count(ifindex) == 0) gone.push_back(ifindex);
  }
  for (auto ifindex : gone) remove(ifindex);
  for (const auto& l : *links) apply(l);
  report();
  return {};
}

void Xdp::apply(const net::Link& link) {
  if (auto it = ifaces_.find(link.ifindex); it != ifaces_.end()) {
    if (it->second.info.name == link.name) return;  // flags, MTU, carrier: the attachment stays
    log::info("interface renamed: releasing it under its old name",
              {{"program", "xdp"}, {"interface", it->second.info.name}, {"new_name", link.name}});
    remove(link.ifindex);
  }
  if (!selector_.selects(link.name)) return;
  auto a = attach(link);
  {
    std::lock_guard lock(ifaces_mu_);
    ifaces_.insert_or_assign(link.ifindex, std::move(a));
  }
}

void Xdp::remove(std::uint32_t ifindex) {
  auto it = ifaces_.find(ifindex);
  if (it == ifaces_.end()) return;
  const bool was_attached = it->second.info.state == XdpInterface::State::kAttached;
  std::string name = it->second.info.name;
  {
    std::lock_guard lock(ifaces_mu_);
    ifaces_.erase(it);  // closes the link: detached (the kernel already did if the device is gone)
  }
  if (was_attached) {
    delete_counters(ifindex);
    log::info("xdp released", {{"program", "xdp"}, {"interface", name}, {"ifindex", ifindex}});
  }
}

Xdp::Attachment Xdp::attach(const net::Link& link) {
  Attachment a;
  a.info.ifindex = link.ifindex;
  a.info.name = link.name;
  const log::Fields where{{"program", "xdp"}, {"interface", link.name}, {"ifindex", link.ifindex}};
  auto fail = [&](XdpInterface::State state, std::string why) {
    a.info.state = state;
    a.info.error = std::move(why);
    log::Fields f = where;
    f.emplace_back("error", a.info.error);
    log::warn(state == XdpInterface::State::kForeign ? "xdp interface left alone" : "xdp attach failed", f);
    return std::move(a);
  };
  if (attached_count() >= cfg_.max_interfaces) {
    return fail(XdpInterface::State::kOverLimit, "programs.xdp.max_interfaces (" +
                                                     std::to_string(cfg_.max_interfaces) +
                                                     ") interfaces attached already");
  }
  auto foreign = [&](const Occupant& o) {
    a.info.mode = o.mode;
    if (o.id == prog_id_) {
      // A bond in native mode installs its program into its members.
      return fail(XdpInterface::State::kFailed, "our program already runs here in " + o.mode +
                                                    " mode, installed through an upper device (bond); "
                                                    "select the bond or its members, not both");
    }
    return fail(XdpInterface::State::kForeign, "another XDP program (id " + std::to_string(o.id) + ", " +
                                                   o.mode + " mode) is attached; left alone");
  };
  auto occupant = query_xdp(link.ifindex);
  if (!occupant) return fail(XdpInterface::State::kFailed, occupant.error().message());
  if (occupant->id != 0) return foreign(*occupant);

  // Native on a bond is pushed into its members, where it would collide with our own attachment to
  // them; generic on the bond counts what the bond itself receives.
  std::vector<std::pair<std::string, __u32>> modes;
  if (cfg_.mode == "native" || (cfg_.mode == "auto" && link.kind != "bond")) {
    modes.emplace_back("native", XDP_FLAGS_DRV_MODE);
  }
  if (cfg_.mode != "native") modes.emplace_back("generic", XDP_FLAGS_SKB_MODE);
  std::string errors;
  for (const auto& [mode, flags] : modes) {
    LIBBPF_OPTS(bpf_link_create_opts, opts, .flags = flags);
    const int fd = bpf_link_create(bpf_program__fd(skel_->progs.xdp_count), static_cast<int>(link.ifindex),
                                   BPF_XDP, &opts);
    if (fd >= 0) {
      a.link.reset(fd);
      break;
    }
    const int err = errno;
    if (err == EBUSY || err == EEXIST) {
      // Someone attached between our query and our attach: the kernel refused to replace it, and so do we.
      if (auto o = query_xdp(link.ifindex); o && o->id != 0 && o->id != prog_id_) return foreign(*o);
    }
    errors += (errors.empty() ? "" : "; ") + with_errno("attach " + mode, err);
  }
  if (!a.link) return fail(XdpInterface::State::kFailed, errors);
  // The mode the kernel actually uses, not the one we asked for.
  auto now = query_xdp(link.ifindex);
  a.info.state = XdpInterface::State::kAttached;
  a.info.mode = now && now->id == prog_id_ ? now->mode : modes.front().first;
  log::Fields f = where;
  f.emplace_back("mode", a.info.mode);
  if (!errors.empty()) f.emplace_back("native_error", errors);
  log::info("xdp attached", f);
  return a;
}

std::size_t Xdp::attached_count() const {
  return static_cast<std::size_t>(std::count_if(ifaces_.begin(), ifaces_.end(), [](const auto& e) {
    return e.second.info.state == XdpInterface::State::kAttached;
  }));
}

void Xdp::delete_counters(std::uint32_t ifindex) {
  if (!skel_) return;
  const int fd = bpf_map__fd(skel_->maps.xdp_counts);
  for (__u8 fam = 0; fam < XDP_FAM_NR; ++fam) {
    for (__u8 proto = 0; proto < XDP_PROTO_NR; ++proto) {
      xdp_key key{ifindex, fam, proto, 0};
      bpf_map_delete_elem(fd, &key);  // ENOENT: nothing was counted for this pair
    }
  }
  if (!sweep_pending_) sweep_due_ = Clock::now() + std::chrono::milliseconds(kSweepDelayMs);
  sweep_pending_ = true;
}

void Xdp::sweep_counters() {
  if (!skel_) return;
  const int fd = bpf_map__fd(skel_->maps.xdp_counts);
  std::set<std::uint32_t> attached;
  for (const auto& [ifindex, a] : ifaces_) {
    if (a.info.state == XdpInterface::State::kAttached) attached.insert(ifindex);
  }
  std::vector<xdp_key> stale;
  xdp_key key{};
  xdp_key next{};
  const xdp_key* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    if (attached.count(next.ifindex) == 0) stale.push_back(next);
    key = next;
    prev = &key;
  }
  for (const auto& k : stale) bpf_map_delete_elem(fd, &k);
  if (!stale.empty()) log::debug("xdp counters swept", {{"program", "xdp"}, {"entries", stale.size()}});
}

void Xdp::report() {
  std::vector<std::string> reasons;
  std::set<std::string> present;
  for (const auto& [ifindex, a] : ifaces_) {
    present.insert(a.info.name);
    if (a.info.state != XdpInterface::State::kAttached)
      reasons.push_back("interface " + a.info.name + ": " + a.info.error);
  }
  for (const auto& n : selector_.names()) {
    if (present.count(n) == 0)
      reasons.push_back("interface " + n + " (programs.xdp.interfaces) does not exist");
  }
  std::string why;
  for (std::size_t i = 0; i < reasons.size() && i < kMaxReasons; ++i)
    why += (i == 0 ? "" : "; ") + reasons[i];
  if (reasons.size() > kMaxReasons) why += "; and " + std::to_string(reasons.size() - kMaxReasons) + " more";
  set_degraded(std::move(why));
}

void Xdp::watch() {
  bool overrun = false;
  auto backoff = [this] {
    pollfd wake{wake_.get(), POLLIN, 0};
    ::poll(&wake, 1, kErrorBackoffMs);
  };
  for (;;) {
    int timeout = -1;
    if (sweep_pending_) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(sweep_due_ - Clock::now()).count();
      timeout = static_cast<int>(std::clamp<long long>(left, 0, kSweepDelayMs));
    }
    pollfd fds[2] = {{monitor_.fd(), POLLIN, 0}, {wake_.get(), POLLIN, 0}};
    const int n = ::poll(fds, 2, timeout);
    if (n < 0 && errno != EINTR) {
      log::error("xdp link watch: poll failed",
                 {{"program", "xdp"}, {"error", errno_error("poll").message()}});
      backoff();
    }
    if (n > 0 && (fds[1].revents & POLLIN) != 0) return;
    if (n > 0 && (fds[0].revents & (POLLIN | POLLERR)) != 0) {
      auto changes = monitor_.read(overrun);
      if (!changes) {
        log::error("xdp link watch: read failed", {{"program", "xdp"}, {"error", changes.error().message()}});
        overrun = true;
      } else {
        for (const auto& c : *changes) {
          if (c.removed) {
            remove(c.link.ifindex);
          } else {
            apply(c.link);
          }
        }
        report();
      }
    }
    if (overrun) {
      // Notifications were lost: only a full listing tells which links came and went meanwhile.
      log::warn("xdp link watch: notifications lost, listing all links again", {{"program", "xdp"}});
      if (auto st = resync(); st) {
        overrun = false;
      } else {
        log::error("xdp link watch: listing links failed",
                   {{"program", "xdp"}, {"error", st.error().message()}});
        backoff();
      }
    }
    if (sweep_pending_ && Clock::now() >= sweep_due_) {
      sweep_counters();
      sweep_pending_ = false;
    }
  }
}

void Xdp::do_stop() {
  if (thread_.joinable()) {
    const std::uint64_t one = 1;
    if (::write(wake_.get(), &one, sizeof one) != sizeof one) {
      log::error("xdp: cannot wake the link watch thread",
                 {{"error", errno_error("write eventfd").message()}});
    }
    thread_.join();
  }
  wake_.reset();
  monitor_ = net::LinkMonitor{};
  {
    std::lock_guard lock(ifaces_mu_);
    ifaces_.clear();  // closes every link: detached
  }
  sweep_pending_ = false;
  skel_.reset();
  prog_id_ = 0;
}

int Xdp::counts_fd() const { return skel_ ? bpf_map__fd(skel_->maps.xdp_counts) : -1; }

std::vector<XdpInterface> Xdp::interfaces() const {
  std::lock_guard lock(ifaces_mu_);
  std::vector<XdpInterface> out;
  out.reserve(ifaces_.size());
  for (const auto& [ifindex, a] : ifaces_) out.push_back(a.info);
  return out;
}

std::vector<MapRef> Xdp::maps() const {
  if (!skel_) return {};
  return {MapRef{"xdp_counts", bpf_map__fd(skel_->maps.xdp_counts),
                 bpf_map__max_entries(skel_->maps.xdp_counts), static_cast<std::uint32_t>(sizeof(xdp_key)),
                 XDP_MAP_COUNTS, -1}};
}

std::vector<ProgRef> Xdp::progs() const {
  if (!skel_) return {};
  return {ProgRef{"xdp", bpf_program__fd(skel_->progs.xdp_count)}};
}

int Xdp::map_errors_fd() const { return skel_ ? bpf_map__fd(skel_->maps.map_errors) : -1; }
std::uint32_t Xdp::map_errors_entries() const { return XDP_MAP_NR; }

}  // namespace podsight::programs
