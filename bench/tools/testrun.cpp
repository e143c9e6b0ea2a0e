// Runs a loaded cgroup_skb program (by id) on a synthetic packet with BPF_PROG_TEST_RUN, `repeat`
// times in the kernel, and reports the kernel's own average time per run. No run-time statistics
// are involved and no traffic is needed, so program variants compare repeatably. The kernel gives
// the test skb a socket in the caller's cgroup, so the program's map gets one entry for it.
#include "common.hpp"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <vector>

namespace podsight::bench {
namespace {

// Ethernet + IPv4 + UDP or TCP + payload, checksums left zero (nothing verifies them here).
std::vector<unsigned char> packet(const std::string& proto, std::size_t payload) {
  const bool tcp = proto == "tcp";
  const std::size_t l4 = tcp ? sizeof(tcphdr) : sizeof(udphdr);
  std::vector<unsigned char> p(sizeof(ethhdr) + sizeof(iphdr) + l4 + payload, 0);
  auto* eth = reinterpret_cast<ethhdr*>(p.data());
  eth->h_proto = htons(ETH_P_IP);
  auto* ip = reinterpret_cast<iphdr*>(p.data() + sizeof(ethhdr));
  ip->version = 4;
  ip->ihl = 5;
  ip->ttl = 64;
  ip->protocol = tcp ? IPPROTO_TCP : IPPROTO_UDP;
  ip->tot_len = htons(static_cast<std::uint16_t>(sizeof(iphdr) + l4 + payload));
  ip->saddr = htonl(0x7f000001);
  ip->daddr = htonl(0x7f000001);
  if (tcp) {
    auto* th = reinterpret_cast<tcphdr*>(p.data() + sizeof(ethhdr) + sizeof(iphdr));
    th->doff = 5;
    th->ack = 1;
  } else {
    auto* uh = reinterpret_cast<udphdr*>(p.data() + sizeof(ethhdr) + sizeof(iphdr));
    uh->len = htons(static_cast<std::uint16_t>(sizeof(udphdr) + payload));
  }
  return p;
}

}  // namespace

// --prog-id ID --repeat N --rounds R --proto udp|tcp --payload B --gso-segs S
int testrun(const Args& a) {
  const auto id = static_cast<std::uint32_t>(a.num("prog-id", 0));
  const auto repeat = static_cast<std::uint32_t>(a.num("repeat", 1000000));
  const auto rounds = a.num("rounds", 5);
  const auto data = packet(a.str("proto", "udp"), static_cast<std::size_t>(a.num("payload", 64)));
  const auto gso_segs = static_cast<std::uint32_t>(a.num("gso-segs", 0));
  int fd = bpf_prog_get_fd_by_id(id);
  if (fd < 0) throw std::runtime_error("prog id " + std::to_string(id) + ": " + std::strerror(errno));
  __sk_buff ctx{};
  if (gso_segs > 1) {
    ctx.gso_segs = gso_segs;
    ctx.gso_size = 1448;
  }
  std::vector<double> ns;
  for (std::int64_t r = 0; r < rounds; ++r) {
    std::vector<unsigned char> out(data.size() + 256);
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = data.data(), .data_out = out.data(),
                .data_size_in = static_cast<__u32>(data.size()),
                .data_size_out = static_cast<__u32>(out.size()), .ctx_in = gso_segs > 1 ? &ctx : nullptr,
                .ctx_size_in = gso_segs > 1 ? static_cast<__u32>(sizeof ctx) : 0u,
                .repeat = static_cast<int>(repeat));
    if (bpf_prog_test_run_opts(fd, &opts) != 0) {
      const int err = errno;
      ::close(fd);
      throw std::runtime_error("BPF_PROG_TEST_RUN: " + std::string(std::strerror(err)));
    }
    ns.push_back(static_cast<double>(opts.duration));
  }
  ::close(fd);
  emit({{"prog_id", id}, {"repeat", repeat}, {"ns_per_run", ns}});
  return 0;
}

}  // namespace podsight::bench
