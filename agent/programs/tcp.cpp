// tcp program family: variant choice (tp_btf, fentry, tracepoint, kprobe) and where open connections'
// records live (socket storage or tcp_conns), configure, load, attach; the scrape-time iterators and
// the per-namespace iter/tcp walk at start-up.
#include "programs/tcp.hpp"

#include "log/log.hpp"

// clang-format off
#include <linux/types.h>
#include "tcp.h"
#include "tcp.skel.h"
// clang-format on

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <optional>
#include <system_error>
#include <thread>
#include <vector>

namespace podsight::programs {
namespace {

static_assert(sizeof(tcp_conn_key) == 44, "tcp_conn_key layout is shared with bpf/tcp.bpf.c");
static_assert(sizeof(tcp_conn) == 64, "tcp_conn layout is shared with bpf/tcp.bpf.c");
static_assert(sizeof(tcp_stats_key) == 16, "tcp_stats_key layout is shared with bpf/tcp.bpf.c");
static_assert(sizeof(tcp_stats) == 48, "tcp_stats layout is shared with bpf/tcp.bpf.c");
static_assert(sizeof(tcp_open_record) == 16, "tcp_open_record layout is shared with bpf/tcp.bpf.c");
static_assert(sizeof(tcp_remote_addr) == sizeof(metadata::Address), "tcp_remote_addr is an Address");
static_assert(sizeof(tcp_remote_key) == 16, "tcp_remote_key layout is shared with bpf/tcp.bpf.c");
static_assert(sizeof(tcp_remote_stats) == 40, "tcp_remote_stats layout is shared with bpf/tcp.bpf.c");
static_assert(TCP_REMOTE_EXTERNAL == metadata::RemoteIndex::kExternalId &&
                  TCP_REMOTE_LOCAL == metadata::RemoteIndex::kLocalId &&
                  TCP_REMOTE_FIRST == metadata::RemoteIndex::kFirstId,
              "endpoint ids the programs give are the index's");

constexpr const char* kOwnNetns = "/proc/self/ns/net";

std::uint32_t inode_of(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return static_cast<std::uint32_t>(st.st_ino);
}

// Every network namespace reachable from here: the ones `ip netns` names, then one process per
// namespace from /proc. First path found for an inode wins.
std::map<std::uint32_t, std::string> scan_netns() {
  std::map<std::uint32_t, std::string> found;
  if (auto ino = inode_of(kOwnNetns)) found.emplace(ino, kOwnNetns);
  for (const char* dir : {"/var/run/netns", "/proc"}) {
    DIR* d = ::opendir(dir);
    if (d == nullptr) continue;
    const bool proc = std::string_view(dir) == "/proc";
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] == '.') continue;
      if (proc && (e->d_name[0] < '0' || e->d_name[0] > '9')) continue;
      std::string path = std::string(dir) + "/" + e->d_name + (proc ? "/ns/net" : "");
      if (auto ino = inode_of(path)) found.emplace(ino, std::move(path));
    }
    ::closedir(d);
  }
  return found;
}

bool has_btf_struct(bpf::Features& f, const char* name) {
  const auto* b = f.vmlinux_btf();
  return b != nullptr && btf__find_by_name_kind(b, name, BTF_KIND_STRUCT) > 0;
}

// Byte offset of member `member` of struct `strct` in the kernel's BTF (anonymous unions and structs
// looked into), nullopt when there is no such member.
std::optional<std::uint32_t> btf_member_offset(bpf::Features& f, const char* strct, std::string_view member) {
  const auto* b = f.vmlinux_btf();
  if (b == nullptr) return std::nullopt;
  const int id = btf__find_by_name_kind(b, strct, BTF_KIND_STRUCT);
  if (id <= 0) return std::nullopt;
  std::vector<std::pair<const btf_type*, std::uint32_t>> todo{{btf__type_by_id(b, id), 0}};
  while (!todo.empty()) {
    const auto [t, base] = todo.back();
    todo.pop_back();
    const btf_member* m = btf_members(t);
    for (unsigned i = 0; i < btf_vlen(t); ++i, ++m) {
      const char* name = btf__name_by_offset(b, m->name_off);
      const std::uint32_t off = base + btf_member_bit_offset(t, i) / 8;
      if (name != nullptr && name == member) return off;
      if (name == nullptr || *name == '\0') {
        const btf_type* inner = btf__type_by_id(b, m->type);
        if (inner != nullptr && (btf_is_struct(inner) || btf_is_union(inner))) todo.emplace_back(inner, off);
      }
    }
  }
  return std::nullopt;
}

}  // namespace

std::string_view to_string(OpenConnections m) {
  switch (m) {
    case OpenConnections::kSkStorage:
      return "sk_storage";
    case OpenConnections::kIterTcp:
      return "iter_tcp";
    case OpenConnections::kNone:
      break;
  }
  return "none";
}

Tcp::Tcp(const config::TcpConfig& cfg, metadata::RemoteIndex* remote)
    : cfg_(cfg), remote_(cfg.remote.enabled ? remote : nullptr) {}
Tcp::~Tcp() { Tcp::do_stop(); }

Result<std::string> Tcp::do_start(Context& ctx) {
  auto& f = ctx.features;
  const bool btf_retransmit = f.has_tp_btf("tcp_retransmit_skb") && f.has_tp_btf("tcp_retransmit_synack");
  // The non-BTF variants attach their programs as raw tracepoints, which need no tracefs.
  const bool tp_retransmit =
      f.has_raw_tracepoint("tcp_retransmit_skb") && f.has_raw_tracepoint("tcp_retransmit_synack");
  auto order = variant_order(
      cfg_.variant, {
                        {"tp_btf", f.has_tp_btf("inet_sock_set_state") && btf_retransmit},
                        {"fentry", (btf_retransmit || tp_retransmit) && f.can_load_fentry("tcp_set_state")},
                        {"tracepoint", f.has_raw_tracepoint("inet_sock_set_state") && tp_retransmit},
                        {"kprobe", tp_retransmit && f.has_kprobes()},
                    });
  auto v = first_working_variant(name(), order,
                                 [&](const std::string& variant) { return try_variant(variant, ctx); });
  if (!v) return v;
  log::info("bytes of open connections",
            {{"program", "tcp"}, {"variant", *v}, {"open_connections", std::string(to_string(open_))}});
  adopt_existing_connections();
  if (!iter_problem_.empty()) degrade(iter_problem_);
  // From now on the index keeps tcp_remote_addrs current (it sends what it knows first).
  if (remote_ != nullptr) remote_->attach(this);
  return v;
}

Status Tcp::try_variant(const std::string& variant, Context& ctx) {
  do_stop();
  auto& f = ctx.features;
  // A forced variant the kernel cannot do fails here with the reason, before libbpf tries to load it.
  if (variant == "tp_btf" && !f.has_tp_btf("inet_sock_set_state")) {
    return Error{"variant tp_btf: the kernel BTF has no inet_sock_set_state raw tracepoint", "tcp",
                 EOPNOTSUPP};
  }
  if (variant == "fentry" && !f.can_load_fentry("tcp_set_state")) {
    return Error{
        "variant fentry: this kernel cannot attach fentry programs (a probe program on tcp_set_state "
        "did not load and attach; needs BTF and BPF trampolines)",
        "tcp", EOPNOTSUPP};
  }
  if (variant == "tracepoint" && !f.has_raw_tracepoint("inet_sock_set_state")) {
    return Error{"variant tracepoint: the raw tracepoint inet_sock_set_state cannot be attached", "tcp",
                 EOPNOTSUPP};
  }
  if (variant == "kprobe" && !f.has_kprobes()) {
    return Error{
        "variant kprobe: this kernel has no kprobes (no kprobe PMU in /sys/bus/event_source/devices)", "tcp",
        EOPNOTSUPP};
  }
  if (variant != "tp_btf" && variant != "fentry" && variant != "tracepoint" && variant != "kprobe") {
    return Error{"unknown variant " + variant, "tcp", EINVAL};
  }
  const bool btf_retransmit = (variant == "tp_btf" || variant == "fentry") &&
                              f.has_tp_btf("tcp_retransmit_skb") && f.has_tp_btf("tcp_retransmit_synack");

  // Socket storage needs handlers that see the socket as a BTF pointer (the raw tracepoint and
  // kprobe hand over a plain address), tracing programs allowed to use it (Linux >= 5.11), the
  // storage iterator (5.9) and atomic compare-and-swap (5.12): the last two show when loading.
  std::string sk_problem;
  if (!btf_retransmit) {
    sk_problem = "needs the tp_btf or fentry variant with BTF-typed tcp_retransmit_* tracepoints";
  } else if (!has_btf_struct(f, "bpf_iter__bpf_sk_storage_map")) {
    sk_problem = "no socket storage iterator (iter/bpf_sk_storage_map, Linux >= 5.9)";
  } else if (!f.can_load_iter("bpf_sk_storage_map")) {
    sk_problem =
        "the kernel refuses socket storage iterator programs (a minimal iter/bpf_sk_storage_map "
        "program does not load)";
  } else if (cfg_.open_connections == "auto" && !btf_member_offset(f, "spinlock", "rlock")) {
    // PREEMPT_RT: the socket lock cannot be read, so open connections would lag by a byte.
    sk_problem = "the socket spinlock is not a raw spinlock (PREEMPT_RT)";
  }
  std::vector<OpenConnections> methods;
  if (cfg_.open_connections == "sk_storage") {
    if (!sk_problem.empty()) {
      return Error{"open_connections sk_storage with variant " + variant + ": " + sk_problem, "tcp",
                   EOPNOTSUPP};
    }
    methods = {OpenConnections::kSkStorage};
  } else if (cfg_.open_connections == "iter_tcp" || !sk_problem.empty()) {
    if (cfg_.open_connections == "auto") {
      log::info("socket storage unusable for open connections; walking each network namespace instead",
                {{"program", "tcp"}, {"variant", variant}, {"reason", sk_problem}});
    }
    methods = {OpenConnections::kIterTcp};
  } else {
    methods = {OpenConnections::kSkStorage, OpenConnections::kIterTcp};
  }
  Status st;
  for (auto method : methods) {
    st = load(variant, method, btf_retransmit, ctx);
    if (st) {
      variant_ = variant;
      return st;
    }
    if (method == OpenConnections::kSkStorage && methods.size() > 1) {
      log::warn("socket storage for open connections did not load; walking each network namespace instead",
                {{"program", "tcp"}, {"variant", variant}, {"error", st.error().message()}});
    }
  }
  return st;
}

Status Tcp::load(const std::string& variant, OpenConnections method, bool btf_retransmit, Context& ctx) {
  auto& f = ctx.features;
  const bool sk = method == OpenConnections::kSkStorage;
  bool with_iter = has_btf_struct(f, "bpf_iter__tcp");
  bool with_sk_iter = sk;
  iter_problem_.clear();
  if (!with_iter && !sk) {
    iter_problem_ =
        "no BPF TCP iterator (iter/tcp, kernel >= 5.9): bytes of open connections are counted only when "
        "they close";
  }

  for (;;) {
    tcp_bpf* raw = tcp_bpf::open();
    if (raw == nullptr) return errno_error("open BPF object", "tcp");
    skel_ = bpf::Skeleton<tcp_bpf>(raw);
    auto& p = skel_->progs;
    bpf_program__set_autoload(p.tcp_state_tp_btf, variant == "tp_btf" && !sk);
    bpf_program__set_autoload(p.tcp_state_tp_btf_sk, variant == "tp_btf" && sk);
    bpf_program__set_autoload(p.tcp_state_fentry, variant == "fentry" && !sk);
    bpf_program__set_autoload(p.tcp_state_fentry_sk, variant == "fentry" && sk);
    bpf_program__set_autoload(p.tcp_state_tracepoint, variant == "tracepoint");
    bpf_program__set_autoload(p.tcp_state_kprobe, variant == "kprobe");
    bpf_program__set_autoload(p.tcp_retransmit_tp_btf, btf_retransmit && !sk);
    bpf_program__set_autoload(p.tcp_retransmit_tp_btf_sk, btf_retransmit && sk);
    bpf_program__set_autoload(p.tcp_synack_tp_btf, btf_retransmit);
    bpf_program__set_autoload(p.tcp_retransmit_tracepoint, !btf_retransmit);
    bpf_program__set_autoload(p.tcp_synack_tracepoint, !btf_retransmit);
    bpf_program__set_autoload(p.tcp_iter, with_iter && !sk);
    bpf_program__set_autoload(p.tcp_iter_adopt, with_iter && sk);
    bpf_program__set_autoload(p.tcp_sk_iter, with_sk_iter);
    skel_->rodata->max_sk_conns = cfg_.max_connections;
    // The record has err exactly when the tracepoint has it as a third argument.
    skel_->rodata->retransmit_err =
        btf_member_offset(f, "trace_event_raw_tcp_retransmit_skb", "err").has_value();
    // Unused by the socket-storage path, where it stays empty (entries are allocated one by one).
    if (int err = bpf_map__set_max_entries(skel_->maps.tcp_conns, cfg_.max_connections); err != 0) {
      do_stop();
      return errno_error("set max_entries", "map tcp_conns", -err);
    }
    if (int err = bpf_map__set_max_entries(skel_->maps.tcp_stats, cfg_.max_entries); err != 0) {
      do_stop();
      return errno_error("set max_entries", "map tcp_stats", -err);
    }
    // Remote labels off: one slot each, never written.
    const bool remote = remote_ != nullptr;
    skel_->rodata->remote_enabled = remote;
    if (int err =
            bpf_map__set_max_entries(skel_->maps.tcp_remote_stats, remote ? cfg_.remote.max_entries : 1);
        err != 0) {
      do_stop();
      return errno_error("set max_entries", "map tcp_remote_stats", -err);
    }
    if (int err =
            bpf_map__set_max_entries(skel_->maps.tcp_remote_addrs, remote ? cfg_.remote.max_addresses : 1);
        err != 0) {
      do_stop();
      return errno_error("set max_entries", "map tcp_remote_addrs", -err);
    }
    // Elements as keys come where every program that writes the map may allocate (the raw tracepoint
    // retransmit handlers write tcp_stats too); else preallocated, the connection records included.
    const bool btf_typed_only = (variant == "tp_btf" || variant == "fentry") && btf_retransmit;
    const bool on_use = btf_typed_only || f.tracing_maps_may_allocate();
    for (auto [map, name] : {std::pair{skel_->maps.tcp_stats, "tcp_stats"},
                             std::pair{skel_->maps.tcp_remote_stats, "tcp_remote_stats"},
                             std::pair{skel_->maps.tcp_conns, "tcp_conns"},
                             std::pair{skel_->maps.tcp_remote_addrs, "tcp_remote_addrs"}}) {
      if (auto st = allocate_on_use(map, name, on_use); !st) {
        do_stop();
        return st;
      }
    }
    int err = tcp_bpf::load(skel_.get());
    if (err == 0) break;
    do_stop();
    auto e = errno_error("load BPF programs (variant " + variant + ", open_connections " +
                             std::string(to_string(method)) + ")",
                         "tcp", -err);
    // Socket storage stands or falls as a whole; the caller falls back to tcp_conns.
    if (sk || !with_iter) return e;
    // The iterator is the newest piece: without it the family still counts everything but open
    // connections' bytes, so try once more without it before giving up on this variant.
    with_iter = false;
    iter_problem_ = "iter/tcp did not load (" + e.message() +
                    "): bytes of open connections are counted only "
                    "when they close";
  }

  auto& p = skel_->progs;
  bpf_program* state = variant == "tp_btf"       ? (sk ? p.tcp_state_tp_btf_sk : p.tcp_state_tp_btf)
                       : variant == "fentry"     ? (sk ? p.tcp_state_fentry_sk : p.tcp_state_fentry)
                       : variant == "tracepoint" ? p.tcp_state_tracepoint
                                                 : p.tcp_state_kprobe;
  bpf_program* retransmit = !btf_retransmit ? p.tcp_retransmit_tracepoint
                            : sk            ? p.tcp_retransmit_tp_btf_sk
                                            : p.tcp_retransmit_tp_btf;
  struct Attach {
    bpf_program* prog;
    bpf::Link* link;
    const char* what;
  };
  const Attach attaches[] = {
      {state, &state_link_, "attach lifecycle program"},
      {retransmit, &retransmit_link_, "attach tcp_retransmit_skb"},
      {btf_retransmit ? p.tcp_synack_tp_btf : p.tcp_synack_tracepoint, &synack_link_,
       "attach tcp_retransmit_synack"},
  };
  for (const auto& a : attaches) {
    bpf_link* link = bpf_program__attach(a.prog);
    if (link == nullptr) {
      int e = errno;
      do_stop();
      return errno_error(std::string(a.what) + " (variant " + variant + ")", "tcp", e);
    }
    a.link->reset(link);
  }
  if (sk) {
    union bpf_iter_link_info info {};
    info.map.map_fd = static_cast<__u32>(bpf_map__fd(skel_->maps.tcp_sk));
    LIBBPF_OPTS(bpf_iter_attach_opts, opts, .link_info = &info, .link_info_len = sizeof info);
    bpf_link* link = bpf_program__attach_iter(p.tcp_sk_iter, &opts);
    if (link == nullptr) {
      int e = errno;
      do_stop();
      return errno_error("attach iter/bpf_sk_storage_map", "tcp", e);
    }
    sk_iter_link_.reset(link);
    open_ = OpenConnections::kSkStorage;
  }
  if (with_iter) {
    bpf_link* link = bpf_program__attach_iter(sk ? p.tcp_iter_adopt : p.tcp_iter, nullptr);
    if (link == nullptr && sk) {
      log::warn("connections open before start-up are not adopted",
                {{"program", "tcp"}, {"error", errno_error("attach iter/tcp", "tcp").message()}});
    } else if (link == nullptr) {
      iter_problem_ = errno_error("attach iter/tcp", "tcp").message() +
                      ": bytes of open connections are counted only when they close";
    } else {
      (sk ? adopt_link_ : iter_link_).reset(link);
      if (!sk) open_ = OpenConnections::kIterTcp;
    }
  }
  return {};
}

void Tcp::do_stop() {
  // No index update may reach the map once it is gone.
  if (remote_ != nullptr) remote_->attach(nullptr);
  adopt_link_.reset();
  sk_iter_link_.reset();
  iter_link_.reset();
  synack_link_.reset();
  retransmit_link_.reset();
  state_link_.reset();
  skel_.reset();
  variant_.clear();
  open_ = OpenConnections::kNone;
}

std::string Tcp::detail() const { return "open connections: " + std::string(to_string(open_)); }

Status Tcp::run_iterator(const bpf::Link& link) {
  int fd = bpf_iter_create(bpf_link__fd(link.get()));
  if (fd < 0) return errno_error("BPF_ITER_CREATE", "tcp_iter");
  bpf::UniqueFd iter(fd);
  // The program writes nothing: one read walks every socket of the namespace and returns 0.
  char buf[64];
  for (;;) {
    ssize_t n = ::read(iter.get(), buf, sizeof buf);
    if (n == 0) return {};
    if (n < 0 && errno != EINTR && errno != EAGAIN) return errno_error("read BPF iterator", "tcp_iter");
  }
}

std::map<std::uint32_t, std::string> Tcp::netns_paths(const std::set<std::uint32_t>& wanted) const {
  std::lock_guard lock(netns_mu_);
  std::map<std::uint32_t, std::string> out;
  std::vector<std::uint32_t> missing;
  for (auto ino : wanted) {
    auto it = netns_cache_.find(ino);
    // A cached /proc/PID path goes stale when the process exits (or the pid is reused elsewhere).
    if (it != netns_cache_.end() && inode_of(it->second) == ino) {
      out.emplace(ino, it->second);
    } else {
      missing.push_back(ino);
    }
  }
  // A namespace first seen now is looked for at once. One nobody could open at the last look (its
  // last process exited while its sockets drain) is looked for again only every few seconds, so it
  // does not cost a walk of /proc at every scrape.
  const auto now = std::chrono::steady_clock::now();
  bool rescan = false;
  for (auto ino : missing) {
    auto it = unreachable_.find(ino);
    rescan |= it == unreachable_.end() || now - it->second >= kNetnsRescanInterval;
  }
  if (rescan) {
    netns_cache_ = scan_netns();
    for (auto ino : missing) {
      if (auto it = netns_cache_.find(ino); it != netns_cache_.end()) {
        out.emplace(ino, it->second);
        unreachable_.erase(ino);
      } else {
        unreachable_[ino] = now;
      }
    }
  }
  std::erase_if(unreachable_, [&](const auto& u) { return !wanted.contains(u.first); });
  return out;
}

Status Tcp::fold_open_connections(const std::set<std::uint32_t>& netns) const {
  if (!iter_link_) return {};
  return walk_namespaces(iter_link_, netns);
}

Status Tcp::walk_namespaces(const bpf::Link& link, const std::set<std::uint32_t>& netns) const {
  if (!link || netns.empty()) return {};
  const auto t0 = std::chrono::steady_clock::now();
  auto paths = netns_paths(netns);
  const auto t1 = std::chrono::steady_clock::now();
  // Sockets of a namespace no process holds any more are folded when they close: not an error.
  std::string problems;
  // The iterator sees the network namespace of the thread that creates it. A throwaway thread moves
  // between namespaces, so no thread that serves HTTP ever changes its own.
  auto walk = [&] {
    // The namespace the thread is in needs no setns (which takes CAP_SYS_ADMIN).
    std::uint32_t here = inode_of("/proc/thread-self/ns/net");
    for (const auto& [ino, path] : paths) {
      Status st;
      if (ino == here) {
        st = run_iterator(link);
      } else if (int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC); fd < 0) {
        if (errno == ENOENT || errno == ESRCH) continue;  // its process exited since the lookup
        st = errno_error("open", path);
      } else {
        bpf::UniqueFd ns(fd);
        if (::setns(ns.get(), CLONE_NEWNET) != 0) {
          st = errno_error("setns", path);
        } else {
          here = ino;
          st = run_iterator(link);
        }
      }
      if (!st)
        problems +=
            (problems.empty() ? "" : "; ") + ("net:[" + std::to_string(ino) + "]: " + st.error().message());
    }
  };
  try {
    std::thread worker(walk);
    worker.join();
  } catch (const std::system_error& e) {  // no thread to be had: say so, this scrape goes on without
    return Error{std::string("cannot start the namespace walker thread: ") + e.what(), "tcp_iter",
                 e.code().value()};
  }
  log::debug(
      "tcp iterator fold",
      {{"netns", std::to_string(netns.size())},
       {"unreachable", std::to_string(netns.size() - paths.size())},
       {"resolve_us", std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(t1 - t0).count())},
       {"walk_us", std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(
                                      std::chrono::steady_clock::now() - t1)
                                      .count())}});
  if (!problems.empty()) return Error{"TCP iterator skipped network namespaces: " + problems, "tcp_iter", 0};
  return {};
}

void Tcp::adopt_existing_connections() {
  std::set<std::uint32_t> all;
  {
    std::lock_guard lock(netns_mu_);
    netns_cache_ = scan_netns();
    for (const auto& [ino, path] : netns_cache_) all.insert(ino);
  }
  const bpf::Link& link = open_ == OpenConnections::kSkStorage ? adopt_link_ : iter_link_;
  if (!link) return;
  auto st = walk_namespaces(link, all);
  // Socket storage needs the per-namespace walk at start-up only.
  adopt_link_.reset();
  if (!st) {
    log::warn("some connections open before start-up are not tracked",
              {{"program", "tcp"}, {"error", st.error().message()}});
  }
  log::info("adopted connections open before start-up",
            {{"program", "tcp"}, {"netns", std::to_string(all.size())}});
}

Result<std::size_t> Tcp::walk_open_sockets(const std::function<void(const tcp_open_record&)>& visit) const {
  if (!sk_iter_link_) return std::size_t{0};
  const auto t0 = std::chrono::steady_clock::now();
  int fd = bpf_iter_create(bpf_link__fd(sk_iter_link_.get()));
  if (fd < 0) return errno_error("BPF_ITER_CREATE", "tcp_sk_iter");
  bpf::UniqueFd iter(fd);
  // Records are fixed-size, but a read() may end inside one: keep the tail for the next read.
  std::vector<unsigned char> buf(64 * 1024);
  std::size_t have = 0;
  std::size_t visited = 0;
  for (;;) {
    ssize_t n = ::read(iter.get(), buf.data() + have, buf.size() - have);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) return errno_error("read BPF iterator", "tcp_sk_iter");
    if (n == 0) break;
    have += static_cast<std::size_t>(n);
    std::size_t off = 0;
    for (; off + sizeof(tcp_open_record) <= have; off += sizeof(tcp_open_record)) {
      tcp_open_record r;
      std::memcpy(&r, buf.data() + off, sizeof r);
      visit(r);
      ++visited;
    }
    std::memmove(buf.data(), buf.data() + off, have - off);
    have -= off;
  }
  log::debug("tcp iterator fold",
             {{"open_connections", "sk_storage"},
              {"sockets", std::to_string(visited)},
              {"walk_us", std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(
                                             std::chrono::steady_clock::now() - t0)
                                             .count())}});
  return visited;
}

int Tcp::conns_fd() const { return skel_ ? bpf_map__fd(skel_->maps.tcp_conns) : -1; }
int Tcp::stats_fd() const { return skel_ ? bpf_map__fd(skel_->maps.tcp_stats) : -1; }
int Tcp::remote_stats_fd() const {
  return skel_ && remote_ != nullptr ? bpf_map__fd(skel_->maps.tcp_remote_stats) : -1;
}

void Tcp::assign(const metadata::Address& addr, std::uint32_t id) {
  if (!skel_) return;
  if (bpf_map_update_elem(bpf_map__fd(skel_->maps.tcp_remote_addrs), addr.data(), &id, BPF_ANY) != 0) {
    log::warn("remote address not given to the kernel",
              {{"program", "tcp"}, {"error", errno_error("update", "map tcp_remote_addrs").message()}});
  }
}

void Tcp::unassign(const metadata::Address& addr) {
  if (skel_) bpf_map_delete_elem(bpf_map__fd(skel_->maps.tcp_remote_addrs), addr.data());
}

std::vector<MapRef> Tcp::maps() const {
  if (!skel_) return {};
  // With socket storage the records are in tcp_sk, bounded by max_connections in the programs; the
  // collector counts them (a storage map cannot be walked from userspace). Same name either way.
  const bool sk = open_ == OpenConnections::kSkStorage;
  std::vector<MapRef> out = {
      MapRef{"tcp_conns", bpf_map__fd(sk ? skel_->maps.tcp_sk : skel_->maps.tcp_conns),
             sk ? cfg_.max_connections : bpf_map__max_entries(skel_->maps.tcp_conns),
             static_cast<std::uint32_t>(sk ? sizeof(int) : sizeof(tcp_conn_key)), TCP_MAP_CONNS, -1},
      MapRef{"tcp_stats", bpf_map__fd(skel_->maps.tcp_stats), bpf_map__max_entries(skel_->maps.tcp_stats),
             static_cast<std::uint32_t>(sizeof(tcp_stats_key)), TCP_MAP_STATS,
             static_cast<int>(offsetof(tcp_stats_key, cgroup_id))},
  };
  if (remote_ != nullptr) {
    out.push_back(MapRef{"tcp_remote_stats", bpf_map__fd(skel_->maps.tcp_remote_stats),
                         bpf_map__max_entries(skel_->maps.tcp_remote_stats),
                         static_cast<std::uint32_t>(sizeof(tcp_remote_key)), TCP_MAP_REMOTE,
                         static_cast<int>(offsetof(tcp_remote_key, cgroup_id))});
    out.push_back(MapRef{"tcp_remote_addrs", bpf_map__fd(skel_->maps.tcp_remote_addrs),
                         bpf_map__max_entries(skel_->maps.tcp_remote_addrs),
                         static_cast<std::uint32_t>(sizeof(tcp_remote_addr)), -1, -1});
  }
  return out;
}

std::vector<ProgRef> Tcp::progs() const {
  if (!skel_ || !state_link_) return {};
  std::vector<ProgRef> out;
  auto& p = skel_->progs;
  auto loaded = [](bpf_program* prog) { return bpf_program__fd(prog) >= 0; };
  for (bpf_program* prog : {p.tcp_state_tp_btf, p.tcp_state_tp_btf_sk, p.tcp_state_fentry,
                            p.tcp_state_fentry_sk, p.tcp_state_tracepoint, p.tcp_state_kprobe}) {
    if (loaded(prog)) out.push_back(ProgRef{"tcp_state", bpf_program__fd(prog)});
  }
  for (bpf_program* prog :
       {p.tcp_retransmit_tp_btf, p.tcp_retransmit_tp_btf_sk, p.tcp_retransmit_tracepoint}) {
    if (loaded(prog)) out.push_back(ProgRef{"tcp_retransmit", bpf_program__fd(prog)});
  }
  for (bpf_program* prog : {p.tcp_synack_tp_btf, p.tcp_synack_tracepoint}) {
    if (loaded(prog)) out.push_back(ProgRef{"tcp_synack", bpf_program__fd(prog)});
  }
  // The scrape-time iterator, whichever it is.
  if (iter_link_) out.push_back(ProgRef{"tcp_iter", bpf_program__fd(p.tcp_iter)});
  if (sk_iter_link_) out.push_back(ProgRef{"tcp_iter", bpf_program__fd(p.tcp_sk_iter)});
  return out;
}

int Tcp::map_errors_fd() const { return skel_ ? bpf_map__fd(skel_->maps.map_errors) : -1; }
std::uint32_t Tcp::map_errors_entries() const { return TCP_MAP_NR; }

}  // namespace podsight::programs
