// Kubernetes identity end to end on the real kernel: cgroups shaped like kubelet's (cgroupfs and
// systemd drivers, three QoS classes, containerd and CRI-O), processes run in them, pods served by a
// test API server over TLS, the real agent binary configured in-cluster or by kubeconfig. Asserted:
// exec metrics carry namespace/pod/container exactly; pod_info joins; a deleted pod's series and map
// entries go away after the grace period (not before, and never losing their labels); the series
// limit folds exactly the excess into the overflow series; an unreachable API leaves metrics served;
// TCP and network metrics of traffic run in pods' containers carry the pods' labels.
//
// To cover another workload family, run its traffic in the pod's container cgroup (a TestCgroup:
// Placement{&cg, &netns} works) next to the execs and add an expect_pod_series() line for its metric.
#include "integration/support/harness.hpp"
#include "integration/support/pod_cgroups.hpp"
#include "integration/support/net.hpp"
#include "integration/support/tcp_traffic.hpp"
#include "support/kube_api.hpp"

#include "bpf/maps.hpp"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <thread>

namespace podsight::testing {
namespace {

// Whether the map `name` the agent holds has an entry for `cgroup_id` (the u64 at the key's start).
bool agent_map_has_cgroup(pid_t agent, const std::string& name, std::uint64_t cgroup_id) {
  bpf_map_info info{};
  const int fd = map_held_by(agent, name, &info);
  EXPECT_GE(fd, 0) << "agent holds no map named " << name;
  if (fd < 0) return false;
  bool found = false;
  auto walked = bpf::for_each_key(
      fd, info.key_size,
      [&](const void* key) {
        std::uint64_t cg = 0;
        std::memcpy(&cg, key, sizeof cg);
        found |= cg == cgroup_id;
      },
      name);
  EXPECT_TRUE(walked.ok());
  ::close(fd);
  return found;
}

// The series of `metric` whose labels include `match` (an absent label matches "", as in PromQL);
// fails the test if there are several.
std::optional<Scrape::Series> one_series(const Scrape& s, const std::string& metric,
                                         const std::map<std::string, std::string>& match) {
  std::optional<Scrape::Series> found;
  for (const auto& series : s.series()) {
    bool ok = series.name == metric;
    for (const auto& [k, v] : match) {
      auto it = series.labels.find(k);
      ok = ok && (it == series.labels.end() ? std::string() : it->second) == v;
    }
    if (!ok) continue;
    if (found) ADD_FAILURE() << "several series of " << metric << " match";
    found = series;
  }
  return found;
}

// A workload series of `pod`'s `container`: pod labels set, cgroup empty, value exact.
void expect_pod_series(const Scrape& s, const std::string& metric,
                       const std::map<std::string, std::string>& match, const TestPod& pod,
                       const std::string& container, double value) {
  auto series = one_series(s, metric, match);
  ASSERT_TRUE(series.has_value()) << "no " << metric << " series for " << pod.name << "\n" << s.text();
  EXPECT_EQ(series->labels.at("namespace"), pod.namespace_);
  EXPECT_EQ(series->labels.at("pod"), pod.name);
  EXPECT_EQ(series->labels.at("container"), container);
  EXPECT_EQ(series->labels.at("cgroup"), "");
  EXPECT_EQ(series->value, value) << metric << " of " << pod.name;
}

class Kubernetes : public ::testing::Test {
 protected:
  static constexpr int kGraceSeconds = 3;

  static void SetUpTestSuite() { pki_ = new TestPki(); }
  static void TearDownTestSuite() { delete pki_; }

  void SetUp() override {
    PODSIGHT_REQUIRE_PRIVILEGES();
    ensure_kernel_mounts();
    dir_ = make_temp_dir("podsight-k8s");
    write_file(dir_ + "/token", "e2e-token\n");
    FakeKubeApi::Options o;
    o.token = "e2e-token";
    o.node = "node-e2e";
    api_ = std::make_unique<FakeKubeApi>(*pki_, o);
    bins_ = make_temp_dir("podsight-k8s-bin");
  }
  void TearDown() override {
    ::unsetenv("KUBERNETES_SERVICE_HOST");
    ::unsetenv("KUBERNETES_SERVICE_PORT");
    api_.reset();
    std::filesystem::remove_all(dir_);
    std::filesystem::remove_all(bins_);
  }

  // In-cluster: the environment kubelet gives a pod, the service-account files in our directory.
  std::string in_cluster_config(const std::string& extra = "") {
    ::setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1", 1);
    ::setenv("KUBERNETES_SERVICE_PORT", std::to_string(api_->port()).c_str(), 1);
    return R"({"kubernetes": {"source": "in_cluster", "node_name": "node-e2e", "token_file": ")" + dir_ +
           R"(/token", "ca_file": ")" + pki_->ca_cert() +
           R"(", "pod_labels": ["app", "app.kubernetes.io/part-of"]},
               "gc": {"grace_period_seconds": )" +
           std::to_string(kGraceSeconds) + R"(, "interval_seconds": 1})" + extra + "}";
  }

  std::string kubeconfig_config(int port) {
    const std::string path = dir_ + "/kubeconfig";
    write_kubeconfig(path, port, *pki_, "e2e-token");
    return R"({"kubernetes": {"source": "kubeconfig", "kubeconfig": ")" + path +
           R"(", "node_name": "node-e2e"}})";
  }

  std::string binary(const std::string& comm) { return make_named_true(bins_, comm); }

  static TestPki* pki_;
  std::string dir_;
  std::string bins_;
  std::unique_ptr<FakeKubeApi> api_;
};
TestPki* Kubernetes::pki_ = nullptr;

TEST_F(Kubernetes, ExecMetricsCarryPodLabelsAndGoAwayAfterTheGracePeriod) {
  const std::string s = random_suffix(4);
  TestPod a{"shop",          "web-7d4b9-" + s, uuid("a" + s), "node-e2e", {{"nginx", hex_id("a-nginx" + s)}},
            {{"app", "web"}}};
  TestPod b{"jobs",
            "batch-" + s,
            uuid("b" + s),
            "node-e2e",
            {{"worker", hex_id("b-worker" + s)}},
            {{"app", "batch"}, {"app.kubernetes.io/part-of", "etl"}}};
  TestPod c{"kube-system", "dns-" + s, uuid("c" + s), "node-e2e", {{"coredns", hex_id("c-coredns" + s)}}};
  c.runtime = "cri-o";
  PodCgroups cgroups;
  TestCgroup& cg_a = cgroups.container(a, a.containers[0].second, "cgroupfs", "burstable");
  TestCgroup& cg_b = cgroups.container(b, b.containers[0].second, "systemd", "besteffort");
  TestCgroup& cg_c = cgroups.container(c, c.containers[0].second, "cgroupfs", "guaranteed");
  for (const auto& p : {a, b, c}) api_->upsert(pod_json(p));

  AgentProcess agent(in_cluster_config());
  ASSERT_TRUE(agent.wait_serving()) << agent.logs();
  ASSERT_TRUE(eventually([&] { return kubernetes_synced(agent); })) << agent.get("/readyz").body;

  const std::string comm_a = "pka" + random_suffix(8), comm_b = "pkb" + random_suffix(8),
                    comm_c = "pkc" + random_suffix(8);
  for (int i = 0; i < 7; ++i) ASSERT_EQ(cg_a.run({binary(comm_a)}), 0);
  for (int i = 0; i < 5; ++i) ASSERT_EQ(cg_b.run({binary(comm_b)}), 0);
  for (int i = 0; i < 3; ++i) ASSERT_EQ(cg_c.run({binary(comm_c)}), 0);

  const std::string text = agent.get("/metrics").body;
  Scrape scrape(text);
  expect_pod_series(scrape, "podsight_process_execs_total", {{"comm", comm_a}}, a, "nginx", 7);
  expect_pod_series(scrape, "podsight_process_execs_total", {{"comm", comm_b}}, b, "worker", 5);
  expect_pod_series(scrape, "podsight_process_execs_total", {{"comm", comm_c}}, c, "coredns", 3);
  // The join metric, with the allowlisted labels under kube-state-metrics' names.
  EXPECT_EQ(scrape.value("podsight_pod_info", {{"namespace", "jobs"},
                                               {"pod", b.name},
                                               {"uid", b.uid},
                                               {"node", "node-e2e"},
                                               {"label_app", "batch"},
                                               {"label_app_kubernetes_io_part_of", "etl"},
                                               {"created_by_kind", "ReplicaSet"}}),
            1);
  EXPECT_EQ(scrape.value("podsight_pod_info", {{"pod", c.name}, {"label_app", ""}}), 1);
  EXPECT_EQ(scrape.value("podsight_kubernetes_pods"), 3);
  EXPECT_EQ(scrape.value("podsight_kubernetes_lists_total"), 1);
  EXPECT_EQ(scrape.sum("podsight_kubernetes_errors_total"), 0);
  EXPECT_EQ(undocumented_metrics(text), std::vector<std::string>{});
  EXPECT_EQ(promtool_problems(text), "");
  auto ready = nlohmann::json::parse(agent.get("/readyz").body);
  EXPECT_EQ(ready["status"], "ready");
  EXPECT_EQ(ready["kubernetes"]["state"], "synced");
  EXPECT_EQ(ready["kubernetes"]["node"], "node-e2e");
  EXPECT_EQ(ready["kubernetes"]["pods"], 3);

  // b's container ends: kubelet removes its cgroup, then the pod object goes.
  const std::uint64_t b_id = cg_b.id();
  const std::uint64_t a_id = cg_a.id();
  ASSERT_TRUE(agent_map_has_cgroup(agent.pid(), "exec_counts", b_id));
  const auto removed = std::chrono::steady_clock::now();
  cgroups.remove(cg_b);
  api_->remove(b.uid);
  // Until it is collected the series keeps its value and its pod labels; it may not go before the
  // grace period has passed.
  bool gone = false;
  while (!gone) {
    Scrape now = agent.scrape();
    const auto elapsed = std::chrono::steady_clock::now() - removed;
    auto series = one_series(now, "podsight_process_execs_total", {{"comm", comm_b}});
    if (series) {
      expect_pod_series(now, "podsight_process_execs_total", {{"comm", comm_b}}, b, "worker", 5);
      ASSERT_LT(elapsed, std::chrono::seconds(kGraceSeconds + 30)) << "never collected";
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      continue;
    }
    gone = true;
    EXPECT_GE(elapsed, std::chrono::seconds(kGraceSeconds));
    EXPECT_GE(*now.value("podsight_gc_deleted_entries_total", {{"map", "exec_counts"}}), 1);
    // The others are untouched.
    expect_pod_series(now, "podsight_process_execs_total", {{"comm", comm_a}}, a, "nginx", 7);
  }
  EXPECT_FALSE(agent_map_has_cgroup(agent.pid(), "exec_counts", b_id));
  EXPECT_TRUE(agent_map_has_cgroup(agent.pid(), "exec_counts", a_id));
  ASSERT_TRUE(eventually([&] {
    return !agent.scrape().value("podsight_pod_info", {{"pod", b.name}}).has_value();
  }));

  // SIGTERM with a watch open: the watch thread is woken and joined within the budget.
  std::chrono::milliseconds took{};
  EXPECT_EQ(agent.stop(SIGTERM, std::chrono::seconds(5), &took), 0);
  EXPECT_LT(took.count(), 2000);
}

// Receives `count` UDP datagrams on addr:port (IPv4) in a child placed in `where`; returns its pid
// once the socket is bound. The child exits 0 when all arrived.
pid_t udp_receiver(const Placement& where, const std::string& addr, int port, int count) {
  int ready[2];
  if (::pipe(ready) != 0) throw std::runtime_error("pipe");
  pid_t pid = spawn_in(where, [&] {
    ::close(ready[0]);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<std::uint16_t>(port));
    ::inet_pton(AF_INET, addr.c_str(), &sa.sin_addr);
    int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) return 1;
    timeval tv{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char byte = 1;
    if (::write(ready[1], &byte, 1) != 1) return 2;
    char buf[2048];
    for (int i = 0; i < count; ++i) {
      if (::recv(fd, buf, sizeof buf, 0) < 0) return 3;
    }
    return 0;
  });
  ::close(ready[1]);
  char byte = 0;
  const bool ok = ::read(ready[0], &byte, 1) == 1;
  ::close(ready[0]);
  if (!ok) ADD_FAILURE() << "the UDP receiver did not start";
  return pid;
}

// TCP connections and UDP datagrams between two pods' containers: a client pod with its own network
// namespace (as pods have) behind a veth, a server pod on the node. Every workload metric of the tcp
// and cgroup_skb families carries the namespace, pod and container of the container that ran the
// traffic, with exact values; TCP and UDP run in different containers, so each container's network
// counters hold exactly its own datagrams.
TEST_F(Kubernetes, TcpAndNetworkMetricsCarryPodLabels) {
  const std::string s = random_suffix(4);
  TestPod client{"shop",
                 "web-" + s,
                 uuid("web" + s),
                 "node-e2e",
                 {{"frontend", hex_id("web-fe" + s)}, {"stats", hex_id("web-st" + s)}}};
  TestPod server{"data",
                 "db-" + s,
                 uuid("db" + s),
                 "node-e2e",
                 {{"postgres", hex_id("db-pg" + s)}, {"collector", hex_id("db-co" + s)}}};
  PodCgroups cgroups;
  TestCgroup& frontend = cgroups.container(client, client.containers[0].second, "systemd", "burstable");
  TestCgroup& stats = cgroups.container(client, client.containers[1].second, "systemd", "burstable");
  TestCgroup& postgres = cgroups.container(server, server.containers[0].second, "cgroupfs", "guaranteed");
  TestCgroup& collector = cgroups.container(server, server.containers[1].second, "cgroupfs", "guaranteed");
  for (const auto& p : {client, server}) api_->upsert(pod_json(p));

  AgentProcess agent(in_cluster_config());
  ASSERT_TRUE(agent.wait_serving()) << agent.logs();
  ASSERT_TRUE(eventually([&] { return kubernetes_synced(agent); })) << agent.get("/readyz").body;

  NetNs ns;
  Veth veth(ns);
  constexpr int kConns = 4;
  constexpr std::size_t kRequest = 5000, kResponse = 700;
  TcpExchange ex({&frontend, &ns}, {&postgres, nullptr},
                 {veth.host_v4(), free_tcp_port(), kConns, kRequest, kResponse});
  ASSERT_TRUE(ex.wait_exchanged());
  constexpr int kDatagrams = 25;
  constexpr std::size_t kPayload = 400;
  const int udp_port = free_tcp_port();
  pid_t receiver = udp_receiver({&collector, nullptr}, veth.host_v4(), udp_port, kDatagrams);
  ASSERT_EQ(run_in({&stats, &ns}, [&] { return send_udp(veth.host_v4(), udp_port, kDatagrams, kPayload); }),
            0);
  ASSERT_EQ(wait_child(receiver), 0);

  Scrape open = agent.scrape();
  const auto out = [&](const TestPod& p) {
    return std::map<std::string, std::string>{{"pod", p.name}, {"direction", "outbound"}};
  };
  const auto in = [&](const TestPod& p) {
    return std::map<std::string, std::string>{{"pod", p.name}, {"direction", "inbound"}};
  };
  expect_pod_series(open, "podsight_tcp_connections_opened_total", out(client), client, "frontend", kConns);
  expect_pod_series(open, "podsight_tcp_connections_opened_total", in(server), server, "postgres", kConns);
  expect_pod_series(open, "podsight_tcp_connections_active", out(client), client, "frontend", kConns);
  // The client's sockets are in another network namespace: while they are open, their bytes are read
  // by the socket-storage iterator, or by iter_tcp from inside that namespace (setns). An agent that
  // can do neither (a kernel that refuses the iterator, run with the chart's capabilities) adds them
  // at the close, checked below.
  if (kernel_supports_tcp_sk_storage() || agents_may_setns()) {
    expect_pod_series(open, "podsight_tcp_sent_bytes_total", out(client), client, "frontend",
                      kConns * kRequest);
    expect_pod_series(open, "podsight_tcp_received_bytes_total", out(client), client, "frontend",
                      kConns * kResponse);
  } else {
    for (const char* m : {"podsight_tcp_sent_bytes_total", "podsight_tcp_received_bytes_total"}) {
      auto series = one_series(open, m, out(client));
      EXPECT_TRUE(!series || series->value == 0) << m << " " << series->value;
    }
  }
  expect_pod_series(open, "podsight_tcp_sent_bytes_total", in(server), server, "postgres",
                    kConns * kResponse);
  expect_pod_series(open, "podsight_tcp_received_bytes_total", in(server), server, "postgres",
                    kConns * kRequest);
  expect_pod_series(open, "podsight_tcp_connect_failures_total", {{"pod", client.name}}, client, "frontend",
                    0);
  // One IPv4 datagram is a 20-byte IP header, an 8-byte UDP header and the payload.
  const double udp_bytes = kDatagrams * (20.0 + 8.0 + kPayload);
  expect_pod_series(open, "podsight_network_packets_total",
                    {{"pod", client.name}, {"container", "stats"}, {"direction", "egress"}}, client, "stats",
                    kDatagrams);
  expect_pod_series(open, "podsight_network_bytes_total",
                    {{"pod", client.name}, {"container", "stats"}, {"direction", "egress"}}, client, "stats",
                    udp_bytes);
  expect_pod_series(open, "podsight_network_packets_total",
                    {{"pod", server.name}, {"container", "collector"}, {"direction", "ingress"}}, server,
                    "collector", kDatagrams);
  expect_pod_series(open, "podsight_network_bytes_total",
                    {{"pod", server.name}, {"container", "collector"}, {"direction", "ingress"}}, server,
                    "collector", udp_bytes);
  // The TCP containers' packets are labelled too (their count depends on ACKs and segmentation).
  for (const auto& [pod, container] : {std::pair{&client, "frontend"}, std::pair{&server, "postgres"}}) {
    for (const char* dir : {"egress", "ingress"}) {
      auto series = one_series(open, "podsight_network_packets_total",
                               {{"pod", pod->name}, {"container", container}, {"direction", dir}});
      ASSERT_TRUE(series.has_value()) << pod->name << " " << container << " " << dir;
      EXPECT_EQ(series->labels.at("namespace"), pod->namespace_);
      EXPECT_GE(series->value, kConns * 3) << "at least the handshakes";
    }
  }

  ASSERT_TRUE(ex.close());
  ASSERT_TRUE(eventually([&] {
    auto c = one_series(agent.scrape(), "podsight_tcp_connections_closed_total", out(client));
    return c && c->value == kConns;
  }));
  Scrape closed = agent.scrape();
  expect_pod_series(closed, "podsight_tcp_connections_closed_total", in(server), server, "postgres", kConns);
  expect_pod_series(closed, "podsight_tcp_connections_active", out(client), client, "frontend", 0);
  expect_pod_series(closed, "podsight_tcp_sent_bytes_total", out(client), client, "frontend",
                    kConns * kRequest);
  expect_pod_series(closed, "podsight_tcp_received_bytes_total", out(client), client, "frontend",
                    kConns * kResponse);
  expect_pod_series(closed, "podsight_tcp_received_bytes_total", in(server), server, "postgres",
                    kConns * kRequest);
  EXPECT_EQ(undocumented_metrics(closed.text()), std::vector<std::string>{});
  // Remote labels are opt-in: off, there is no trace of them.
  for (const auto& series : closed.series()) {
    EXPECT_EQ(series.name.rfind("podsight_tcp_remote_", 0), std::string::npos) << series.name;
    EXPECT_EQ(series.labels.count("remote"), 0u) << series.name;
  }
  EXPECT_EQ(closed.text().find("podsight_kubernetes_remote_"), std::string::npos);
}

// Addresses for the remote-label tests: the client pod's namespace behind a veth; a server pod on
// another node whose pod IPs are the veth's host addresses; a service whose cluster IP the client's
// namespace DNATs to that pod (as kube-proxy does on a node); an address on the host nobody names.
class RemoteNetwork {
 public:
  explicit RemoteNetwork(int service_port) : veth_(ns_) {
    const unsigned r = static_cast<unsigned>(std::hash<std::string>{}(random_suffix(8)));
    vip_ = "10.96." + std::to_string(r % 250 + 1) + "." + std::to_string((r >> 8) % 250 + 1);
    external_ = "100.64." + std::to_string((r >> 16) % 250 + 1) + "." + std::to_string((r >> 24) % 250 + 1);
    must({"ip", "addr", "add", external_ + "/32", "dev", veth_.host_if()});
    ns_.ip({"route", "add", vip_ + "/32", "via", veth_.host_v4()});
    ns_.ip({"route", "add", external_ + "/32", "via", veth_.host_v4()});
    must({"ip", "netns", "exec", ns_.name(), "iptables", "-t", "nat", "-A", "OUTPUT", "-d", vip_, "-p", "tcp",
          "--dport", std::to_string(service_port), "-j", "DNAT", "--to-destination",
          veth_.host_v4() + ":" + std::to_string(service_port)});
  }
  [[nodiscard]] const NetNs& ns() const { return ns_; }
  [[nodiscard]] const Veth& veth() const { return veth_; }
  [[nodiscard]] const std::string& vip() const { return vip_; }
  [[nodiscard]] const std::string& external() const { return external_; }

 private:
  static void must(const std::vector<std::string>& argv) {
    auto r = run_command(argv);
    ASSERT_EQ(r.exit_code, 0) << r.out;
  }
  NetNs ns_;
  Veth veth_;
  std::string vip_;
  std::string external_;
};

std::string remote_config(const std::string& open_connections = "auto") {
  return R"(, "programs": {"tcp": {"open_connections": ")" + open_connections +
         R"(", "remote": {"enabled": true}}})";
}

// With each way of reading open connections (their records carry the endpoint either way).
class KubernetesRemote : public Kubernetes, public ::testing::WithParamInterface<std::string> {
 protected:
  void SetUp() override {
    Kubernetes::SetUp();
    if (GetParam() == "sk_storage" && !kernel_supports_tcp_sk_storage())
      GTEST_SKIP() << "no socket storage on this kernel";
    if (GetParam() == "iter_tcp" && !agents_may_setns())
      GTEST_SKIP()
          << "iter_tcp reads other namespaces' open connections with setns(), and the agents may not";
  }
};

// Connections from a pod's container to a pod of another node (IPv4 and IPv6), to a service's cluster
// IP, to an address no pod or service has and over loopback: every outbound tcp metric by remote
// endpoint carries the right remote labels with exact values. The socket of a connection to a cluster
// IP keeps that address (the DNAT rewrites packets, not the socket), so it is labelled with the
// service, not the pod behind it.
TEST_P(KubernetesRemote, RemoteLabelsNameThePodTheServiceOrExternal) {
  const std::string s = random_suffix(4);
  const int pod_port = free_tcp_port(), svc_port = free_tcp_port(), ext_port = free_tcp_port(),
            v6_port = free_tcp_port(), local_port = free_tcp_port();
  RemoteNetwork net(svc_port);
  if (HasFatalFailure()) return;
  TestPod client{"shop",
                 "web-" + s,
                 uuid("rweb" + s),
                 "node-e2e",
                 {{"frontend", hex_id("rweb-fe" + s)}, {"cache", hex_id("rweb-ca" + s)}}};
  TestPod server{"data", "db-" + s, uuid("rdb" + s), "node-far", {{"postgres", hex_id("rdb-pg" + s)}}};
  server.pod_ip = net.veth().host_v4();
  auto server_json = pod_json(server);
  server_json["status"]["podIPs"] =
      nlohmann::json::array({{{"ip", net.veth().host_v4()}}, {{"ip", net.veth().host_v6()}}});
  PodCgroups cgroups;
  TestCgroup& frontend = cgroups.container(client, client.containers[0].second, "cgroupfs", "burstable");
  TestCgroup& cache = cgroups.container(client, client.containers[1].second, "cgroupfs", "burstable");
  TestCgroup db("podsight-k8s-db");
  api_->upsert(pod_json(client));
  api_->upsert(server_json);
  api_->upsert_service(service_json({"data", "db", uuid("rsvc" + s), {net.vip()}, svc_port}));

  AgentProcess agent(in_cluster_config(remote_config(GetParam())));
  ASSERT_TRUE(agent.wait_serving()) << agent.logs();
  ASSERT_TRUE(eventually([&] {
    auto sc = agent.scrape();
    return sc.value("podsight_tcp_open_connections_method", {{"method", GetParam()}}) == 1 &&
           sc.value("podsight_kubernetes_sync_state", {{"state", "synced"}}) == 1 &&
           sc.value("podsight_kubernetes_remote_sync_state", {{"resource", "pods"}, {"state", "synced"}}) ==
               1 &&
           sc.value("podsight_kubernetes_remote_sync_state",
                    {{"resource", "services"}, {"state", "synced"}}) == 1;
  })) << agent.get("/readyz").body;

  const Placement in_pod{&frontend, &net.ns()};
  constexpr std::size_t kReq = 3000, kResp = 500;
  TcpExchange to_pod(in_pod, {&db, nullptr}, {net.veth().host_v4(), pod_port, 3, kReq, kResp});
  TcpExchange to_pod6(in_pod, {&db, nullptr}, {net.veth().host_v6(), v6_port, 2, kReq, kResp});
  TcpExchange to_svc(in_pod, {&db, nullptr},
                     {net.veth().host_v4(), svc_port, 4, kReq, kResp, false, net.vip()});
  TcpExchange to_ext(in_pod, {&db, nullptr}, {net.external(), ext_port, 2, kReq, kResp});
  TcpExchange to_local(in_pod, {&cache, &net.ns()}, {"127.0.0.1", local_port, 1, kReq, kResp});
  for (auto* ex : {&to_pod, &to_pod6, &to_svc, &to_ext, &to_local}) ASSERT_TRUE(ex->wait_exchanged());
  ASSERT_EQ(run_in(in_pod, [&] { return tcp_connect_once(net.veth().host_v4(), free_tcp_port()); }),
            ECONNREFUSED);

  auto remote = [&](const std::string& kind, const std::string& ns = "", const std::string& pod = "",
                    const std::string& service = "") {
    return std::map<std::string, std::string>{{"pod", client.name}, {"container", "frontend"},
                                              {"remote", kind},     {"remote_namespace", ns},
                                              {"remote_pod", pod},  {"remote_service", service}};
  };
  const auto to_db = remote("pod", "data", server.name);
  const auto to_db_svc = remote("service", "data", "", "db");
  Scrape open = agent.scrape();
  expect_pod_series(open, "podsight_tcp_remote_connections_opened_total", to_db, client, "frontend", 5);
  expect_pod_series(open, "podsight_tcp_remote_connections_active", to_db, client, "frontend", 5);
  expect_pod_series(open, "podsight_tcp_remote_sent_bytes_total", to_db, client, "frontend", 5 * kReq);
  expect_pod_series(open, "podsight_tcp_remote_received_bytes_total", to_db, client, "frontend", 5 * kResp);
  expect_pod_series(open, "podsight_tcp_remote_connect_failures_total", to_db, client, "frontend", 1);
  expect_pod_series(open, "podsight_tcp_remote_retransmits_total", to_db, client, "frontend", 0);
  expect_pod_series(open, "podsight_tcp_remote_connections_opened_total", to_db_svc, client, "frontend", 4);
  expect_pod_series(open, "podsight_tcp_remote_sent_bytes_total", to_db_svc, client, "frontend", 4 * kReq);
  expect_pod_series(open, "podsight_tcp_remote_received_bytes_total", to_db_svc, client, "frontend",
                    4 * kResp);
  expect_pod_series(open, "podsight_tcp_remote_connect_failures_total", to_db_svc, client, "frontend", 0);
  expect_pod_series(open, "podsight_tcp_remote_connections_opened_total", remote("external"), client,
                    "frontend", 2);
  expect_pod_series(open, "podsight_tcp_remote_sent_bytes_total", remote("external"), client, "frontend",
                    2 * kReq);
  expect_pod_series(open, "podsight_tcp_remote_connections_opened_total", remote("local"), client, "frontend",
                    1);
  // Inbound connections (the db's accepted ones, the cache's) have no remote series.
  for (const auto& series : open.series()) {
    if (series.name.rfind("podsight_tcp_remote_", 0) != 0) continue;
    EXPECT_NE(series.labels.at("container"), "cache");
    EXPECT_NE(series.labels.at("cgroup"), db.relative());
  }
  // The workload's own counters are unchanged by it: all 12 outbound connections, one failure.
  expect_pod_series(open, "podsight_tcp_connections_opened_total",
                    {{"pod", client.name}, {"container", "frontend"}, {"direction", "outbound"}}, client,
                    "frontend", 12);
  EXPECT_EQ(open.value("podsight_kubernetes_remote_addresses", {{"remote", "service"}}), 1);
  EXPECT_GE(open.value("podsight_kubernetes_remote_addresses", {{"remote", "pod"}}).value_or(0), 3);
  EXPECT_EQ(undocumented_metrics(open.text()), std::vector<std::string>{});
  EXPECT_EQ(promtool_problems(open.text()), "");
  auto ready = nlohmann::json::parse(agent.get("/readyz").body);
  EXPECT_EQ(ready["kubernetes"]["remote"]["services"]["state"], "synced") << ready.dump();

  for (auto* ex : {&to_pod, &to_pod6, &to_svc, &to_ext, &to_local}) ASSERT_TRUE(ex->close());
  ASSERT_TRUE(eventually([&] {
    auto a = one_series(agent.scrape(), "podsight_tcp_remote_connections_active", to_db);
    return a && a->value == 0;
  }));
  Scrape closed = agent.scrape();
  expect_pod_series(closed, "podsight_tcp_remote_sent_bytes_total", to_db, client, "frontend", 5 * kReq);
  expect_pod_series(closed, "podsight_tcp_remote_received_bytes_total", to_db_svc, client, "frontend",
                    4 * kResp);
  expect_pod_series(closed, "podsight_tcp_remote_connections_active", to_db_svc, client, "frontend", 0);

  // The db pod goes and its address is taken by another pod: new connections are the new pod's, the
  // old pod's series keep their labels and values.
  api_->remove(server.uid);
  TestPod next{"data", "db2-" + s, uuid("rdb2" + s), "node-far", {{"postgres", hex_id("rdb2-pg" + s)}}};
  next.pod_ip = net.veth().host_v4();
  api_->upsert(pod_json(next));
  ASSERT_TRUE(eventually([&] {
    return agent.scrape().value("podsight_kubernetes_remote_addresses", {{"remote", "pod"}}).value_or(0) >=
               2 &&
           agent.get("/readyz").status == 200;
  }));
  ASSERT_TRUE(eventually([&] {
    TcpExchange again(in_pod, {&db, nullptr}, {net.veth().host_v4(), free_tcp_port(), 1, 10, 10});
    if (!again.wait_exchanged() || !again.close()) return false;
    return one_series(agent.scrape(), "podsight_tcp_remote_connections_opened_total",
                      remote("pod", "data", next.name))
        .has_value();
  }));
  Scrape moved = agent.scrape();
  expect_pod_series(moved, "podsight_tcp_remote_connections_opened_total", to_db, client, "frontend", 5);
}

INSTANTIATE_TEST_SUITE_P(Methods, KubernetesRemote, ::testing::Values("sk_storage", "iter_tcp"),
                         [](const auto& info) { return info.param; });

// Remote series are under the series limit like any other. Labels other than `remote` are dropped so
// that every other workload on this shared host falls into the `local` and `external` series: with a
// limit of three, those two and the first of ours get places, the second of ours is folded, exactly.
TEST_F(Kubernetes, RemoteSeriesFoldIntoTheOverflowSeries) {
  const std::string s = random_suffix(4);
  const int pod_port = free_tcp_port(), svc_port = free_tcp_port();
  RemoteNetwork net(svc_port);
  if (HasFatalFailure()) return;
  TestPod client{"shop", "web-" + s, uuid("bweb" + s), "node-e2e", {{"frontend", hex_id("bweb-fe" + s)}}};
  TestPod server{"data", "db-" + s, uuid("bdb" + s), "node-far", {{"postgres", hex_id("bdb-pg" + s)}}};
  server.pod_ip = net.veth().host_v4();
  PodCgroups cgroups;
  TestCgroup& frontend = cgroups.container(client, client.containers[0].second, "cgroupfs", "burstable");
  TestCgroup db("podsight-k8s-db");
  api_->upsert(pod_json(client));
  api_->upsert(pod_json(server));
  api_->upsert_service(service_json({"data", "db", uuid("bsvc" + s), {net.vip()}, svc_port}));
  AgentProcess agent(
      in_cluster_config(remote_config() + R"(, "cardinality": {"drop_labels": ["namespace", "pod",
      "container", "cgroup", "remote_namespace", "remote_pod", "remote_service"],
      "family_max_series": {"podsight_tcp_remote_connections_opened_total": 3}})"));
  ASSERT_TRUE(agent.wait_serving()) << agent.logs();
  ASSERT_TRUE(eventually([&] {
    auto sc = agent.scrape();
    return sc.value("podsight_kubernetes_remote_sync_state", {{"resource", "pods"}, {"state", "synced"}}) ==
               1 &&
           sc.value("podsight_kubernetes_remote_sync_state",
                    {{"resource", "services"}, {"state", "synced"}}) == 1;
  }));
  // An outbound attempt to an address nobody names: the `external` series exists from now on (the
  // scrapes themselves make the `local` one).
  ASSERT_EQ(tcp_connect_once(net.external(), free_tcp_port()), ECONNREFUSED);
  const std::string family = "podsight_tcp_remote_connections_opened_total";
  Scrape first = agent.scrape();
  ASSERT_TRUE(one_series(first, family, {{"remote", "external"}}).has_value()) << first.text();
  ASSERT_TRUE(one_series(first, family, {{"remote", "local"}}).has_value()) << first.text();
  ASSERT_FALSE(one_series(first, family, {{"overflow", "true"}}).has_value()) << first.text();

  const Placement in_pod{&frontend, &net.ns()};
  {
    TcpExchange ex(in_pod, {&db, nullptr}, {net.veth().host_v4(), pod_port, 3, 100, 100});
    ASSERT_TRUE(ex.wait_exchanged());
    ASSERT_TRUE(ex.close());
  }
  auto pod = one_series(agent.scrape(), family, {{"remote", "pod"}});
  ASSERT_TRUE(pod.has_value());
  EXPECT_EQ(pod->value, 3);
  {
    TcpExchange ex(in_pod, {&db, nullptr}, {net.veth().host_v4(), svc_port, 4, 100, 100, false, net.vip()});
    ASSERT_TRUE(ex.wait_exchanged());
    ASSERT_TRUE(ex.close());
  }
  Scrape last = agent.scrape();
  EXPECT_FALSE(one_series(last, family, {{"remote", "service"}}).has_value()) << last.text();
  auto overflow = one_series(last, family, {{"overflow", "true"}});
  ASSERT_TRUE(overflow.has_value()) << last.text();
  EXPECT_EQ(overflow->value, 4);
  EXPECT_EQ(overflow->labels.at("remote"), "");
  EXPECT_EQ(last.value("podsight_series_dropped_total", {{"family", family}}), 1);
  pod = one_series(last, family, {{"remote", "pod"}});
  ASSERT_TRUE(pod.has_value());
  EXPECT_EQ(pod->value, 3);
}

TEST_F(Kubernetes, KubeconfigAndAnUnreachableApiServer) {
  const std::string s = random_suffix(4);
  TestPod p{"shop", "cart-" + s, uuid("p" + s), "node-e2e", {{"cart", hex_id("p-cart" + s)}}};
  PodCgroups cgroups;
  TestCgroup& cg = cgroups.container(p, p.containers[0].second, "systemd", "guaranteed");
  api_->upsert(pod_json(p));
  const std::string comm = "pkk" + random_suffix(8);

  // Nothing listens where the kubeconfig points: the agent serves metrics, labels by path, says so.
  int closed_port = free_tcp_port();
  {
    AgentProcess agent(kubeconfig_config(closed_port));
    ASSERT_TRUE(agent.wait_serving()) << agent.logs();
    ASSERT_TRUE(eventually([&] {
      return agent.scrape().value("podsight_kubernetes_errors_total", {{"reason", "connect"}}).value_or(0) >=
             1;
    }));
    auto ready = agent.get("/readyz");
    EXPECT_EQ(ready.status, 200) << ready.body;
    auto doc = nlohmann::json::parse(ready.body);
    EXPECT_EQ(doc["status"], "degraded");
    EXPECT_EQ(doc["kubernetes"]["state"], "connecting");
    EXPECT_NE(doc["kubernetes"]["error"].get<std::string>().find("connect"), std::string::npos);
    ASSERT_EQ(cg.run({binary(comm)}), 0);
    Scrape scrape = agent.scrape();
    auto series = one_series(scrape, "podsight_process_execs_total", {{"comm", comm}});
    ASSERT_TRUE(series.has_value());
    EXPECT_EQ(series->labels.at("cgroup"), cg.relative());
    EXPECT_EQ(series->labels.at("pod"), "");
    EXPECT_EQ(series->value, 1);
    EXPECT_EQ(scrape.value("podsight_kubernetes_sync_state", {{"state", "connecting"}}), 1);
  }

  // The API answers, but with errors at first: still degraded; then it recovers and labels appear.
  api_->fail_next(503, 1000000);
  AgentProcess agent(kubeconfig_config(api_->port()));
  ASSERT_TRUE(agent.wait_serving()) << agent.logs();
  ASSERT_TRUE(eventually([&] {
    return agent.scrape().value("podsight_kubernetes_errors_total", {{"reason", "http"}}).value_or(0) >= 2;
  }));
  EXPECT_EQ(nlohmann::json::parse(agent.get("/readyz").body)["status"], "degraded");
  for (int i = 0; i < 4; ++i) ASSERT_EQ(cg.run({binary(comm)}), 0);
  api_->fail_next(0, 0);
  ASSERT_TRUE(eventually([&] { return kubernetes_synced(agent); }));
  expect_pod_series(agent.scrape(), "podsight_process_execs_total", {{"comm", comm}}, p, "cart", 4);
  EXPECT_EQ(nlohmann::json::parse(agent.get("/readyz").body)["status"], "ready");
  EXPECT_EQ(api_->requests().back().authorization, "Bearer e2e-token");
}

// The API server goes away after the agent synced (its port closed, the watch cut) and comes back
// with what the cluster did meanwhile: metrics flow all along, known pods keep their labels, /readyz
// and podsight_kubernetes_* say "stale", and once the server is back a pod created while it was away
// gets its labels on the counts its container made before the agent knew it.
TEST_F(Kubernetes, ApiServerDownKeepsMetricsAndIdentityRecoversWhenItIsBack) {
  const std::string s = random_suffix(4);
  TestPod known{"shop", "known-" + s, uuid("k" + s), "node-e2e", {{"app", hex_id("k-app" + s)}}};
  TestPod late{"shop", "late-" + s, uuid("l" + s), "node-e2e", {{"app", hex_id("l-app" + s)}}};
  PodCgroups cgroups;
  TestCgroup& cg_known = cgroups.container(known, known.containers[0].second, "systemd", "burstable");
  TestCgroup& cg_late = cgroups.container(late, late.containers[0].second, "cgroupfs", "besteffort");
  api_->upsert(pod_json(known));
  const std::string comm_known = "pdk" + random_suffix(8), comm_late = "pdl" + random_suffix(8);

  AgentProcess agent(in_cluster_config());
  ASSERT_TRUE(agent.wait_serving()) << agent.logs();
  ASSERT_TRUE(eventually([&] { return kubernetes_synced(agent); })) << agent.get("/readyz").body;
  for (int i = 0; i < 2; ++i) ASSERT_EQ(cg_known.run({binary(comm_known)}), 0);
  expect_pod_series(agent.scrape(), "podsight_process_execs_total", {{"comm", comm_known}}, known, "app", 2);

  api_->stop_serving();
  ASSERT_TRUE(eventually([&] {
    return agent.scrape().value("podsight_kubernetes_sync_state", {{"state", "stale"}}) == 1;
  })) << agent.get("/readyz").body;
  ASSERT_TRUE(eventually([&] {
    return agent.scrape().value("podsight_kubernetes_errors_total", {{"reason", "connect"}}).value_or(0) >= 1;
  }));
  auto ready = agent.get("/readyz");
  EXPECT_EQ(ready.status, 200) << ready.body;
  auto doc = nlohmann::json::parse(ready.body);
  EXPECT_EQ(doc["status"], "degraded");
  EXPECT_EQ(doc["kubernetes"]["state"], "stale");
  EXPECT_NE(doc["kubernetes"]["error"].get<std::string>().find("connect"), std::string::npos) << ready.body;
  // Counting goes on; the known pod keeps its labels; the pod the agent has not heard of is labelled
  // by its cgroup path.
  api_->upsert(pod_json(late));
  for (int i = 0; i < 3; ++i) ASSERT_EQ(cg_known.run({binary(comm_known)}), 0);
  for (int i = 0; i < 4; ++i) ASSERT_EQ(cg_late.run({binary(comm_late)}), 0);
  Scrape down = agent.scrape();
  expect_pod_series(down, "podsight_process_execs_total", {{"comm", comm_known}}, known, "app", 5);
  auto unlabelled = one_series(down, "podsight_process_execs_total", {{"comm", comm_late}});
  ASSERT_TRUE(unlabelled.has_value()) << down.text();
  EXPECT_EQ(unlabelled->labels.at("cgroup"), cg_late.relative());
  EXPECT_EQ(unlabelled->labels.at("pod"), "");
  EXPECT_EQ(unlabelled->value, 4);
  EXPECT_EQ(down.value("podsight_kubernetes_pods"), 1);
  EXPECT_EQ(promtool_problems(down.text()), "");

  api_->serve_again();
  ASSERT_TRUE(eventually([&] { return kubernetes_synced(agent); }, std::chrono::seconds(60)))
      << agent.get("/readyz").body;
  // In sync means the watch runs again; the event it replays may be applied just after.
  ASSERT_TRUE(eventually([&] { return agent.scrape().value("podsight_kubernetes_pods") == 2; }));
  Scrape back = agent.scrape();
  expect_pod_series(back, "podsight_process_execs_total", {{"comm", comm_known}}, known, "app", 5);
  expect_pod_series(back, "podsight_process_execs_total", {{"comm", comm_late}}, late, "app", 4);
  EXPECT_EQ(back.value("podsight_kubernetes_pods"), 2);
  EXPECT_EQ(back.value("podsight_kubernetes_sync_state", {{"state", "stale"}}), 0);
  ready = agent.get("/readyz");
  EXPECT_EQ(ready.status, 200);
  EXPECT_EQ(nlohmann::json::parse(ready.body)["status"], "ready") << ready.body;
  EXPECT_TRUE(agent.running());
}

TEST_F(Kubernetes, SeriesLimitFoldsExactlyTheExcess) {
  const std::string s = random_suffix(4);
  std::vector<TestPod> pods;
  PodCgroups cgroups;
  std::vector<TestCgroup*> cgs;
  for (int i = 0; i < 3; ++i) {
    const std::string n = std::to_string(i);
    pods.push_back({"shop", "w" + n + "-" + s, uuid(n + s), "node-e2e", {{"app", hex_id(n + "-app" + s)}}});
    cgs.push_back(
        &cgroups.container(pods.back(), pods.back().containers[0].second, "cgroupfs", "besteffort"));
    api_->upsert(pod_json(pods.back()));
  }
  // comm and cgroup blanked: every process outside our pods is one series, each pod container one.
  AgentProcess agent(in_cluster_config(R"(, "cardinality": {"drop_labels": ["comm", "cgroup"],
      "family_max_series": {"podsight_process_execs_total": 2, "podsight_pod_info": 2}})"));
  ASSERT_TRUE(agent.wait_serving()) << agent.logs();
  ASSERT_TRUE(eventually([&] { return kubernetes_synced(agent); }));
  // The host's series first (an exec outside any pod), so it is admitted before ours appear.
  TestCgroup host;
  ASSERT_EQ(host.run({"/bin/true"}), 0);
  Scrape first = agent.scrape();
  ASSERT_TRUE(one_series(first, "podsight_process_execs_total", {{"pod", ""}, {"overflow", ""}}).has_value());
  // pod_info: three pods, two places: exactly one folded.
  EXPECT_EQ(first.count("podsight_pod_info"), 3u);
  EXPECT_EQ(first.value("podsight_pod_info", {{"overflow", "true"}}), 1);
  EXPECT_EQ(first.value("podsight_series_dropped_total", {{"family", "podsight_pod_info"}}), 1);

  const std::vector<int> runs = {3, 5, 7};
  for (std::size_t i = 0; i < pods.size(); ++i) {
    for (int r = 0; r < runs[i]; ++r) ASSERT_EQ(cgs[i]->run({"/bin/true"}), 0);
  }
  auto check = [&](const Scrape& sc, const std::vector<int>& counts) -> std::string {
    // Exactly two own series: the host's and one pod's; the other two pods' counts in the overflow.
    std::string admitted;
    double admitted_value = 0;
    std::size_t own = 0;
    for (const auto& ser : sc.series()) {
      if (ser.name != "podsight_process_execs_total" || ser.labels.count("overflow")) continue;
      ++own;
      if (!ser.labels.at("pod").empty()) {
        admitted = ser.labels.at("pod");
        admitted_value = ser.value;
      }
    }
    EXPECT_EQ(own, 2u) << sc.text();
    double total = 0;
    for (std::size_t i = 0; i < pods.size(); ++i) {
      total += counts[i];
      if (pods[i].name == admitted) EXPECT_EQ(admitted_value, counts[i]);
    }
    auto overflow = one_series(sc, "podsight_process_execs_total", {{"overflow", "true"}});
    EXPECT_TRUE(overflow.has_value());
    if (overflow) {
      EXPECT_EQ(overflow->value, total - admitted_value);
      EXPECT_EQ(overflow->labels.at("namespace"), "");
      EXPECT_EQ(overflow->labels.at("pod"), "");
      EXPECT_EQ(overflow->labels.at("comm"), "");
    }
    EXPECT_EQ(sc.value("podsight_series_dropped_total", {{"family", "podsight_process_execs_total"}}), 2);
    return admitted;
  };
  const std::string admitted = check(agent.scrape(), runs);
  EXPECT_FALSE(admitted.empty());
  // More of the same: the same pod keeps its place, the others keep counting in the overflow.
  for (std::size_t i = 0; i < pods.size(); ++i) ASSERT_EQ(cgs[i]->run({"/bin/true"}), 0);
  EXPECT_EQ(check(agent.scrape(), {4, 6, 8}), admitted);
}

}  // namespace
}  // namespace podsight::testing
