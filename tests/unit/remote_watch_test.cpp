// Cluster pods and services for the remote-address index: decoding of lists and watch events (only
// the fields used, from full API objects; invalid items skipped with a reason; hostile input), and
// the list/watch of both collections against the test API server feeding the index.
#include "metadata/remote_watch.hpp"

#include "support/kube_api.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace podsight::metadata {
namespace {

using nlohmann::json;
using testing::eventually;
using testing::FakeKubeApi;
using testing::pod_json;
using testing::service_json;
using testing::TestPki;
using testing::TestPod;
using testing::TestService;

TestPod test_pod(const std::string& name, const std::string& uid, const std::string& node,
                 const std::string& ip) {
  TestPod p{"shop", name, uid, node, {{"app", std::string(64, 'a')}}};
  p.pod_ip = ip;
  return p;
}

std::string list_of(const std::string& kind, const std::vector<json>& items, const std::string& cont = "") {
  json l = {
      {"kind", kind}, {"apiVersion", "v1"}, {"metadata", {{"resourceVersion", "42"}}}, {"items", items}};
  if (!cont.empty()) l["metadata"]["continue"] = cont;
  return l.dump();
}

TEST(RemoteDecode, PodListKeepsWhatTheIndexUses) {
  json dual = pod_json(test_pod("web-1", "u1", "node-a", "10.244.1.7"));
  dual["status"]["podIPs"] = json::array({{{"ip", "10.244.1.7"}}, {{"ip", "fd00::1:7"}}});
  dual["status"]["hostIPs"] = json::array({{{"ip", "192.168.1.10"}}, {{"ip", "fd01::10"}}});
  json done = pod_json(test_pod("job-1", "u2", "node-b", "10.244.2.3"));
  done["status"]["phase"] = "Succeeded";
  json host = pod_json(test_pod("exporter", "u3", "node-b", "192.168.1.11"));
  host["spec"]["hostNetwork"] = true;
  json pending = pod_json(test_pod("new", "u4", "", ""));
  pending["status"].erase("podIP");
  pending["status"].erase("podIPs");
  pending["status"].erase("hostIP");

  auto l = decode_remote_pod_list(list_of("PodList", {dual, done, host, pending}, "c1"));
  ASSERT_TRUE(l.ok()) << l.error().message();
  EXPECT_EQ(l->resource_version, "42");
  EXPECT_EQ(l->continue_token, "c1");
  EXPECT_EQ(l->skipped, 0u);
  ASSERT_EQ(l->items.size(), 4u);
  EXPECT_EQ(l->items[0], (RemotePod{"u1",
                                    "shop",
                                    "web-1",
                                    "node-a",
                                    {"192.168.1.10", "fd01::10"},
                                    {"10.244.1.7", "fd00::1:7"},
                                    false,
                                    false}));
  EXPECT_TRUE(l->items[1].terminated);
  EXPECT_EQ(l->items[1].ips, std::vector<std::string>{"10.244.2.3"});
  EXPECT_EQ(l->items[1].host_ips, std::vector<std::string>{"192.168.1.10"});
  EXPECT_TRUE(l->items[2].host_network);
  EXPECT_TRUE(l->items[3].ips.empty());
  EXPECT_TRUE(l->items[3].host_ips.empty());
  EXPECT_TRUE(l->items[3].node.empty());
}

TEST(RemoteDecode, InvalidItemsAreSkippedWithTheFirstReason) {
  json no_uid = pod_json(test_pod("a", "u1", "n", "10.0.0.1"));
  no_uid["metadata"].erase("uid");
  json bad_ips = pod_json(test_pod("b", "u2", "n", "10.0.0.2"));
  bad_ips["status"]["podIPs"] = "10.0.0.2";
  json many = pod_json(test_pod("c", "u3", "n", "10.0.0.3"));
  many["status"]["podIPs"] = json::array();
  for (int i = 0; i < 17; ++i) many["status"]["podIPs"].push_back({{"ip", "10.0.1." + std::to_string(i)}});
  json bad_bool = pod_json(test_pod("d", "u4", "n", "10.0.0.4"));
  bad_bool["spec"]["hostNetwork"] = "yes";
  json long_name = pod_json(test_pod(std::string(2000, 'x'), "u5", "n", "10.0.0.5"));
  json good = pod_json(test_pod("e", "u6", "n", "10.0.0.6"));
  auto l =
      decode_remote_pod_list(list_of("PodList", {no_uid, bad_ips, many, bad_bool, long_name, good, json(7)}));
  ASSERT_TRUE(l.ok()) << l.error().message();
  ASSERT_EQ(l->items.size(), 1u);
  EXPECT_EQ(l->items[0].name, "e");
  EXPECT_EQ(l->skipped, 6u);
  EXPECT_NE(l->first_skip_reason.find("missing"), std::string::npos) << l->first_skip_reason;

  for (const char* doc :
       {"", "[]", "{", "{\"items\": []}", R"({"metadata": {"resourceVersion": "1"}, "items": 3})",
        R"({"metadata": {"resourceVersion": 5}, "items": []})"}) {
    EXPECT_FALSE(decode_remote_pod_list(doc).ok()) << doc;
  }
  // Whatever else an object carries, however deep, is dropped as it is read.
  json deep = pod_json(test_pod("f", "u7", "n", "10.0.0.7"));
  std::string nested(200000, '[');
  nested += std::string(200000, ']');
  std::string text = list_of("PodList", {deep});
  text.insert(text.find("\"kind\""), "\"junk\": " + nested + ", ");
  auto d = decode_remote_pod_list(text);
  ASSERT_TRUE(d.ok()) << d.error().message();
  EXPECT_EQ(d->items.size(), 1u);
}

TEST(RemoteDecode, ServicesAndEvents) {
  json svc = service_json({"shop", "db", "s1", {"10.96.0.20", "fd02::20"}});
  svc["spec"]["externalIPs"] = json::array({"203.0.113.5"});
  svc["status"]["loadBalancer"]["ingress"] =
      json::array({{{"ip", "198.51.100.7"}}, {{"hostname", "lb.example.com"}}});
  json headless = service_json({"shop", "peers", "s2", {"None"}});
  auto l = decode_service_list(list_of("ServiceList", {svc, headless}));
  ASSERT_TRUE(l.ok()) << l.error().message();
  ASSERT_EQ(l->items.size(), 2u);
  EXPECT_EQ(l->items[0],
            (RemoteService{"s1", "shop", "db", {"10.96.0.20", "fd02::20", "203.0.113.5", "198.51.100.7"}}));
  EXPECT_EQ(l->items[1].ips, std::vector<std::string>{"None"});

  auto added = decode_service_event(json{{"type", "ADDED"}, {"object", svc}}.dump());
  ASSERT_TRUE(added.ok()) << added.error().message();
  EXPECT_EQ(added->type, EventType::kAdded);
  EXPECT_EQ(added->object.name, "db");
  auto deleted = decode_remote_pod_event(
      json{{"type", "DELETED"}, {"object", pod_json(test_pod("a", "u1", "n", "10.0.0.1"))}}.dump());
  ASSERT_TRUE(deleted.ok());
  EXPECT_EQ(deleted->type, EventType::kDeleted);
  EXPECT_EQ(deleted->object.uid, "u1");
  auto bookmark = decode_remote_pod_event(
      R"({"type": "BOOKMARK", "object": {"kind": "Pod", "metadata": {"resourceVersion": "77"}}})");
  ASSERT_TRUE(bookmark.ok());
  EXPECT_EQ(bookmark->type, EventType::kBookmark);
  EXPECT_EQ(bookmark->resource_version, "77");
  auto gone = decode_service_event(
      R"({"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"}})");
  ASSERT_TRUE(gone.ok());
  EXPECT_EQ(gone->type, EventType::kError);
  EXPECT_EQ(gone->code, 410);
  EXPECT_EQ(gone->message, "too old");
  for (const char* bad : {R"({"type": "ADDED"})", R"({"type": "SOMETHING", "object": {}})",
                          R"({"type": "ADDED", "object": {"metadata": {}}})", R"({"type": 1, "object": {}})",
                          R"({"type": "BOOKMARK", "object": {}})", "not json"}) {
    EXPECT_FALSE(decode_service_event(bad).ok()) << bad;
  }
}

// Both collections listed and watched from the test API server into one index.
class RemoteWatch : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { pki_ = new TestPki(); }
  static void TearDownTestSuite() { delete pki_; }
  void SetUp() override {
    char tmpl[] = "/tmp/podsight-remote-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    std::ofstream(dir_ + "/token") << "test-token\n";
    api_ = std::make_unique<FakeKubeApi>(*pki_, FakeKubeApi::Options{});
  }
  void TearDown() override {
    for (auto& w : watchers_) w->stop();
    watchers_.clear();
    api_.reset();
    std::filesystem::remove_all(dir_);
  }
  void watch() {
    ApiServer s;
    s.host = "127.0.0.1";
    s.port = api_->port();
    s.ca_file = pki_->ca_cert();
    s.token_file = dir_ + "/token";
    s.source = "test";
    WatchOptions o;
    o.request_timeout = std::chrono::seconds(5);
    o.backoff_initial = std::chrono::milliseconds(20);
    o.backoff_max = std::chrono::milliseconds(100);
    o.page_size = 2;
    watchers_.push_back(
        std::make_unique<Watcher>(s, o, std::make_unique<ClusterPods>(index_, DecodeLimits{})));
    watchers_.push_back(std::make_unique<Watcher>(s, o, std::make_unique<Services>(index_, DecodeLimits{})));
    for (auto& w : watchers_) w->start();
  }
  std::optional<RemoteLabels> who(const char* ip) const {
    auto id = index_.lookup(*parse_address(ip));
    return id ? index_.labels(*id) : std::nullopt;
  }

  static TestPki* pki_;
  std::string dir_;
  std::unique_ptr<FakeKubeApi> api_;
  RemoteIndex index_{1000};
  std::vector<std::unique_ptr<Watcher>> watchers_;
};
TestPki* RemoteWatch::pki_ = nullptr;

TEST_F(RemoteWatch, PodsOfEveryNodeAndServicesAreIndexedAndFollowed) {
  api_->upsert(pod_json(test_pod("web-1", "u1", "node-a", "10.244.1.7")));
  api_->upsert(pod_json(test_pod("web-2", "u2", "node-b", "10.244.2.7")));
  api_->upsert(pod_json(test_pod("web-3", "u3", "node-c", "10.244.3.7")));
  api_->upsert_service(service_json({"shop", "web", "s1", {"10.96.0.10"}}));
  watch();
  ASSERT_TRUE(eventually([&] { return who("10.244.3.7") && who("10.96.0.10"); }));
  EXPECT_EQ(who("10.244.2.7")->pod, "web-2");
  EXPECT_EQ(who("10.96.0.10")->service, "web");
  for (const auto& r : api_->requests()) {
    EXPECT_EQ(r.params.count("fieldSelector"), 0u) << r.path << ": the whole cluster is listed";
  }
  ASSERT_TRUE(eventually([&] { return api_->open_watches() == 2; }));

  api_->remove("u2");
  api_->upsert(pod_json(test_pod("web-4", "u4", "node-b", "10.244.2.7")));
  api_->upsert_service(service_json({"shop", "db", "s2", {"10.96.0.20"}}));
  api_->remove_service("s1");
  ASSERT_TRUE(eventually([&] { return who("10.96.0.20") && !who("10.96.0.10"); }));
  ASSERT_TRUE(eventually([&] { return who("10.244.2.7") && who("10.244.2.7")->pod == "web-4"; }));
  EXPECT_EQ(who("10.96.0.20")->service, "db");
  EXPECT_EQ(watchers_[0]->status().state, SyncState::kSynced);
  EXPECT_EQ(watchers_[1]->status().state, SyncState::kSynced);
}

}  // namespace
}  // namespace podsight::metadata
