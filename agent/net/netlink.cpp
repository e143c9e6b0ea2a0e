// rtnetlink link dump, link-change subscription and a defensive parser for both.
#include "net/netlink.hpp"

#include "net/interfaces.hpp"

#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace podsight::net {
namespace {

constexpr std::size_t kRecvBuffer = 64 * 1024;  // a dump part is at most 32 KiB
constexpr int kMonitorSocketBuffer = 4 * 1024 * 1024;
constexpr int kDumpAttempts = 5;
constexpr std::size_t kMaxKind = 64;

std::size_t align4(std::size_t n) { return (n + 3) & ~std::size_t{3}; }

// Visits the attributes in [p, p + len); stops at the first malformed one.
template <typename F>
void for_each_attr(const unsigned char* p, std::size_t len, F&& visit) {
  std::size_t off = 0;
  while (len - off >= sizeof(rtattr)) {
    rtattr a{};
    std::memcpy(&a, p + off, sizeof a);
    if (a.rta_len < sizeof(rtattr) || a.rta_len > len - off) return;
    visit(static_cast<unsigned short>(a.rta_type & NLA_TYPE_MASK), p + off + sizeof(rtattr),
          a.rta_len - sizeof(rtattr));
    const std::size_t next = align4(a.rta_len);
    if (next >= len - off) return;
    off += next;
  }
}

// A string attribute: up to the first NUL, at most `max` bytes; false if longer.
bool attr_string(const unsigned char* p, std::size_t len, std::size_t max, std::string& out) {
  const auto* end = std::find(p, p + len, static_cast<unsigned char>(0));
  const auto n = static_cast<std::size_t>(end - p);
  if (n > max) return false;
  out.assign(reinterpret_cast<const char*>(p), n);
  return true;
}

// One RTM_NEWLINK / RTM_DELLINK body. False when it holds no usable ifindex or name.
bool parse_link(const unsigned char* body, std::size_t len, bool removed, LinkChange& out, bool& relevant) {
  relevant = false;
  if (len < sizeof(ifinfomsg)) return false;
  ifinfomsg ifi{};
  std::memcpy(&ifi, body, sizeof ifi);
  // AF_BRIDGE messages describe bridge ports: an RTM_DELLINK there means "left the bridge", not gone.
  if (ifi.ifi_family != AF_UNSPEC) return true;
  relevant = true;
  if (ifi.ifi_index <= 0) return false;
  out.removed = removed;
  out.link.ifindex = static_cast<std::uint32_t>(ifi.ifi_index);
  bool name_ok = false;
  const std::size_t attrs = align4(sizeof(ifinfomsg));
  if (len < attrs) return removed;
  for_each_attr(body + attrs, len - attrs, [&](unsigned short type, const unsigned char* p, std::size_t n) {
    if (type == IFLA_IFNAME) {
      std::string name;
      name_ok = attr_string(p, n, kMaxInterfaceName, name) && invalid_interface_name(name).empty();
      if (name_ok) out.link.name = std::move(name);
    } else if (type == IFLA_LINKINFO) {
      for_each_attr(p, n, [&](unsigned short inner, const unsigned char* q, std::size_t m) {
        if (inner == IFLA_INFO_KIND && !attr_string(q, m, kMaxKind, out.link.kind)) out.link.kind.clear();
      });
    }
  });
  return removed || name_ok;
}

bpf::UniqueFd route_socket(int flags) {
  return bpf::UniqueFd(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | flags, NETLINK_ROUTE));
}

// Receives one datagram; returns its length, 0 for one to ignore (not from the kernel), or -errno.
// `truncated` is set when it did not fit.
long receive(int fd, std::vector<unsigned char>& buf, int flags, bool& truncated) {
  sockaddr_nl from{};
  iovec iov{buf.data(), buf.size()};
  msghdr msg{};
  msg.msg_name = &from;
  msg.msg_namelen = sizeof from;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  const ssize_t n = ::recvmsg(fd, &msg, flags);
  if (n < 0) return -errno;
  truncated = (msg.msg_flags & MSG_TRUNC) != 0;
  // Only the kernel (port 0) speaks for the links; anything else on the socket is not trusted.
  if (from.nl_pid != 0) return 0;
  return static_cast<long>(n);
}

Result<std::vector<Link>> dump_once(bool& interrupted) {
  auto fd = route_socket(0);
  if (!fd) return errno_error("socket(AF_NETLINK, NETLINK_ROUTE)");
  timeval tv{5, 0};  // the kernel answers at once; this only bounds a wedged socket
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  struct {
    nlmsghdr h;
    ifinfomsg ifi;
  } req{};
  req.h.nlmsg_len = sizeof req;
  req.h.nlmsg_type = RTM_GETLINK;
  req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  req.h.nlmsg_seq = 1;
  req.ifi.ifi_family = AF_UNSPEC;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (::sendto(fd.get(), &req, sizeof req, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) < 0) {
    return errno_error("send RTM_GETLINK dump request");
  }
  std::vector<Link> links;
  std::vector<unsigned char> buf(kRecvBuffer);
  for (;;) {
    bool truncated = false;
    const long n = receive(fd.get(), buf, 0, truncated);
    if (n == -EINTR) continue;
    if (n < 0) return errno_error("receive RTM_GETLINK dump", {}, static_cast<int>(-n));
    if (truncated) return Error{"receive RTM_GETLINK dump: message larger than the buffer", {}, EMSGSIZE};
    auto parsed = parse_link_messages(buf.data(), static_cast<std::size_t>(n));
    interrupted |= parsed.interrupted;
    for (auto& c : parsed.changes) {
      if (!c.removed) links.push_back(std::move(c.link));
    }
    if (parsed.error != 0) return errno_error("RTM_GETLINK dump", {}, parsed.error);
    if (parsed.done) return links;
  }
}

}  // namespace

ParsedMessages parse_link_messages(const void* data, std::size_t len) {
  ParsedMessages out;
  const auto* p = static_cast<const unsigned char*>(data);
  std::size_t off = 0;
  while (len - off >= sizeof(nlmsghdr)) {
    nlmsghdr h{};
    std::memcpy(&h, p + off, sizeof h);
    if (h.nlmsg_len < NLMSG_HDRLEN || h.nlmsg_len > len - off) {
      out.error = EBADMSG;
      return out;
    }
    const unsigned char* body = p + off + NLMSG_HDRLEN;
    const std::size_t body_len = h.nlmsg_len - NLMSG_HDRLEN;
    if ((h.nlmsg_flags & NLM_F_DUMP_INTR) != 0) out.interrupted = true;
    if (h.nlmsg_type == NLMSG_DONE) {
      out.done = true;
      return out;
    }
    if (h.nlmsg_type == NLMSG_ERROR) {
      int err = 0;
      if (body_len < sizeof err) {
        out.error = EBADMSG;
        return out;
      }
      std::memcpy(&err, body, sizeof err);
      if (err != 0) {  // 0 is an acknowledgement
        out.error = err < 0 ? -err : EBADMSG;
        return out;
      }
    } else if (h.nlmsg_type == RTM_NEWLINK || h.nlmsg_type == RTM_DELLINK) {
      LinkChange c;
      bool relevant = false;
      if (parse_link(body, body_len, h.nlmsg_type == RTM_DELLINK, c, relevant)) {
        if (relevant) out.changes.push_back(std::move(c));
      } else {
        ++out.skipped;
      }
    }
    const std::size_t next = NLMSG_ALIGN(h.nlmsg_len);
    if (next >= len - off) break;
    off += next;
  }
  return out;
}

Result<std::vector<Link>> list_links() {
  for (int attempt = 1;; ++attempt) {
    bool interrupted = false;
    auto links = dump_once(interrupted);
    if (!links || !interrupted || attempt == kDumpAttempts) return links;
  }
}

Result<LinkMonitor> LinkMonitor::open() {
  LinkMonitor m;
  m.fd_ = route_socket(SOCK_NONBLOCK);
  if (!m.fd_) return errno_error("socket(AF_NETLINK, NETLINK_ROUTE)");
  // A burst of pod churn can queue many link messages; a larger buffer makes overruns (and the full
  // resynchronisation they cost) rare. FORCE needs CAP_NET_ADMIN, which the agent has; else best effort.
  if (::setsockopt(m.fd_.get(), SOL_SOCKET, SO_RCVBUFFORCE, &kMonitorSocketBuffer,
                   sizeof kMonitorSocketBuffer) != 0) {
    ::setsockopt(m.fd_.get(), SOL_SOCKET, SO_RCVBUF, &kMonitorSocketBuffer, sizeof kMonitorSocketBuffer);
  }
  sockaddr_nl addr{};
  addr.nl_family = AF_NETLINK;
  addr.nl_groups = RTMGRP_LINK;
  if (::bind(m.fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    return errno_error("bind netlink socket to RTNLGRP_LINK");
  }
  return m;
}

Result<std::vector<LinkChange>> LinkMonitor::read(bool& overrun) {
  std::vector<LinkChange> changes;
  std::vector<unsigned char> buf(kRecvBuffer);
  for (;;) {
    bool truncated = false;
    const long n = receive(fd_.get(), buf, MSG_DONTWAIT, truncated);
    if (n == -EAGAIN || n == -EWOULDBLOCK) return changes;
    if (n == -EINTR) continue;
    if (n == -ENOBUFS) {
      overrun = true;  // the kernel dropped messages; keep draining what is left
      continue;
    }
    if (n < 0) return errno_error("receive link notifications", {}, static_cast<int>(-n));
    if (truncated) overrun = true;
    auto parsed = parse_link_messages(buf.data(), static_cast<std::size_t>(n));
    if (parsed.error != 0) overrun = true;
    for (auto& c : parsed.changes) changes.push_back(std::move(c));
  }
}

}  // namespace podsight::net
