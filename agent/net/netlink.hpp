// rtnetlink for network interfaces: a dump of every link and a subscription to link changes
// (RTNLGRP_LINK), with a parser that treats every message as hostile (bounds-checked attributes, names
// at most IFNAMSIZ - 1 bytes, messages only from the kernel).
#pragma once

#include "bpf/handles.hpp"
#include "util/result.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace podsight::net {

struct Link {
  std::uint32_t ifindex = 0;
  std::string name;
  std::string kind;  // IFLA_INFO_KIND: "veth", "bond", "vlan", ...; empty for physical devices
};

struct LinkChange {
  bool removed = false;  // RTM_DELLINK (deleted, or moved to another network namespace)
  Link link;             // for a removal only ifindex (and the name, when the kernel sent it) matter
};

struct ParsedMessages {
  std::vector<LinkChange> changes;
  bool done = false;         // NLMSG_DONE seen (end of a dump)
  bool interrupted = false;  // NLM_F_DUMP_INTR: links changed during the dump, it must be repeated
  int error = 0;             // errno from an NLMSG_ERROR, or EBADMSG for a malformed message
  std::size_t skipped = 0;   // link messages dropped because they held no usable ifindex or name
};

// Parses a buffer of netlink messages as received from a NETLINK_ROUTE socket. RTM_NEWLINK and
// RTM_DELLINK become changes; other types are ignored. Parsing stops at the first malformed header.
ParsedMessages parse_link_messages(const void* data, std::size_t len);

// Every link of this network namespace, by ifindex order.
Result<std::vector<Link>> list_links();

// A NETLINK_ROUTE socket subscribed to RTNLGRP_LINK, non-blocking: poll fd() and call read().
class LinkMonitor {
 public:
  static Result<LinkMonitor> open();
  [[nodiscard]] int fd() const { return fd_.get(); }
  // Everything queued now. `overrun` is set when the kernel dropped notifications (ENOBUFS, or a
  // truncated message): the caller must resynchronise with list_links().
  Result<std::vector<LinkChange>> read(bool& overrun);

 private:
  bpf::UniqueFd fd_;
};

}  // namespace podsight::net
