// Config parsing: defaults, every key, and a clear message naming the key for every kind of mistake.
#include "config/config.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <set>
#include <string>

namespace podsight::config {
namespace {

std::string error_of(std::string_view json) {
  auto c = parse(json);
  EXPECT_FALSE(c.ok()) << json;
  return c.ok() ? "" : c.error().message();
}

TEST(Config, EmptyObjectGivesDefaults) {
  auto c = parse("{}");
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->http.listen, "0.0.0.0:" + std::to_string(kDefaultPort));
  EXPECT_EQ(c->log_format, log::Format::kJson);
  EXPECT_EQ(c->log_level, "info");
  EXPECT_FALSE(c->bpf_stats);
  EXPECT_TRUE(c->programs.exec.enabled);
  EXPECT_EQ(c->programs.exec.variant, "auto");
  EXPECT_EQ(c->programs.exec.max_entries, 16384u);
  EXPECT_EQ(c->kubernetes.source, "auto");
  EXPECT_EQ(c->kubernetes.token_file, "/var/run/secrets/kubernetes.io/serviceaccount/token");
  EXPECT_EQ(c->kubernetes.ca_file, "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt");
  EXPECT_TRUE(c->kubernetes.pod_labels.empty());
  EXPECT_EQ(c->kubernetes.max_pods, 5000);
  EXPECT_EQ(c->cardinality.max_series, 10000);
  EXPECT_TRUE(c->cardinality.family_max_series.empty());
  EXPECT_EQ(c->gc.grace_period_seconds, 120);
  EXPECT_EQ(c->gc.interval_seconds, 15);
}

TEST(Config, ReadsKubernetesCardinalityAndGc) {
  auto c = parse(R"({
    "kubernetes": {"source": "kubeconfig", "kubeconfig": "/etc/k/config", "context": "prod", "node_name": "n1",
                   "token_file": "/t", "ca_file": "/c", "pod_labels": ["app", "app.kubernetes.io/name"],
                   "request_timeout_seconds": 7, "list_page_size": 50, "max_response_bytes": 1048576,
                   "max_pods": 300},
    "cardinality": {"max_series": 500, "family_max_series": {"podsight_process_execs_total": 20},
                    "drop_labels": ["comm"], "label_max_bytes": {"cgroup": 64}},
    "gc": {"grace_period_seconds": 5, "interval_seconds": 2, "max_deletes_per_pass": 100}
  })");
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->kubernetes.source, "kubeconfig");
  EXPECT_EQ(c->kubernetes.kubeconfig, "/etc/k/config");
  EXPECT_EQ(c->kubernetes.context, "prod");
  EXPECT_EQ(c->kubernetes.node_name, "n1");
  EXPECT_EQ(c->kubernetes.token_file, "/t");
  EXPECT_EQ(c->kubernetes.ca_file, "/c");
  EXPECT_EQ(c->kubernetes.pod_labels, (std::vector<std::string>{"app", "app.kubernetes.io/name"}));
  EXPECT_EQ(c->kubernetes.request_timeout_seconds, 7);
  EXPECT_EQ(c->kubernetes.list_page_size, 50);
  EXPECT_EQ(c->kubernetes.max_response_bytes, 1048576);
  EXPECT_EQ(c->kubernetes.max_pods, 300);
  EXPECT_EQ(c->cardinality.max_series, 500);
  EXPECT_EQ(c->cardinality.family_max_series.at("podsight_process_execs_total"), 20);
  EXPECT_EQ(c->cardinality.drop_labels, std::vector<std::string>{"comm"});
  EXPECT_EQ(c->cardinality.label_max_bytes.at("cgroup"), 64);
  EXPECT_EQ(c->gc.grace_period_seconds, 5);
  EXPECT_EQ(c->gc.interval_seconds, 2);
  EXPECT_EQ(c->gc.max_deletes_per_pass, 100);
}

TEST(Config, KubernetesCardinalityAndGcMistakesAreNamed) {
  EXPECT_NE(
      error_of(R"({"kubernetes": {"source": "kubeconfig"}})").find("kubernetes.kubeconfig: is required"),
      std::string::npos);
  EXPECT_NE(error_of(R"({"kubernetes": {"source": "cloud"}})").find("kubernetes.source: must be one of"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"kubernetes": {"pod_labels": ["has space"]}})").find("kubernetes.pod_labels"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"cardinality": {"family_max_series": {"not a metric": 5}}})")
                .find("cardinality.family_max_series: \"not a metric\" is not a metric name"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"cardinality": {"family_max_series": {"podsight_x_total": 0}}})")
                .find("\"podsight_x_total\" must be an integer in [1, 10000000], got 0"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"cardinality": {"family_max_series": {"podsight_x_total": "many"}}})")
                .find("got a string"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"cardinality": {"family_max_series": [1]}})").find("must be an object of integers"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"cardinality": {"drop_labels": ["9lives"]}})").find("is not a label name"),
            std::string::npos);
  EXPECT_NE(
      error_of(R"({"cardinality": {"label_max_bytes": {"comm": -1}}})").find("cardinality.label_max_bytes"),
      std::string::npos);
  EXPECT_NE(error_of(R"({"gc": {"interval_seconds": 0}})").find("gc.interval_seconds"), std::string::npos);
  EXPECT_NE(error_of(R"({"gc": {"grace": 5}})").find("gc.grace: unknown key"), std::string::npos);
}

TEST(Config, ReadsEveryKey) {
  auto c = parse(R"({
    "http": {"listen": "127.0.0.1:9999", "request_timeout_seconds": 3, "write_timeout_seconds": 4,
             "idle_timeout_seconds": 5, "max_connections": 6, "worker_threads": 7,
             "max_request_bytes": 2048, "keep_alive_max_requests": 9},
    "log": {"format": "text", "level": "debug"},
    "bpf_stats": true,
    "cgroup_root": "/sys/fs/cgroup/unified",
    "programs": {"exec": {"enabled": false, "variant": "tracepoint", "max_entries": 1024}}
  })");
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->http.listen, "127.0.0.1:9999");
  EXPECT_EQ(c->http.request_timeout_seconds, 3);
  EXPECT_EQ(c->http.write_timeout_seconds, 4);
  EXPECT_EQ(c->http.idle_timeout_seconds, 5);
  EXPECT_EQ(c->http.max_connections, 6u);
  EXPECT_EQ(c->http.worker_threads, 7u);
  EXPECT_EQ(c->http.max_request_bytes, 2048u);
  EXPECT_EQ(c->http.keep_alive_max_requests, 9u);
  EXPECT_EQ(c->log_format, log::Format::kText);
  EXPECT_EQ(c->log_level, "debug");
  EXPECT_TRUE(c->bpf_stats);
  EXPECT_EQ(c->cgroup_root, "/sys/fs/cgroup/unified");
  EXPECT_FALSE(c->programs.exec.enabled);
  EXPECT_EQ(c->programs.exec.variant, "tracepoint");
  EXPECT_EQ(c->programs.exec.max_entries, 1024u);
}

TEST(Config, CgroupSkbKeys) {
  auto d = parse("{}");
  ASSERT_TRUE(d.ok()) << d.error().message();
  EXPECT_TRUE(d->programs.cgroup_skb.enabled);
  EXPECT_EQ(d->programs.cgroup_skb.variant, "auto");
  EXPECT_EQ(d->programs.cgroup_skb.max_entries, 16384u);
  auto c = parse(R"({"programs": {"cgroup_skb": {"enabled": false, "variant": "link", "max_entries": 64}}})");
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_FALSE(c->programs.cgroup_skb.enabled);
  EXPECT_EQ(c->programs.cgroup_skb.variant, "link");
  EXPECT_EQ(c->programs.cgroup_skb.max_entries, 64u);
  const std::pair<const char*, const char*> bad[] = {
      {R"({"programs": {"cgroup_skb": {"variant": "legacy"}}})", "programs.cgroup_skb.variant"},
      {R"({"programs": {"cgroup_skb": {"max_entries": 0}}})", "programs.cgroup_skb.max_entries"},
      {R"({"programs": {"cgroup_skb": {"max_entries": 1048577}}})", "programs.cgroup_skb.max_entries"},
      {R"({"programs": {"cgroup_skb": {"enabled": "yes"}}})", "programs.cgroup_skb.enabled"},
  };
  for (const auto& [json, key] : bad) EXPECT_NE(error_of(json).find(key), std::string::npos) << json;
}

TEST(Config, UnknownKeysAreNamed) {
  EXPECT_NE(error_of(R"({"listen": "x"})").find("listen: unknown key"), std::string::npos);
  EXPECT_NE(
      error_of(R"({"programs": {"exec": {"max_entrys": 5}}})").find("programs.exec.max_entrys: unknown key"),
      std::string::npos);
  EXPECT_NE(error_of(R"({"programs": {"nosuch": {}}})").find("programs.nosuch: unknown key"),
            std::string::npos);
}

TEST(Config, WrongTypesAreNamed) {
  EXPECT_NE(error_of(R"({"bpf_stats": "yes"})").find("bpf_stats: must be true or false, got a string"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"http": {"worker_threads": 2.5}})").find("http.worker_threads: must be an integer"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"http": []})").find("http: must be an object, got an array"), std::string::npos);
  EXPECT_NE(error_of(R"([1,2])").find("must be an object"), std::string::npos);
  EXPECT_NE(error_of(R"({"log": {"format": 1}})").find("log.format: must be one of json, text"),
            std::string::npos);
}

TEST(Config, OutOfRangeValuesAreNamed) {
  EXPECT_NE(error_of(R"({"programs": {"exec": {"max_entries": 0}}})")
                .find("programs.exec.max_entries: must be an integer in [1, 1048576], got 0"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"programs": {"exec": {"max_entries": -5}}})").find("got -5"), std::string::npos);
  EXPECT_NE(error_of(R"({"programs": {"exec": {"max_entries": 18446744073709551615}}})")
                .find("got 18446744073709551615"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"http": {"listen": "127.0.0.1:70000"}})").find("http.listen"), std::string::npos);
  EXPECT_NE(error_of(R"({"programs": {"exec": {"variant": "kprobe"}}})")
                .find("programs.exec.variant: must be one of auto, tp_btf, tracepoint, got \"kprobe\""),
            std::string::npos);
  EXPECT_NE(error_of(R"({"cgroup_root": "relative/path"})").find("cgroup_root: must be an absolute path"),
            std::string::npos);
}

TEST(Config, AllProblemsReportedAtOnce) {
  auto msg = error_of(R"({"bpf_stats": 1, "nope": true, "log": {"level": "loud"}})");
  EXPECT_NE(msg.find("bpf_stats"), std::string::npos);
  EXPECT_NE(msg.find("nope: unknown key"), std::string::npos);
  EXPECT_NE(msg.find("log.level"), std::string::npos);
}

TEST(Config, MalformedJson) {
  EXPECT_NE(error_of("{\"http\": ").find("malformed JSON"), std::string::npos);
  EXPECT_NE(error_of("").find("malformed JSON"), std::string::npos);
  EXPECT_NE(error_of("{} trailing").find("malformed JSON"), std::string::npos);
  EXPECT_NE(error_of(R"({"a": 1, "a": 2})").find("a: unknown key"), std::string::npos);
  // nlohmann reports a number too large for a double as out_of_range, not as a parse_error (the
  // config fuzz target found that this used to end the agent with std::terminate).
  EXPECT_NE(error_of("1e399").find("malformed JSON"), std::string::npos);
  EXPECT_NE(error_of(R"({"programs": {"exec": {"max_entries": -1e400}}})").find("malformed JSON"), std::string::npos);
}

TEST(Config, UnreadableFileIsNamed) {
  auto c = load_file("/nonexistent/podsight.json");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message().find("/nonexistent/podsight.json"), std::string::npos);
  EXPECT_EQ(c.error().err, ENOENT);
}

TEST(Config, FlagsOverrideFile) {
  char path[] = "/tmp/podsight-config-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  std::ofstream(path) << R"({"http": {"listen": "127.0.0.1:1"}, "log": {"level": "warn"}})";
  const char* argv[] = {"podsight", "--config", path, "--listen=127.0.0.1:2", "--log-format", "text"};
  auto cl = parse_args(6, argv);
  ASSERT_TRUE(cl.ok()) << cl.error().message();
  auto c = resolve(*cl);
  std::remove(path);
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->http.listen, "127.0.0.1:2");
  EXPECT_EQ(c->log_level, "warn");
  EXPECT_EQ(c->log_format, log::Format::kText);
}

TEST(Config, BadFlags) {
  const char* unknown[] = {"podsight", "--frobnicate"};
  EXPECT_FALSE(parse_args(2, unknown).ok());
  const char* missing[] = {"podsight", "--config"};
  auto m = parse_args(2, missing);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.error().message().find("--config"), std::string::npos);
  const char* level[] = {"podsight", "--log-level", "chatty"};
  auto cl = parse_args(3, level);
  ASSERT_TRUE(cl.ok());
  auto r = resolve(*cl);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("--log-level"), std::string::npos);
  const char* listen[] = {"podsight", "--listen", "nonsense"};
  auto l = parse_args(3, listen);
  ASSERT_TRUE(l.ok());
  EXPECT_FALSE(resolve(*l).ok());
}

TEST(Config, ValidateConfigFlag) {
  const char* plain[] = {"podsight", "--config", "/etc/podsight/config.json"};
  auto p = parse_args(3, plain);
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(p->validate_config);
  const char* argv[] = {"podsight", "--validate-config", "--config", "/etc/podsight/config.json"};
  auto cl = parse_args(4, argv);
  ASSERT_TRUE(cl.ok()) << cl.error().message();
  EXPECT_TRUE(cl->validate_config);
  EXPECT_EQ(cl->config_file, "/etc/podsight/config.json");
  // A flag, not an option: a value is an error rather than silently ignored.
  const char* valued[] = {"podsight", "--validate-config=yes"};
  EXPECT_FALSE(parse_args(2, valued).ok());
  EXPECT_NE(usage().find("--validate-config"), std::string::npos);
}

TEST(Config, TlsAndAuthKeys) {
  auto c = parse(R"({"http": {"tls": {"cert_file": "/t/tls.crt", "key_file": "/t/tls.key", "min_version": "1.3"},
                               "auth": {"bearer_token_file": "/a/token", "basic_username": "prom",
                                        "basic_password_file": "/a/password"}}})");
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->http.tls.cert_file, "/t/tls.crt");
  EXPECT_EQ(c->http.tls.key_file, "/t/tls.key");
  EXPECT_EQ(c->http.tls.min_version, "1.3");
  EXPECT_EQ(c->http.auth.bearer_token_file, "/a/token");
  EXPECT_EQ(c->http.auth.basic_username, "prom");
  EXPECT_EQ(c->http.auth.basic_password_file, "/a/password");
  EXPECT_FALSE(parse("{}")->http.tls.enabled());
  EXPECT_FALSE(parse("{}")->http.auth.enabled());

  EXPECT_NE(error_of(R"({"http": {"tls": {"cert_file": "/c"}}})").find("http.tls.key_file: must be set together"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"http": {"tls": {"key_file": "/k"}}})").find("http.tls.cert_file: must be set together"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"http": {"tls": {"cert_file": "/c", "key_file": "/k", "min_version": "1.1"}}})")
                .find("http.tls.min_version: must be one of 1.2, 1.3"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"http": {"tls": {"ca_file": "/x"}}})").find("http.tls.ca_file: unknown key"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"http": {"auth": {"basic_username": "u"}}})")
                .find("http.auth.basic_password_file: must be set together"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"http": {"auth": {"basic_username": "a:b", "basic_password_file": "/p"}}})")
                .find("http.auth.basic_username: must not contain ':'"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"http": {"auth": {"bearer_token_file": 5}}})").find("http.auth.bearer_token_file"),
            std::string::npos);
}

// docs/configuration.md documents exactly the keys the parser accepts: a key added in code without a
// line in the docs (or documented but gone) fails here.
TEST(Config, DocumentationListsExactlyTheAcceptedKeys) {
  std::ifstream in(std::string(PODSIGHT_SOURCE_DIR) + "/docs/configuration.md");
  ASSERT_TRUE(in) << "docs/configuration.md missing";
  std::set<std::string> documented;
  std::string line;
  while (std::getline(in, line)) {
    // table rows whose first cell is a `key`
    if (line.rfind("| `", 0) != 0) continue;
    auto end = line.find('`', 3);
    if (end == std::string::npos) continue;
    std::string key = line.substr(3, end - 3);
    if (key.find(' ') == std::string::npos && key.find("--") != 0) documented.insert(key);
  }
  std::set<std::string> known;
  for (const auto& k : known_keys()) known.insert(k);
  // Objects are documented as rows of their own only where the docs choose to; leaves must all be there.
  for (const auto& k : known) {
    bool is_object = false;
    for (const auto& other : known) is_object |= other.rfind(k + ".", 0) == 0;
    if (!is_object)
      EXPECT_TRUE(documented.count(k)) << "key " << k << " is accepted but not in docs/configuration.md";
  }
  for (const auto& k : documented) {
    EXPECT_TRUE(known.count(k)) << "docs/configuration.md documents " << k << ", which the parser rejects";
  }
}

TEST(Config, TcpKeys) {
  auto d = parse("{}");
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(d->programs.tcp.enabled);
  EXPECT_EQ(d->programs.tcp.variant, "auto");
  EXPECT_EQ(d->programs.tcp.max_connections, 65536u);
  EXPECT_EQ(d->programs.tcp.max_entries, 16384u);

  auto c = parse(
      R"({"programs": {"tcp": {"enabled": false, "variant": "kprobe", "max_connections": 7, "max_entries": 9}}})");
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_FALSE(c->programs.tcp.enabled);
  EXPECT_EQ(c->programs.tcp.variant, "kprobe");
  EXPECT_EQ(c->programs.tcp.max_connections, 7u);
  EXPECT_EQ(c->programs.tcp.max_entries, 9u);

  EXPECT_NE(error_of(R"({"programs": {"tcp": {"variant": "ebpf"}}})").find("programs.tcp.variant"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"programs": {"tcp": {"max_connections": 0}}})")
                .find("programs.tcp.max_connections: must be an integer in [1, 1048576], got 0"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"programs": {"tcp": {"max_conections": 5}}})")
                .find("programs.tcp.max_conections: unknown key"),
            std::string::npos);

  EXPECT_EQ(d->programs.tcp.open_connections, "auto");
  for (const char* method : {"sk_storage", "iter_tcp"}) {
    auto m = parse(std::string(R"({"programs": {"tcp": {"open_connections": ")") + method + "\"}}}");
    ASSERT_TRUE(m.ok()) << m.error().message();
    EXPECT_EQ(m->programs.tcp.open_connections, method);
  }
  EXPECT_NE(error_of(R"({"programs": {"tcp": {"open_connections": "setns"}}})")
                .find("programs.tcp.open_connections"),
            std::string::npos);

  EXPECT_FALSE(d->programs.tcp.remote.enabled);
  EXPECT_EQ(d->programs.tcp.remote.max_entries, 16384u);
  EXPECT_EQ(d->programs.tcp.remote.max_addresses, 65536u);
  auto r =
      parse(R"({"programs": {"tcp": {"remote": {"enabled": true, "max_entries": 5, "max_addresses": 7}}}})");
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_TRUE(r->programs.tcp.remote.enabled);
  EXPECT_EQ(r->programs.tcp.remote.max_entries, 5u);
  EXPECT_EQ(r->programs.tcp.remote.max_addresses, 7u);
  EXPECT_NE(error_of(R"({"programs": {"tcp": {"remote": {"max_addresses": 0}}}})")
                .find("programs.tcp.remote.max_addresses: must be an integer in [1, 4194304], got 0"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"programs": {"tcp": {"remote": {"enable": true}}}})")
                .find("programs.tcp.remote.enable: unknown key"),
            std::string::npos);
}

}  // namespace
}  // namespace podsight::config
