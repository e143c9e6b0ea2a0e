// xdp program family: one counting XDP program attached through a bpf_link to every selected interface,
// following interfaces as they appear, are renamed and go (rtnetlink watch on a thread of its own).
#pragma once

#include "bpf/handles.hpp"
#include "net/interfaces.hpp"
#include "net/netlink.hpp"
#include "programs/program.hpp"

#include <linux/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

struct xdp_bpf;

namespace podsight::programs {

// One selected interface, as the log, /readyz and podsight_xdp_attached see it.
struct XdpInterface {
  enum class State {
    kAttached,   // our program runs on it
    kForeign,    // another XDP program is attached: left alone
    kFailed,     // attaching failed in every mode allowed
    kOverLimit,  // programs.xdp.max_interfaces interfaces are attached already
  };
  std::uint32_t ifindex = 0;
  std::string name;
  State state = State::kFailed;
  // kAttached: "native" or "generic", as the kernel reports it after attaching. kForeign: the other
  // program's mode ("native", "generic", "offload"). Otherwise "none".
  std::string mode = "none";
  std::string error;  // why it is not attached; empty when it is
};

class Xdp final : public Family {
 public:
  explicit Xdp(const config::XdpConfig& cfg);
  ~Xdp() override;
  Xdp(const Xdp&) = delete;
  Xdp& operator=(const Xdp&) = delete;

  [[nodiscard]] std::string_view name() const override { return "xdp"; }
  [[nodiscard]] bool enabled() const override { return cfg_.enabled; }
  [[nodiscard]] std::vector<MapRef> maps() const override;
  [[nodiscard]] std::vector<ProgRef> progs() const override;
  [[nodiscard]] int map_errors_fd() const override;
  [[nodiscard]] std::uint32_t map_errors_entries() const override;

  // fd of the (ifindex, family, protocol) -> per-CPU {packets, bytes} map, -1 when not loaded.
  [[nodiscard]] int counts_fd() const;
  // The selected interfaces now, by ifindex. Safe from any thread.
  [[nodiscard]] std::vector<XdpInterface> interfaces() const;

 protected:
  Result<std::string> do_start(Context& ctx) override;
  void do_stop() override;

 private:
  struct Attachment {
    XdpInterface info;
    bpf::UniqueFd link;  // closing it detaches the program
  };

  Status try_start();
  // Reconciles with a full list of links: attaches new ones, releases vanished and renamed ones.
  Status resync();
  // A link exists (new, changed, or listed): attach it if selected and not known under this name.
  void apply(const net::Link& link);
  void remove(std::uint32_t ifindex);
  Attachment attach(const net::Link& link);
  void delete_counters(std::uint32_t ifindex);
  // Deletes entries of interfaces no longer attached: a run that was in flight while we detached can
  // re-create one after delete_counters().
  void sweep_counters();
  void report();
  void watch();
  [[nodiscard]] std::size_t attached_count() const;

  config::XdpConfig cfg_;
  net::InterfaceSelector selector_;
  bpf::Skeleton<xdp_bpf> skel_;
  std::uint32_t prog_id_ = 0;
  net::LinkMonitor monitor_;
  bpf::UniqueFd wake_;  // eventfd that tells the watch thread to stop
  std::thread thread_;
  using Clock = std::chrono::steady_clock;
  bool sweep_pending_ = false;  // watch thread only, like sweep_due_
  Clock::time_point sweep_due_{};

  // Written only by the thread that owns the family's changes (do_start, then the watch thread), under
  // ifaces_mu_; read under ifaces_mu_ by scrapes.
  mutable std::mutex ifaces_mu_;
  std::map<std::uint32_t, Attachment> ifaces_;
};

}  // namespace podsight::programs
