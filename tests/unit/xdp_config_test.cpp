// programs.xdp configuration and interface selection: defaults that pick a node's uplinks and leave pod
// and CNI interfaces alone, and every bad name or pattern rejected with its key and element named.
#include "config/config.hpp"
#include "net/interfaces.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace podsight::config {
namespace {

// The message for a programs.xdp object the parser must reject.
std::string xdp_error(const std::string& xdp_object) {
  auto c = parse(R"({"programs": {"xdp": )" + xdp_object + "}}");
  EXPECT_FALSE(c.ok()) << xdp_object;
  return c.ok() ? "" : c.error().message();
}

net::InterfaceSelector selector_of(const XdpConfig& x) { return {x.interfaces, x.include, x.exclude}; }

TEST(XdpConfig, DefaultsAreOptInWithUplinkPatterns) {
  auto c = parse("{}");
  ASSERT_TRUE(c.ok()) << c.error().message();
  const auto& x = c->programs.xdp;
  EXPECT_FALSE(x.enabled);
  EXPECT_EQ(x.variant, "auto");
  EXPECT_EQ(x.mode, "auto");
  EXPECT_TRUE(x.interfaces.empty());
  EXPECT_EQ(x.include, XdpConfig::default_xdp_include());
  EXPECT_EQ(x.exclude, XdpConfig::default_xdp_exclude());
  EXPECT_EQ(x.max_interfaces, 64u);
}

TEST(XdpConfig, DefaultSelectionTakesUplinksAndLeavesPodAndCniInterfacesAlone) {
  auto sel = selector_of(XdpConfig{});
  for (const char* up : {"eth0", "eth1", "ens3", "eno1", "enp0s31f6", "enx0a1b2c3d4e5f", "em1", "bond0",
                         "bond0.100", "eth0.42", "team0", "vlan100"}) {
    EXPECT_TRUE(sel.selects(up)) << up;
  }
  // Calico, Cilium, Flannel, AWS VPC CNI (eni*), Weave, kube-proxy IPVS, NodeLocal DNSCache, Docker,
  // tunnels and the node's own loopback.
  for (const char* pod : {"lo",         "veth1a2b3c4",  "eni3f2a1b0c9d8", "cali12ab34cd56e",
                          "lxc_health", "lxc0123abcd",  "cilium_host",    "cilium_vxlan",
                          "flannel.1",  "cni0",         "docker0",        "br-0123456789ab",
                          "kube-ipvs0", "tunl0",        "vxlan.calico",   "genev_sys_6081",
                          "weave",      "nodelocaldns", "azv0123456789a", "gke0123456789a",
                          "wg0",        "ifb0"}) {
    EXPECT_FALSE(sel.selects(pod)) << pod;
  }
}

TEST(XdpConfig, NamingInterfacesMeansOnlyThoseUnlessIncludeIsGiven) {
  auto only = parse(R"({"programs": {"xdp": {"interfaces": ["eth1"]}}})");
  ASSERT_TRUE(only.ok()) << only.error().message();
  EXPECT_TRUE(only->programs.xdp.include.empty());
  auto sel = selector_of(only->programs.xdp);
  EXPECT_TRUE(sel.selects("eth1"));
  EXPECT_FALSE(sel.selects("eth0"));
  EXPECT_TRUE(sel.named("eth1"));

  auto both = parse(R"({"programs": {"xdp": {"interfaces": ["veth9"], "include": ["bond*"]}}})");
  ASSERT_TRUE(both.ok()) << both.error().message();
  auto sel2 = selector_of(both->programs.xdp);
  EXPECT_TRUE(sel2.selects("bond1"));
  EXPECT_FALSE(sel2.selects("eth0"));
  // A listed name is taken even where the exclude patterns (veth*) would drop it.
  EXPECT_TRUE(sel2.selects("veth9"));
}

TEST(XdpConfig, ReadsEveryKey) {
  auto c = parse(R"({"programs": {"xdp": {"enabled": true, "variant": "link", "mode": "generic",
                     "interfaces": ["eth0"], "include": ["ens[0-9]*"], "exclude": ["ens9"],
                     "max_interfaces": 3}}})");
  ASSERT_TRUE(c.ok()) << c.error().message();
  const auto& x = c->programs.xdp;
  EXPECT_TRUE(x.enabled);
  EXPECT_EQ(x.variant, "link");
  EXPECT_EQ(x.mode, "generic");
  EXPECT_EQ(x.interfaces, std::vector<std::string>{"eth0"});
  EXPECT_EQ(x.include, std::vector<std::string>{"ens[0-9]*"});
  EXPECT_EQ(x.exclude, std::vector<std::string>{"ens9"});
  EXPECT_EQ(x.max_interfaces, 3u);
  auto sel = selector_of(x);
  EXPECT_TRUE(sel.selects("ens3"));
  EXPECT_FALSE(sel.selects("ens9"));
  EXPECT_FALSE(sel.selects("ensx"));
}

TEST(XdpConfig, BadNamesAreRejectedWithKeyAndElement) {
  EXPECT_NE(
      xdp_error(R"({"interfaces": ["eth0", "eth 1"]})")
          .find("programs.xdp.interfaces: element 1 \"eth 1\": an interface name cannot contain whitespace"),
      std::string::npos);
  EXPECT_NE(
      xdp_error(R"({"interfaces": ["a23456789012345x"]})")
          .find("programs.xdp.interfaces: element 0 \"a23456789012345x\": an interface name has at most 15 "
                "bytes, this one has 16"),
      std::string::npos);
  EXPECT_NE(xdp_error(R"({"interfaces": [""]})").find("cannot be empty"), std::string::npos);
  EXPECT_NE(xdp_error(R"({"interfaces": [".."]})").find("are not interface names"), std::string::npos);
  EXPECT_NE(xdp_error(R"({"interfaces": ["a/b"]})").find("cannot contain '/'"), std::string::npos);
  EXPECT_NE(xdp_error(R"({"interfaces": ["eth0:1"]})").find("cannot contain ':'"), std::string::npos);
  EXPECT_NE(xdp_error(R"({"interfaces": ["a\u0000b"]})").find("\"a\\u0000b\""), std::string::npos);
  EXPECT_NE(xdp_error(R"({"interfaces": "eth0"})")
                .find("programs.xdp.interfaces: must be an array of strings, got a string"),
            std::string::npos);
  EXPECT_NE(xdp_error(R"({"interfaces": ["eth0", 7]})").find("element 1 is an integer"), std::string::npos);
}

TEST(XdpConfig, BadPatternsAreRejectedWithKeyAndElement) {
  EXPECT_NE(xdp_error(R"({"include": ["eth[0-9"]})")
                .find("programs.xdp.include: element 0 \"eth[0-9\": has a '[' without its closing ']'"),
            std::string::npos);
  EXPECT_NE(xdp_error(R"({"exclude": ["ok*", "bad\\"]})")
                .find("programs.xdp.exclude: element 1 \"bad\\\\\": ends in an unfinished '\\' escape"),
            std::string::npos);
  EXPECT_NE(xdp_error(R"({"include": ["eth 0*"]})").find("would never match"), std::string::npos);
  EXPECT_NE(xdp_error(R"({"include": ["averyveryverylongname*"]})")
                .find("needs at least 21 bytes to match, but interface names have at most 15"),
            std::string::npos);
  EXPECT_NE(xdp_error(R"({"include": [""]})").find("a pattern cannot be empty"), std::string::npos);
  std::string many = R"({"exclude": [)";
  for (int i = 0; i < 257; ++i) many += std::string(i ? "," : "") + "\"x" + std::to_string(i) + "\"";
  many += "]}";
  EXPECT_NE(xdp_error(many).find("programs.xdp.exclude: at most 256 entries, got 257"), std::string::npos);
}

TEST(XdpConfig, OtherValuesAreBounded) {
  EXPECT_NE(xdp_error(R"({"mode": "offload"})")
                .find("programs.xdp.mode: must be one of auto, native, generic, got \"offload\""),
            std::string::npos);
  EXPECT_NE(xdp_error(R"({"max_interfaces": 0})")
                .find("programs.xdp.max_interfaces: must be an integer in [1, 4096], got 0"),
            std::string::npos);
  EXPECT_NE(xdp_error(R"({"variant": "netlink"})").find("programs.xdp.variant: must be one of auto, link"),
            std::string::npos);
  EXPECT_NE(xdp_error(R"({"ifaces": []})").find("programs.xdp.ifaces: unknown key"), std::string::npos);
}

TEST(InterfacePattern, GlobSyntaxAsFnmatch) {
  EXPECT_EQ(net::invalid_interface_pattern("eth[!0]*"), "");
  EXPECT_EQ(net::invalid_interface_pattern("eth[]x]"), "");  // ']' first in a bracket is literal
  EXPECT_EQ(net::invalid_interface_pattern("a\\*"), "");
  EXPECT_EQ(net::invalid_interface_pattern("123456789012345"), "");
  EXPECT_NE(net::invalid_interface_pattern("1234567890123456"), "");
  EXPECT_EQ(net::invalid_interface_pattern("1234567890123456*").empty(), false);
  EXPECT_TRUE(net::glob_match("eth[!0]*", "eth1"));
  EXPECT_FALSE(net::glob_match("eth[!0]*", "eth0"));
  EXPECT_TRUE(net::glob_match("a\\*", "a*"));
  EXPECT_FALSE(net::glob_match("a\\*", "ab"));
  // Names are bytes: quotes, backslashes and non-UTF-8 bytes are matched as they are.
  EXPECT_TRUE(net::glob_match("px*", std::string("px\"\\\xff", 5)));
}

}  // namespace
}  // namespace podsight::config
