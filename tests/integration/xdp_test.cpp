// xdp family against the real kernel: exactly known traffic from a namespace over a veth gives exactly
// that many packets and bytes per (interface, family, protocol) in native and generic mode; interfaces
// that appear are attached and those that go are released; another program's XDP is never replaced;
// SIGKILL leaves no XDP behind; the parser classifies crafted frames exactly and passes them unchanged.
#include "integration/support/harness.hpp"
#include "integration/support/net.hpp"

// clang-format off
#include <linux/types.h>
#include "xdp.h"
#include "xdp.skel.h"
// clang-format on

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <thread>

namespace podsight::testing {
namespace {

using namespace std::chrono_literals;

// A config that enables only the xdp family, on exactly the interfaces and patterns given.
std::string xdp_config(const std::string& mode, const std::vector<std::string>& interfaces,
                       const std::vector<std::string>& include = {}, int max_interfaces = 64) {
  nlohmann::json c;
  c["programs"]["exec"]["enabled"] = false;
  auto& x = c["programs"]["xdp"];
  x["enabled"] = true;
  x["mode"] = mode;
  x["interfaces"] = interfaces;
  x["include"] = include;
  x["max_interfaces"] = max_interfaces;
  return c.dump();
}

double packets(const Scrape& s, const std::string& ifname, const std::string& family,
               const std::string& proto) {
  return s
      .value("podsight_xdp_packets_total", {{"interface", ifname}, {"family", family}, {"protocol", proto}})
      .value_or(0);
}
double bytes(const Scrape& s, const std::string& ifname, const std::string& family,
             const std::string& proto) {
  return s.value("podsight_xdp_bytes_total", {{"interface", ifname}, {"family", family}, {"protocol", proto}})
      .value_or(0);
}

// Scrapes until `done` holds (a bounded wait for something asynchronous, e.g. a netlink event), and
// returns the last scrape either way: the caller's assertions then say what was missing.
Scrape scrape_until(AgentProcess& agent, const std::function<bool(const Scrape&)>& done,
                    std::chrono::milliseconds timeout = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    Scrape s = agent.scrape();
    if (done(s) || std::chrono::steady_clock::now() > deadline) return s;
    std::this_thread::sleep_for(50ms);
  }
}

// XDP program ids on an interface, per mode, as the kernel reports them.
bpf_xdp_query_opts xdp_query(int ifindex) {
  LIBBPF_OPTS(bpf_xdp_query_opts, q);
  EXPECT_EQ(bpf_xdp_query(ifindex, 0, &q), 0) << "ifindex " << ifindex;
  return q;
}

std::string ip_details(const std::string& ifname) {
  return run_command({"ip", "-d", "link", "show", "dev", ifname}).out;
}

int ping(const NetNs& ns, const std::string& addr, int count) {
  return run_command({"ip", "netns", "exec", ns.name(), "ping", "-q", "-n", "-c", std::to_string(count), "-i",
                      "0.01", "-s", "56", "-W", "2", addr})
      .exit_code;
}

// Someone else's XDP program: a minimal XDP_PASS loaded and attached through netlink, the way other
// tools do it. Detached and unloaded on destruction.
class ForeignXdp {
 public:
  ForeignXdp(int ifindex, __u32 flags) : ifindex_(ifindex), flags_(flags) {
    const bpf_insn prog[] = {
        {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, XDP_PASS},
        {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
    };
    fd_ = bpf_prog_load(BPF_PROG_TYPE_XDP, "psx_foreign", "GPL", prog, 2, nullptr);
    if (fd_ < 0) throw std::runtime_error("bpf_prog_load: " + std::string(std::strerror(errno)));
    if (int err = bpf_xdp_attach(ifindex_, fd_, flags_, nullptr); err != 0) {
      ::close(fd_);
      throw std::runtime_error("bpf_xdp_attach: " + std::string(std::strerror(-err)));
    }
    bpf_prog_info info{};
    __u32 len = sizeof info;
    bpf_obj_get_info_by_fd(fd_, &info, &len);
    id_ = info.id;
  }
  ~ForeignXdp() {
    LIBBPF_OPTS(bpf_xdp_attach_opts, opts, .old_prog_fd = fd_);
    bpf_xdp_detach(ifindex_, flags_, &opts);  // fails harmlessly if the interface is gone
    ::close(fd_);
  }
  ForeignXdp(const ForeignXdp&) = delete;
  ForeignXdp& operator=(const ForeignXdp&) = delete;
  [[nodiscard]] __u32 id() const { return id_; }

 private:
  int ifindex_;
  __u32 flags_;
  int fd_ = -1;
  __u32 id_ = 0;
};

// A veth pair made while the agent runs, under a name chosen by the test; the peer goes to `ns` with
// an IPv4 /30 (no static neighbours: ARP is counted as family "other", UDP stays exact).
class LateVeth {
 public:
  LateVeth(const NetNs& ns, std::string name, const std::string& net) : name_(std::move(name)) {
    peer_ = "psq" + random_suffix(8);
    host_v4_ = net + "1";
    peer_v4_ = net + "2";
    for (const auto& argv : std::vector<std::vector<std::string>>{
             {"ip", "link", "add", name_, "type", "veth", "peer", "name", peer_},
             {"ip", "link", "set", peer_, "netns", ns.name()},
             {"ip", "addr", "add", host_v4_ + "/30", "dev", name_},
             {"ip", "-n", ns.name(), "addr", "add", peer_v4_ + "/30", "dev", peer_},
             {"ip", "link", "set", name_, "up"},
             {"ip", "-n", ns.name(), "link", "set", peer_, "up"}}) {
      auto r = run_command(argv);
      if (r.exit_code != 0) throw std::runtime_error(argv[1] + " " + argv[2] + " failed: " + r.out);
    }
  }
  ~LateVeth() { run_command({"ip", "link", "del", name_}); }
  LateVeth(const LateVeth&) = delete;
  LateVeth& operator=(const LateVeth&) = delete;
  [[nodiscard]] const std::string& name() const { return name_; }
  [[nodiscard]] const std::string& host_v4() const { return host_v4_; }
  [[nodiscard]] int ifindex() const { return static_cast<int>(::if_nametoindex(name_.c_str())); }
  void rename(const std::string& to) {
    for (const auto& argv : std::vector<std::vector<std::string>>{{"ip", "link", "set", name_, "down"},
                                                                  {"ip", "link", "set", name_, "name", to},
                                                                  {"ip", "link", "set", to, "up"}}) {
      ASSERT_EQ(run_command(argv).exit_code, 0);
    }
    name_ = to;
  }
  void remove() { ASSERT_EQ(run_command({"ip", "link", "del", name_}).exit_code, 0); }

 private:
  std::string name_;
  std::string peer_;
  std::string host_v4_;
  std::string peer_v4_;
};

// "10.255.N." for a /30 at .0: the Veth harness draws from 10.192.0.0/10 at random, so do we.
std::string random_net() {
  const auto r = random_suffix(2);
  return "10.255." + std::to_string(((r[0] - 'a') * 26 + (r[1] - 'a')) % 256) + ".";
}

class XdpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    PODSIGHT_REQUIRE_PRIVILEGES();
    ensure_kernel_mounts();
  }
};

class XdpMode : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    PODSIGHT_REQUIRE_PRIVILEGES();
    ensure_kernel_mounts();
  }
};

// N datagrams of known size, pings in both families: each lands in its own series, exactly, and
// nothing else arrives on the quiet veth.
TEST_P(XdpMode, CountsExactlyPerFamilyAndProtocol) {
  const std::string mode = GetParam();
  const std::string expected_mode = mode == "auto" ? "native" : mode;  // veth has native XDP
  NetNs ns;
  Veth veth(ns);
  const std::string& dev = veth.host_if();
  AgentProcess agent(xdp_config(mode, {dev}));
  ASSERT_TRUE(agent.wait_serving()) << agent.logs();
  auto ready = agent.get("/readyz");
  EXPECT_EQ(ready.status, 200) << ready.body;
  EXPECT_NE(ready.body.find(R"("error":"","name":"xdp","state":"attached","variant":"link")"),
            std::string::npos)
      << ready.body;

  const Scrape before = agent.scrape();
  EXPECT_EQ(before.value("podsight_xdp_attached", {{"interface", dev}, {"mode", expected_mode}}), 1);
  const auto q = xdp_query(veth.host_ifindex());
  EXPECT_NE(expected_mode == "native" ? q.drv_prog_id : q.skb_prog_id, 0u) << "kernel disagrees on the mode";
  const double total_before = before.sum("podsight_xdp_packets_total", {{"interface", dev}});

  constexpr int kUdp4 = 40;
  constexpr std::size_t kPayload4 = 100;
  constexpr int kUdp6 = 25;
  constexpr std::size_t kPayload6 = 333;
  constexpr int kPing4 = 7;
  constexpr int kPing6 = 5;
  const Placement in_ns{nullptr, &ns};
  ASSERT_EQ(run_in(in_ns, [&] { return send_udp(veth.host_v4(), 9, kUdp4, kPayload4); }), 0);
  ASSERT_EQ(run_in(in_ns, [&] { return send_udp(veth.host_v6(), 9, kUdp6, kPayload6); }), 0);
  ASSERT_EQ(ping(ns, veth.host_v4(), kPing4), 0);
  ASSERT_EQ(ping(ns, veth.host_v6(), kPing6), 0);

  const Scrape after = agent.scrape();
  auto delta_packets = [&](const char* fam, const char* proto) {
    return packets(after, dev, fam, proto) - packets(before, dev, fam, proto);
  };
  auto delta_bytes = [&](const char* fam, const char* proto) {
    return bytes(after, dev, fam, proto) - bytes(before, dev, fam, proto);
  };
  EXPECT_EQ(delta_packets("ipv4", "udp"), kUdp4);
  EXPECT_EQ(delta_bytes("ipv4", "udp"), kUdp4 * udp_frame_bytes_v4(kPayload4));
  EXPECT_EQ(delta_packets("ipv6", "udp"), kUdp6);
  EXPECT_EQ(delta_bytes("ipv6", "udp"), kUdp6 * udp_frame_bytes_v6(kPayload6));
  // Echo requests of 56 bytes of data: 8 bytes ICMP header, 20 (IPv4) or 40 (IPv6), 14 Ethernet.
  EXPECT_EQ(delta_packets("ipv4", "icmp"), kPing4);
  EXPECT_EQ(delta_bytes("ipv4", "icmp"), kPing4 * (14 + 20 + 8 + 56));
  EXPECT_EQ(delta_packets("ipv6", "icmp"), kPing6);
  EXPECT_EQ(delta_bytes("ipv6", "icmp"), kPing6 * (14 + 40 + 8 + 56));
  EXPECT_EQ(after.sum("podsight_xdp_packets_total", {{"interface", dev}}) - total_before,
            kUdp4 + kUdp6 + kPing4 + kPing6)
      << after.text();
  EXPECT_EQ(promtool_problems(after.text()), "");
  EXPECT_EQ(undocumented_metrics(after.text()), std::vector<std::string>{});
  EXPECT_EQ(after.value("podsight_program_attached", {{"program", "xdp"}, {"variant", "link"}}), 1);
  EXPECT_EQ(after.value("podsight_map_update_errors_total", {{"map", "xdp_counts"}}), 0);

  // SIGTERM: the watch thread stops and every link goes, within the shutdown budget.
  const BpfObjects held = bpf_objects_held_by(agent.pid());
  EXPECT_FALSE(held.links.empty()) << held.describe();
  std::chrono::milliseconds took{};
  EXPECT_EQ(agent.stop(SIGTERM, 5s, &took), 0) << agent.logs();
  EXPECT_LT(took.count(), 2000);
  EXPECT_TRUE(eventually_released(held)) << bpf_objects_alive(held).describe();
  EXPECT_EQ(ip_details(dev).find("prog/xdp"), std::string::npos) << ip_details(dev);
}

INSTANTIATE_TEST_SUITE_P(Modes, XdpMode, ::testing::Values("native", "generic", "auto"));

// A named interface that does not exist degrades the family until it appears; interfaces matching a
// pattern are attached when they appear; renamed and deleted ones are released with their series.
TEST_F(XdpTest, FollowsInterfacesThatAppearAreRenamedAndGo) {
  const std::string tag = random_suffix(7);
  const std::string named = "psxn" + tag;    // listed in programs.xdp.interfaces
  const std::string matched = "psxm" + tag;  // matched by programs.xdp.include
  NetNs ns;
  AgentProcess agent(xdp_config("auto", {named}, {"psxm" + tag + "*"}));
  ASSERT_TRUE(agent.wait_serving()) << agent.logs();
  auto ready = agent.get("/readyz");
  EXPECT_EQ(ready.status, 200) << ready.body;
  EXPECT_NE(ready.body.find("\"status\":\"degraded\""), std::string::npos) << ready.body;
  EXPECT_NE(ready.body.find("interface " + named + " (programs.xdp.interfaces) does not exist"),
            std::string::npos)
      << ready.body;

  {
    LateVeth late(ns, named, random_net());
    LateVeth other(ns, matched, random_net());
    auto s = scrape_until(agent, [&](const Scrape& x) {
      return x.value("podsight_xdp_attached", {{"interface", named}, {"mode", "native"}}) == 1 &&
             x.value("podsight_xdp_attached", {{"interface", matched}, {"mode", "native"}}) == 1;
    });
    EXPECT_EQ(s.value("podsight_xdp_attached", {{"interface", named}, {"mode", "native"}}), 1) << s.text();
    EXPECT_EQ(s.value("podsight_xdp_attached", {{"interface", matched}, {"mode", "native"}}), 1) << s.text();
    EXPECT_NE(ip_details(named).find("prog/xdp"), std::string::npos);
    ready = agent.get("/readyz");
    EXPECT_NE(ready.body.find("\"status\":\"ready\""), std::string::npos) << ready.body;

    constexpr int kSent = 23;
    const double base = packets(s, matched, "ipv4", "udp");
    ASSERT_EQ(run_in({nullptr, &ns}, [&] { return send_udp(other.host_v4(), 9, kSent, 64); }), 0);
    s = agent.scrape();
    EXPECT_EQ(packets(s, matched, "ipv4", "udp") - base, kSent);
    EXPECT_EQ(bytes(s, matched, "ipv4", "udp"), kSent * udp_frame_bytes_v4(64));

    // Renamed to a name nothing selects: released, series gone, no XDP on it any more.
    const std::string renamed = "psxr" + tag;
    other.rename(renamed);
    s = scrape_until(agent, [&](const Scrape& x) {
      return !x.value("podsight_xdp_attached", {{"interface", matched}, {"mode", "native"}}).has_value();
    });
    EXPECT_FALSE(s.value("podsight_xdp_attached", {{"interface", matched}, {"mode", "native"}}).has_value());
    EXPECT_EQ(s.sum("podsight_xdp_packets_total", {{"interface", matched}}), 0);
    EXPECT_EQ(s.sum("podsight_xdp_packets_total", {{"interface", renamed}}), 0);
    EXPECT_EQ(ip_details(renamed).find("prog/xdp"), std::string::npos) << ip_details(renamed);
    EXPECT_EQ(xdp_query(other.ifindex()).prog_id, 0u);

    // Deleted: released, the family degraded again because a listed interface is missing.
    late.remove();
    s = scrape_until(agent, [&](const Scrape& x) {
      return !x.value("podsight_xdp_attached", {{"interface", named}, {"mode", "native"}}).has_value();
    });
    EXPECT_FALSE(s.value("podsight_xdp_attached", {{"interface", named}, {"mode", "native"}}).has_value());
    EXPECT_EQ(s.sum("podsight_xdp_packets_total", {{"interface", named}}), 0);
    ready = agent.get("/readyz");
    EXPECT_NE(ready.body.find("interface " + named + " (programs.xdp.interfaces) does not exist"),
              std::string::npos)
        << ready.body;
    // Their map entries are deleted too, not just hidden.
    s = scrape_until(agent, [&](const Scrape& x) {
      return x.value("podsight_map_entries", {{"map", "xdp_counts"}}) == 0;
    });
    EXPECT_EQ(s.value("podsight_map_entries", {{"map", "xdp_counts"}}), 0) << s.text();
    EXPECT_EQ(promtool_problems(s.text()), "");
  }
  const std::string logs = agent.logs();
  EXPECT_NE(logs.find("xdp released"), std::string::npos) << logs;
  EXPECT_NE(logs.find("program family recovered"), std::string::npos) << logs;
}

// A listed interface that does not exist degrades xdp alone: /readyz says why, exec keeps counting.
TEST_F(XdpTest, MissingInterfaceDegradesOnlyThisFamily) {
  const std::string missing = "psxz" + random_suffix(8);
  nlohmann::json c = nlohmann::json::parse(xdp_config("auto", {missing}));
  c["programs"]["exec"]["enabled"] = true;
  AgentProcess agent(c.dump());
  ASSERT_TRUE(agent.wait_serving()) << agent.logs();
  auto ready = agent.get("/readyz");
  EXPECT_EQ(ready.status, 200) << ready.body;
  auto doc = nlohmann::json::parse(ready.body);
  EXPECT_EQ(doc["status"], "degraded");
  for (const auto& f : doc["families"]) {
    if (f["name"] == "exec") EXPECT_EQ(f["state"], "attached") << ready.body;
    if (f["name"] == "xdp") {
      EXPECT_EQ(f["state"], "degraded") << ready.body;
      EXPECT_EQ(f["error"], "interface " + missing + " (programs.xdp.interfaces) does not exist");
    }
  }
  const std::string dir = make_temp_dir("podsight-xdp");
  const std::string comm = "psx" + random_suffix(9);
  const std::string binary = make_named_true(dir, comm);
  TestCgroup cg;
  for (int i = 0; i < 3; ++i) ASSERT_EQ(cg.run({binary}), 0);
  auto s = agent.scrape();
  EXPECT_EQ(s.value("podsight_process_execs_total", {{"cgroup", cg.relative()}, {"comm", comm}}), 3);
  EXPECT_EQ(s.value("podsight_program_state", {{"program", "xdp"}, {"state", "degraded"}}), 1);
  EXPECT_EQ(s.count("podsight_xdp_attached"), 0u);
  std::filesystem::remove_all(dir);
}

// Another tool's XDP program is kept (same id before, during and after the agent), reported in the log,
// /readyz and podsight_xdp_attached with its mode, and the other interface still counts.
class XdpForeign : public ::testing::TestWithParam<std::pair<__u32, std::string>> {
 protected:
  void SetUp() override {
    PODSIGHT_REQUIRE_PRIVILEGES();
    ensure_kernel_mounts();
  }
};

TEST_P(XdpForeign, IsLeftAloneAndReported) {
  const auto [flags, foreign_mode] = GetParam();
  NetNs ns;
  Veth taken(ns);
  Veth open_if(ns);
  ForeignXdp foreign(taken.host_ifindex(), flags);
  AgentProcess agent(xdp_config("auto", {taken.host_if(), open_if.host_if()}));
  ASSERT_TRUE(agent.wait_serving()) << agent.logs();

  auto ready = agent.get("/readyz");
  EXPECT_EQ(ready.status, 200) << ready.body;
  auto doc = nlohmann::json::parse(ready.body);
  EXPECT_EQ(doc["status"], "degraded");
  bool found = false;
  for (const auto& f : doc["families"]) {
    if (f["name"] != "xdp") continue;
    found = true;
    EXPECT_EQ(f["state"], "degraded");
    const std::string err = f["error"];
    EXPECT_NE(err.find("interface " + taken.host_if() + ": another XDP program (id " +
                       std::to_string(foreign.id()) + ", " + foreign_mode + " mode) is attached; left alone"),
              std::string::npos)
        << err;
    EXPECT_EQ(err.find(open_if.host_if()), std::string::npos) << err;
  }
  EXPECT_TRUE(found) << ready.body;

  auto q = xdp_query(taken.host_ifindex());
  EXPECT_EQ(foreign_mode == "native" ? q.drv_prog_id : q.skb_prog_id, foreign.id());
  EXPECT_EQ(q.prog_id, foreign.id());

  constexpr int kSent = 17;
  ASSERT_EQ(run_in({nullptr, &ns}, [&] { return send_udp(open_if.host_v4(), 9, kSent, 10); }), 0);
  ASSERT_EQ(run_in({nullptr, &ns}, [&] { return send_udp(taken.host_v4(), 9, kSent, 10); }), 0);
  auto s = agent.scrape();
  EXPECT_EQ(s.value("podsight_xdp_attached", {{"interface", taken.host_if()}, {"mode", foreign_mode}}), 0);
  EXPECT_EQ(s.value("podsight_xdp_attached", {{"interface", open_if.host_if()}, {"mode", "native"}}), 1);
  EXPECT_EQ(packets(s, open_if.host_if(), "ipv4", "udp"), kSent);
  EXPECT_EQ(s.sum("podsight_xdp_packets_total", {{"interface", taken.host_if()}}), 0);
  EXPECT_EQ(s.value("podsight_program_state", {{"program", "xdp"}, {"state", "degraded"}}), 1);
  EXPECT_EQ(promtool_problems(s.text()), "");
  EXPECT_NE(agent.logs().find("xdp interface left alone"), std::string::npos) << agent.logs();

  EXPECT_EQ(agent.stop(SIGTERM, 5s), 0);
  EXPECT_EQ(xdp_query(taken.host_ifindex()).prog_id, foreign.id())
      << "the agent took the foreign program along";
}

INSTANTIATE_TEST_SUITE_P(Modes, XdpForeign,
                         ::testing::Values(std::make_pair(__u32{XDP_FLAGS_DRV_MODE}, std::string("native")),
                                           std::make_pair(__u32{XDP_FLAGS_SKB_MODE}, std::string("generic"))),
                         [](const auto& info) { return info.param.second; });

TEST_F(XdpTest, SigkillLeavesNoXdpBehind) {
  NetNs ns;
  Veth a(ns);
  Veth b(ns);
  AgentProcess agent(xdp_config("auto", {a.host_if()}, {}, 64));
  ASSERT_TRUE(agent.wait_serving()) << agent.logs();
  {
    // A second agent cannot take the interfaces over either: it reports them as another program's.
    AgentProcess second(xdp_config("generic", {a.host_if(), b.host_if()}));
    ASSERT_TRUE(second.wait_serving()) << second.logs();
    auto s = second.scrape();
    EXPECT_EQ(s.value("podsight_xdp_attached", {{"interface", a.host_if()}, {"mode", "native"}}), 0)
        << s.text();
    EXPECT_EQ(s.value("podsight_xdp_attached", {{"interface", b.host_if()}, {"mode", "generic"}}), 1)
        << s.text();
    const BpfObjects held = bpf_objects_held_by(second.pid());
    EXPECT_EQ(second.stop(SIGKILL, 5s), 128 + SIGKILL);
    EXPECT_TRUE(eventually_released(held)) << bpf_objects_alive(held).describe();
    EXPECT_EQ(xdp_query(b.host_ifindex()).prog_id, 0u) << ip_details(b.host_if());
  }
  const __u32 ours = xdp_query(a.host_ifindex()).drv_prog_id;
  ASSERT_NE(ours, 0u);
  const BpfObjects held = bpf_objects_held_by(agent.pid());
  EXPECT_EQ(held.progs.count(ours), 1u) << held.describe();
  EXPECT_EQ(agent.stop(SIGKILL, 5s), 128 + SIGKILL);
  EXPECT_TRUE(eventually_released(held)) << bpf_objects_alive(held).describe();
  EXPECT_EQ(xdp_query(a.host_ifindex()).prog_id, 0u);
  EXPECT_EQ(ip_details(a.host_if()).find("prog/xdp"), std::string::npos) << ip_details(a.host_if());
}

TEST_F(XdpTest, MaxInterfacesBoundsAttachmentsAndSaysSo) {
  NetNs ns;
  Veth a(ns);
  Veth b(ns);
  AgentProcess agent(xdp_config("auto", {a.host_if(), b.host_if()}, {}, 1));
  ASSERT_TRUE(agent.wait_serving()) << agent.logs();
  auto s = agent.scrape();
  // Which one wins depends on ifindex order; exactly one is attached and the other says why not.
  EXPECT_EQ(s.sum("podsight_xdp_attached", {{"mode", "native"}}), 1) << s.text();
  EXPECT_EQ(s.value("podsight_xdp_attached", {{"mode", "none"}}), 0) << s.text();
  EXPECT_EQ(s.count("podsight_xdp_attached"), 2u) << s.text();
  auto ready = agent.get("/readyz");
  EXPECT_NE(ready.body.find("programs.xdp.max_interfaces (1) interfaces attached already"), std::string::npos)
      << ready.body;
  EXPECT_EQ(s.value("podsight_map_capacity", {{"map", "xdp_counts"}}), 12);
}

// Interface names are bytes the node's admin (or a CNI) chose: quotes, backslashes and bytes that are
// not UTF-8 still give a valid exposition, valid JSON in /readyz and in the log.
TEST_F(XdpTest, HostileInterfaceNamesKeepOutputsValid) {
  const std::string tag = random_suffix(6);
  const std::string hostile = "px" + tag + std::string("\"\\\xff", 3);
  NetNs ns;
  AgentProcess agent(xdp_config("generic", {}, {"px" + tag + "*"}));
  ASSERT_TRUE(agent.wait_serving()) << agent.logs();
  LateVeth late(ns, hostile, random_net());
  auto s = scrape_until(agent, [&](const Scrape& x) { return x.count("podsight_xdp_attached") == 1; });
  EXPECT_EQ(promtool_problems(s.text()), "");
  EXPECT_EQ(s.value("podsight_xdp_attached", {{"interface", "px" + tag + "\"\\\\xFF"}, {"mode", "generic"}}),
            1)
      << s.text();
  auto om = agent.get("/metrics", "application/openmetrics-text;version=1.0.0");
  EXPECT_TRUE(om.body.ends_with("# EOF\n"));
  ASSERT_EQ(run_in({nullptr, &ns}, [&] { return send_udp(late.host_v4(), 9, 3, 1); }), 0);
  EXPECT_EQ(packets(agent.scrape(), "px" + tag + "\"\\\\xFF", "ipv4", "udp"), 3);
  late.remove();
  s = scrape_until(agent, [&](const Scrape& x) { return x.count("podsight_xdp_attached") == 0; });
  EXPECT_EQ(s.count("podsight_xdp_attached"), 0u);
  EXPECT_EQ(agent.stop(SIGTERM, 5s), 0);
  std::istringstream lines(agent.logs());
  std::string line;
  while (std::getline(lines, line)) {
    EXPECT_FALSE(nlohmann::json::parse(line, nullptr, false).is_discarded()) << "not JSON: " << line;
  }
}

// The parser, frame by frame through BPF_PROG_TEST_RUN: VLAN and QinQ tags, IPv6 extension headers,
// truncated and odd frames. Every frame comes back XDP_PASS and byte-for-byte unchanged.
struct Frame {
  std::string what;
  std::vector<unsigned char> bytes;
  __u8 family;
  __u8 protocol;
};

std::vector<unsigned char> eth(std::uint16_t type, std::vector<std::uint16_t> vlans = {}) {
  std::vector<unsigned char> f = {0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2};
  for (auto tpid : vlans) {
    f.push_back(static_cast<unsigned char>(tpid >> 8));
    f.push_back(static_cast<unsigned char>(tpid));
    f.push_back(0x00);
    f.push_back(0x2a);  // VLAN id 42
  }
  f.push_back(static_cast<unsigned char>(type >> 8));
  f.push_back(static_cast<unsigned char>(type));
  return f;
}

void append(std::vector<unsigned char>& f, std::initializer_list<unsigned char> b) { f.insert(f.end(), b); }
void zeros(std::vector<unsigned char>& f, std::size_t n) { f.insert(f.end(), n, 0); }

std::vector<unsigned char> ipv4(std::vector<std::uint16_t> vlans, unsigned char proto, std::size_t payload) {
  auto f = eth(0x0800, std::move(vlans));
  append(f, {0x45, 0, 0, 0, 0, 0, 0, 0, 64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2});
  zeros(f, payload);
  return f;
}

// IPv6 header with `next`, then the raw bytes of `rest` (extension headers and upper layer).
std::vector<unsigned char> ipv6(std::vector<std::uint16_t> vlans, unsigned char next,
                                const std::vector<unsigned char>& rest) {
  auto f = eth(0x86DD, std::move(vlans));
  append(f, {0x60, 0, 0, 0, 0, 0, next, 64});
  zeros(f, 32);  // addresses
  f.insert(f.end(), rest.begin(), rest.end());
  return f;
}

// An extension header of (hdrlen + 1) * 8 bytes followed by `next`.
std::vector<unsigned char> ext(unsigned char next, unsigned char hdrlen) {
  std::vector<unsigned char> h = {next, hdrlen};
  h.resize((hdrlen + 1u) * 8u, 0);
  return h;
}

std::vector<unsigned char> concat(std::initializer_list<std::vector<unsigned char>> parts) {
  std::vector<unsigned char> out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

TEST_F(XdpTest, ClassifiesCraftedFramesExactlyAndPassesThemUnchanged) {
  constexpr std::uint16_t kQ = 0x8100;
  constexpr std::uint16_t kAd = 0x88A8;
  const std::vector<unsigned char> udp(8 + 20, 0);
  const std::vector<unsigned char> tcp(20 + 10, 0);
  const std::vector<unsigned char> icmp6(8 + 4, 0);
  std::vector<Frame> frames = {
      {"ipv4 udp", ipv4({}, 17, 28), XDP_FAM_IPV4, XDP_PROTO_UDP},
      {"ipv4 icmp", ipv4({}, 1, 12), XDP_FAM_IPV4, XDP_PROTO_ICMP},
      {"ipv4 gre", ipv4({}, 47, 12), XDP_FAM_IPV4, XDP_PROTO_OTHER},
      {"802.1Q ipv4 tcp", ipv4({kQ}, 6, 30), XDP_FAM_IPV4, XDP_PROTO_TCP},
      {"QinQ ipv6 udp", ipv6({kAd, kQ}, 17, udp), XDP_FAM_IPV6, XDP_PROTO_UDP},
      {"three tags: not followed", ipv4({kAd, kQ, kQ}, 17, 28), XDP_FAM_OTHER, XDP_PROTO_OTHER},
      {"ipv6 hop-by-hop icmpv6", ipv6({}, 0, concat({ext(58, 0), icmp6})), XDP_FAM_IPV6, XDP_PROTO_ICMP},
      {"ipv6 fragment udp", ipv6({}, 44, concat({ext(17, 0), udp})), XDP_FAM_IPV6, XDP_PROTO_UDP},
      {"ipv6 dstopts routing tcp", ipv6({kQ}, 60, concat({ext(43, 1), ext(6, 2), tcp})), XDP_FAM_IPV6,
       XDP_PROTO_TCP},
      {"ipv6 auth udp", ipv6({}, 51, concat({{17, 1}, std::vector<unsigned char>(10, 0), udp})), XDP_FAM_IPV6,
       XDP_PROTO_UDP},
      {"ipv6 chain longer than followed",
       ipv6(
           {}, 60,
           concat({ext(60, 0), ext(60, 0), ext(60, 0), ext(60, 0), ext(60, 0), ext(60, 0), ext(17, 0), udp})),
       XDP_FAM_IPV6, XDP_PROTO_OTHER},
      {"ipv6 extension header past the end", ipv6({}, 0, {60, 200, 0, 0}), XDP_FAM_IPV6, XDP_PROTO_OTHER},
      {"ipv6 header cut short", concat({eth(0x86DD), std::vector<unsigned char>(30, 0)}), XDP_FAM_IPV6,
       XDP_PROTO_OTHER},
      {"ipv4 header cut short", concat({eth(0x0800), std::vector<unsigned char>(10, 0x45)}), XDP_FAM_IPV4,
       XDP_PROTO_OTHER},
      {"vlan tag cut short", concat({eth(kQ), std::vector<unsigned char>(2, 0)}), XDP_FAM_OTHER,
       XDP_PROTO_OTHER},
      {"arp", concat({eth(0x0806), std::vector<unsigned char>(28, 0)}), XDP_FAM_OTHER, XDP_PROTO_OTHER},
      {"bare ethernet header", eth(0x0800), XDP_FAM_IPV4, XDP_PROTO_OTHER},
  };

  xdp_bpf* raw = xdp_bpf::open_and_load();
  ASSERT_NE(raw, nullptr) << std::strerror(errno);
  std::unique_ptr<xdp_bpf, void (*)(xdp_bpf*)> skel(raw, xdp_bpf::destroy);
  const int prog = bpf_program__fd(skel->progs.xdp_count);
  std::map<std::pair<int, int>, std::pair<std::uint64_t, std::uint64_t>> expected;
  constexpr int kRepeat = 3;
  for (const auto& f : frames) {
    std::vector<unsigned char> out(f.bytes.size() + 256);
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = f.bytes.data(), .data_out = out.data(),
                .data_size_in = static_cast<__u32>(f.bytes.size()),
                .data_size_out = static_cast<__u32>(out.size()), .repeat = kRepeat);
    ASSERT_EQ(bpf_prog_test_run_opts(prog, &opts), 0) << f.what << ": " << std::strerror(errno);
    EXPECT_EQ(opts.retval, static_cast<__u32>(XDP_PASS)) << f.what;
    ASSERT_EQ(opts.data_size_out, f.bytes.size()) << f.what;
    EXPECT_TRUE(std::equal(f.bytes.begin(), f.bytes.end(), out.begin())) << f.what << ": frame changed";
    auto& e = expected[{f.family, f.protocol}];
    e.first += kRepeat;
    e.second += kRepeat * f.bytes.size();
  }

  // Sum every key over CPUs (test runs happen on the loopback device's queue, so one ifindex).
  const int ncpus = libbpf_num_possible_cpus();
  ASSERT_GT(ncpus, 0);
  std::map<std::pair<int, int>, std::pair<std::uint64_t, std::uint64_t>> seen;
  std::set<__u32> ifindexes;
  const int map = bpf_map__fd(skel->maps.xdp_counts);
  xdp_key key{};
  xdp_key next{};
  const xdp_key* prev = nullptr;
  std::vector<xdp_value> values(static_cast<std::size_t>(ncpus));
  while (bpf_map_get_next_key(map, prev, &next) == 0) {
    ASSERT_EQ(bpf_map_lookup_elem(map, &next, values.data()), 0);
    auto& s = seen[{next.family, next.protocol}];
    for (const auto& v : values) {
      s.first += v.packets;
      s.second += v.bytes;
    }
    ifindexes.insert(next.ifindex);
    EXPECT_EQ(next.pad, 0);
    key = next;
    prev = &key;
  }
  EXPECT_EQ(seen, expected);
  EXPECT_EQ(ifindexes.size(), 1u);
}

// A full map: inserts that fail are counted in map_errors, keys already present keep counting.
TEST_F(XdpTest, CountsFailedInsertsWhenTheMapIsFull) {
  xdp_bpf* raw = xdp_bpf::open();
  ASSERT_NE(raw, nullptr) << std::strerror(errno);
  std::unique_ptr<xdp_bpf, void (*)(xdp_bpf*)> skel(raw, xdp_bpf::destroy);
  ASSERT_EQ(bpf_map__set_max_entries(skel->maps.xdp_counts, 2), 0);
  ASSERT_EQ(xdp_bpf::load(skel.get()), 0) << std::strerror(errno);
  const int prog = bpf_program__fd(skel->progs.xdp_count);
  auto run = [&](std::vector<unsigned char> frame, int times) {
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(),
                .data_size_in = static_cast<__u32>(frame.size()), .repeat = times);
    ASSERT_EQ(bpf_prog_test_run_opts(prog, &opts), 0) << std::strerror(errno);
    EXPECT_EQ(opts.retval, static_cast<__u32>(XDP_PASS));
  };
  run(ipv4({}, 17, 28), 4);                                 // fills key 1
  run(ipv4({}, 6, 28), 5);                                  // fills key 2
  run(ipv6({}, 17, std::vector<unsigned char>(28, 0)), 6);  // no room: 6 failed inserts
  run(ipv4({}, 17, 28), 1);                                 // still counts

  const int ncpus = libbpf_num_possible_cpus();
  ASSERT_GT(ncpus, 0);
  std::vector<std::uint64_t> errors(static_cast<std::size_t>(ncpus));
  const __u32 index = XDP_MAP_COUNTS;
  ASSERT_EQ(bpf_map_lookup_elem(bpf_map__fd(skel->maps.map_errors), &index, errors.data()), 0);
  std::uint64_t failed = 0;
  for (auto e : errors) failed += e;
  EXPECT_EQ(failed, 6u);
  xdp_key key{static_cast<__u32>(::if_nametoindex("lo")), XDP_FAM_IPV4, XDP_PROTO_UDP, 0};
  std::vector<xdp_value> values(static_cast<std::size_t>(ncpus));
  ASSERT_EQ(bpf_map_lookup_elem(bpf_map__fd(skel->maps.xdp_counts), &key, values.data()), 0);
  std::uint64_t udp = 0;
  for (const auto& v : values) udp += v.packets;
  EXPECT_EQ(udp, 5u);
}

}  // namespace
}  // namespace podsight::testing
