// rtnetlink parsing: link messages as the kernel sends them, and malformed or hostile ones that must be
// skipped or reported, never trusted.
#include "net/netlink.hpp"

#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

namespace podsight::net {
namespace {

// Builds netlink messages byte by byte, the way the kernel lays them out.
class Builder {
 public:
  // Starts a link message; attributes follow.
  Builder& link(std::uint16_t type, int ifindex, std::uint16_t flags = 0, unsigned char family = AF_UNSPEC) {
    start_ = buf_.size();
    nlmsghdr h{};
    h.nlmsg_type = type;
    h.nlmsg_flags = flags;
    append(&h, sizeof h);
    ifinfomsg ifi{};
    ifi.ifi_family = family;
    ifi.ifi_index = ifindex;
    append(&ifi, sizeof ifi);
    return finish();
  }
  Builder& attr(std::uint16_t type, const std::string& payload) {
    rtattr a{};
    a.rta_type = type;
    a.rta_len = static_cast<unsigned short>(sizeof a + payload.size());
    append(&a, sizeof a);
    append(payload.data(), payload.size());
    pad();
    return finish();
  }
  // IFLA_LINKINFO { IFLA_INFO_KIND kind }
  Builder& kind(const std::string& kind) {
    std::string inner(sizeof(rtattr), '\0');
    rtattr a{};
    a.rta_type = IFLA_INFO_KIND;
    a.rta_len = static_cast<unsigned short>(sizeof a + kind.size() + 1);
    std::memcpy(inner.data(), &a, sizeof a);
    inner += kind;
    inner.push_back('\0');
    while (inner.size() % 4 != 0) inner.push_back('\0');
    return attr(IFLA_LINKINFO | NLA_F_NESTED, inner);
  }
  Builder& control(std::uint16_t type, int error = 0) {
    start_ = buf_.size();
    nlmsghdr h{};
    h.nlmsg_type = type;
    append(&h, sizeof h);
    if (type == NLMSG_ERROR) {
      nlmsgerr e{};
      e.error = error;
      append(&e, sizeof e);
    } else {
      int zero = 0;
      append(&zero, sizeof zero);
    }
    return finish();
  }
  std::vector<unsigned char>& bytes() { return buf_; }

 private:
  void append(const void* p, std::size_t n) {
    const auto* c = static_cast<const unsigned char*>(p);
    buf_.insert(buf_.end(), c, c + n);
  }
  void pad() {
    while (buf_.size() % 4 != 0) buf_.push_back(0);
  }
  Builder& finish() {
    const auto len = static_cast<std::uint32_t>(buf_.size() - start_);
    std::memcpy(buf_.data() + start_, &len, sizeof len);
    return *this;
  }
  std::vector<unsigned char> buf_;
  std::size_t start_ = 0;
};

std::string cstr(const std::string& s) { return s + std::string(1, '\0'); }

ParsedMessages parse(Builder& b) { return parse_link_messages(b.bytes().data(), b.bytes().size()); }

TEST(Netlink, NewAndDeletedLinksWithKind) {
  Builder b;
  b.link(RTM_NEWLINK, 7).attr(IFLA_MTU, std::string(4, '\x05')).attr(IFLA_IFNAME, cstr("bond0")).kind("bond");
  b.link(RTM_NEWLINK, 8).attr(IFLA_IFNAME, cstr("eth0"));
  b.link(RTM_DELLINK, 9).attr(IFLA_IFNAME, cstr("veth1"));
  auto p = parse(b);
  EXPECT_EQ(p.error, 0);
  ASSERT_EQ(p.changes.size(), 3u);
  EXPECT_FALSE(p.changes[0].removed);
  EXPECT_EQ(p.changes[0].link.ifindex, 7u);
  EXPECT_EQ(p.changes[0].link.name, "bond0");
  EXPECT_EQ(p.changes[0].link.kind, "bond");
  EXPECT_EQ(p.changes[1].link.name, "eth0");
  EXPECT_EQ(p.changes[1].link.kind, "");
  EXPECT_TRUE(p.changes[2].removed);
  EXPECT_EQ(p.changes[2].link.ifindex, 9u);
}

TEST(Netlink, BridgePortMessagesAreNotLinkRemovals) {
  Builder b;
  b.link(RTM_DELLINK, 5, 0, AF_BRIDGE).attr(IFLA_IFNAME, cstr("eth0"));
  auto p = parse(b);
  EXPECT_TRUE(p.changes.empty());
  EXPECT_EQ(p.skipped, 0u);
}

TEST(Netlink, HostileNamesAreSkipped) {
  Builder b;
  b.link(RTM_NEWLINK, 3).attr(IFLA_IFNAME, std::string(16, 'a'));  // no NUL, too long
  b.link(RTM_NEWLINK, 4).attr(IFLA_IFNAME, cstr(std::string(16, 'b')));
  b.link(RTM_NEWLINK, 5).attr(IFLA_IFNAME, cstr("a/b"));
  b.link(RTM_NEWLINK, 6).attr(IFLA_IFNAME, cstr(""));
  b.link(RTM_NEWLINK, 10);  // no name at all
  b.link(RTM_NEWLINK, -1).attr(IFLA_IFNAME, cstr("neg"));
  // Quotes, backslashes and bytes that are not UTF-8 are legal in names: kept as they are.
  b.link(RTM_NEWLINK, 11).attr(IFLA_IFNAME, cstr(std::string("q\"\\\xff", 4)));
  auto p = parse(b);
  EXPECT_EQ(p.skipped, 6u);
  ASSERT_EQ(p.changes.size(), 1u);
  EXPECT_EQ(p.changes[0].link.name, std::string("q\"\\\xff", 4));
}

TEST(Netlink, MalformedBuffersStopTheParse) {
  Builder b;
  b.link(RTM_NEWLINK, 2).attr(IFLA_IFNAME, cstr("eth0"));
  auto& bytes = b.bytes();
  // Claims more than the buffer holds.
  auto too_long = bytes;
  std::uint32_t len = 4096;
  std::memcpy(too_long.data(), &len, sizeof len);
  EXPECT_EQ(parse_link_messages(too_long.data(), too_long.size()).error, EBADMSG);
  // An attribute running past its message: the name is not read, the message is skipped.
  auto bad_attr = bytes;
  auto* a = reinterpret_cast<rtattr*>(bad_attr.data() + NLMSG_HDRLEN + sizeof(ifinfomsg));
  a->rta_len = 200;
  auto p = parse_link_messages(bad_attr.data(), bad_attr.size());
  EXPECT_TRUE(p.changes.empty());
  EXPECT_EQ(p.skipped, 1u);
  // Truncated header and truncated body.
  EXPECT_TRUE(parse_link_messages(bytes.data(), 10).changes.empty());
  std::vector<unsigned char> short_body(bytes.begin(), bytes.begin() + NLMSG_HDRLEN + 4);
  std::uint32_t short_len = NLMSG_HDRLEN + 4;
  std::memcpy(short_body.data(), &short_len, sizeof short_len);
  auto s = parse_link_messages(short_body.data(), short_body.size());
  EXPECT_TRUE(s.changes.empty());
  EXPECT_EQ(s.skipped, 1u);
}

TEST(Netlink, DumpEndErrorsAndInterruptions) {
  Builder done;
  done.link(RTM_NEWLINK, 2, NLM_F_MULTI | NLM_F_DUMP_INTR).attr(IFLA_IFNAME, cstr("eth0"));
  done.control(NLMSG_DONE);
  auto p = parse(done);
  EXPECT_TRUE(p.done);
  EXPECT_TRUE(p.interrupted);
  EXPECT_EQ(p.changes.size(), 1u);

  Builder err;
  err.control(NLMSG_ERROR, -EPERM);
  EXPECT_EQ(parse(err).error, EPERM);
  Builder ack;
  ack.control(NLMSG_ERROR, 0);
  EXPECT_EQ(parse(ack).error, 0);
}

}  // namespace
}  // namespace podsight::net
