// The pod watcher against a test API server that speaks the real list/watch protocol over TLS with a
// bearer token: list then watch, pagination, events split anywhere in a chunked stream, bookmarks,
// 410 Gone (as an event, as a status, for continue tokens), dropped connections, truncated and
// malformed JSON, wrong types, token rotation, a wrong CA, oversized data, and stopping at once.
#include "metadata/kube_watch.hpp"

#include "support/kube_api.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace podsight::metadata {
namespace {

using testing::eventually;
using testing::FakeKubeApi;
using testing::pod_json;
using testing::TestPki;
using testing::TestPod;

std::string id(char c) { return std::string(64, c); }

TestPod web() {
  return {"shop",   "web-5d8f7-abcde",    "11111111-1111-4111-8111-111111111111",
          "node-a", {{"nginx", id('a')}}, {{"app", "web"}}};
}
TestPod db() {
  return {"shop",         "db-0", "22222222-2222-4222-8222-222222222222", "node-a", {{"postgres", id('b')}},
          {{"app", "db"}}};
}
TestPod elsewhere() {
  return {"shop", "web-5d8f7-zzzzz", "33333333-3333-4333-8333-333333333333", "node-b", {{"nginx", id('c')}}};
}

class KubeWatch : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { pki_ = new TestPki(); }
  static void TearDownTestSuite() { delete pki_; }

  void SetUp() override {
    char tmpl[] = "/tmp/podsight-watch-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    write_token("test-token");
  }
  void TearDown() override {
    if (watcher_) watcher_->stop();
    watcher_.reset();
    api_.reset();
    std::filesystem::remove_all(dir_);
  }

  void write_token(const std::string& token) {
    // Like kubelet: a new file renamed over the old one.
    std::ofstream(dir_ + "/token.new") << token << "\n";
    std::filesystem::rename(dir_ + "/token.new", dir_ + "/token");
  }

  FakeKubeApi& serve(FakeKubeApi::Options o = {}) {
    api_ = std::make_unique<FakeKubeApi>(*pki_, o);
    return *api_;
  }

  ApiServer server(const std::string& ca_file = "") const {
    ApiServer s;
    s.host = "127.0.0.1";
    s.port = api_->port();
    s.ca_file = ca_file.empty() ? pki_->ca_cert() : ca_file;
    s.token_file = dir_ + "/token";
    s.source = "test";
    return s;
  }

  WatchOptions options() const {
    WatchOptions o;
    o.node_name = "node-a";
    o.labels.names = {"app"};
    o.request_timeout = std::chrono::seconds(5);
    o.backoff_initial = std::chrono::milliseconds(20);
    o.backoff_max = std::chrono::milliseconds(100);
    o.watch_timeout_min = std::chrono::seconds(300);
    o.watch_timeout_max = std::chrono::seconds(300);
    return o;
  }

  PodWatcher& watch(WatchOptions o, const std::string& ca_file = "") {
    watcher_ = std::make_unique<PodWatcher>(server(ca_file), std::move(o), store_);
    watcher_->start();
    return *watcher_;
  }
  PodWatcher& watch() { return watch(options()); }

  bool synced() const { return watcher_->status().state == SyncState::kSynced; }
  bool knows(const TestPod& p) const { return store_.identify(p.uid, "", false).has_value(); }
  std::optional<std::string> container(const TestPod& p, const std::string& cid) const {
    auto i = store_.identify(p.uid, cid, false);
    return i ? std::optional<std::string>(i->container) : std::nullopt;
  }
  // Requests of one kind, in order.
  std::vector<FakeKubeApi::Request> requests(bool watches) const {
    std::vector<FakeKubeApi::Request> out;
    for (const auto& r : api_->requests()) {
      if (r.watch == watches) out.push_back(r);
    }
    return out;
  }

  static TestPki* pki_;
  std::string dir_;
  std::unique_ptr<FakeKubeApi> api_;
  PodStore store_;
  std::unique_ptr<PodWatcher> watcher_;
};
TestPki* KubeWatch::pki_ = nullptr;

TEST_F(KubeWatch, ListsThenWatchesThisNodesPods) {
  auto& api = serve();
  api.upsert(pod_json(web()));
  api.upsert(pod_json(db()));
  api.upsert(pod_json(elsewhere()));
  auto& w = watch();
  ASSERT_TRUE(eventually([&] { return synced() && api.open_watches() == 1; }));
  EXPECT_EQ(store_.live(), 2u);
  EXPECT_EQ(container(web(), id('a')), "nginx");
  EXPECT_FALSE(knows(elsewhere()));

  const auto lists = requests(false);
  ASSERT_EQ(lists.size(), 1u);
  EXPECT_EQ(lists[0].params.at("fieldSelector"), "spec.nodeName=node-a");
  EXPECT_EQ(lists[0].params.at("resourceVersion"), "0");  // served from the API server's cache
  EXPECT_EQ(lists[0].params.at("limit"), "500");
  EXPECT_EQ(lists[0].authorization, "Bearer test-token");
  const auto watches = requests(true);
  ASSERT_EQ(watches.size(), 1u);
  EXPECT_EQ(watches[0].params.at("resourceVersion"), std::to_string(api.resource_version()));
  EXPECT_EQ(watches[0].params.at("allowWatchBookmarks"), "true");
  EXPECT_EQ(watches[0].params.at("fieldSelector"), "spec.nodeName=node-a");
  EXPECT_EQ(watches[0].params.at("timeoutSeconds"), "300");

  // Events: a new pod, a restarted container (new ID), a deletion.
  TestPod cache{"shop", "cache-1", "44444444-4444-4444-8444-444444444444", "node-a", {{"redis", id('d')}}};
  api.upsert(pod_json(cache));
  ASSERT_TRUE(eventually([&] { return knows(cache); }));
  TestPod restarted = web();
  restarted.containers = {{"nginx", id('e')}};
  api.upsert(pod_json(restarted));
  ASSERT_TRUE(eventually([&] { return container(web(), id('e')) == "nginx"; }));
  api.remove(db().uid);
  ASSERT_TRUE(eventually([&] { return store_.live() == 2; }));
  EXPECT_TRUE(knows(db()));  // deleted, kept for the grace period
  store_.forget_deleted(std::chrono::seconds(0), PodStore::Clock::now());
  EXPECT_FALSE(knows(db()));

  EXPECT_EQ(w.lists(), 1u);
  EXPECT_EQ(w.events(), 3u);
  EXPECT_EQ(requests(true).size(), 1u);  // one watch carried all of it
  for (std::size_t i = 0; i < static_cast<std::size_t>(WatchError::kCount); ++i) {
    EXPECT_EQ(w.errors(static_cast<WatchError>(i)), 0u) << to_string(static_cast<WatchError>(i));
  }
}

TEST_F(KubeWatch, PagesWithContinueTokens) {
  auto& api = serve();
  for (int i = 0; i < 5; ++i) {
    TestPod p = web();
    p.name = "web-" + std::to_string(i);
    p.uid = "55555555-5555-4555-8555-00000000000" + std::to_string(i);
    api.upsert(pod_json(p));
  }
  auto o = options();
  o.page_size = 2;
  watch(o);
  ASSERT_TRUE(eventually([&] { return synced(); }));
  EXPECT_EQ(store_.live(), 5u);
  const auto lists = requests(false);
  ASSERT_EQ(lists.size(), 3u);
  EXPECT_EQ(lists[0].params.count("continue"), 0u);
  EXPECT_EQ(lists[1].params.at("continue"), "offset:2");
  EXPECT_EQ(lists[1].params.count("resourceVersion"), 0u);  // a continue token carries its own version
  EXPECT_EQ(lists[2].params.at("continue"), "offset:4");
}

TEST_F(KubeWatch, EventsSplitAnywhereInTheChunkedStream) {
  auto& api = serve();
  auto& w = watch();
  ASSERT_TRUE(eventually([&] { return synced() && api.open_watches() == 1; }));
  // Three events as one byte string, sent in pieces that cut lines (and a \r\n) anywhere.
  std::string bytes;
  for (const auto& p : {web(), db()})
    bytes += nlohmann::json{{"type", "ADDED"}, {"object", pod_json(p)}}.dump() + "\n";
  bytes += nlohmann::json{{"type", "DELETED"}, {"object", pod_json(web())}}.dump() + "\r\n";
  for (std::size_t at = 0; at < bytes.size(); at += 37) api.push_raw(bytes.substr(at, 37));
  ASSERT_TRUE(eventually([&] { return w.events() == 3; }));
  EXPECT_EQ(store_.live(), 1u);
  EXPECT_TRUE(knows(db()));
  EXPECT_EQ(w.errors(WatchError::kDecode), 0u);
}

TEST_F(KubeWatch, BookmarksMoveTheResumePoint) {
  auto& api = serve();
  auto& w = watch();
  ASSERT_TRUE(eventually([&] { return synced() && api.open_watches() == 1; }));
  api.bookmark();
  ASSERT_TRUE(eventually([&] { return w.events() == 1; }));
  const auto bookmark_rv = std::to_string(api.resource_version());
  api.end_watches();  // the server's timeoutSeconds ran out
  ASSERT_TRUE(eventually([&] { return requests(true).size() == 2 && api.open_watches() == 1; }));
  EXPECT_EQ(requests(true)[1].params.at("resourceVersion"), bookmark_rv);
  EXPECT_EQ(w.lists(), 1u);  // a clean end needs no re-list
  EXPECT_EQ(w.watch_restarts(), 1u);
  EXPECT_TRUE(synced());
}

TEST_F(KubeWatch, GoneEventMeansListAgain) {
  auto& api = serve();
  api.upsert(pod_json(web()));
  auto& w = watch();
  ASSERT_TRUE(eventually([&] { return synced() && api.open_watches() == 1; }));
  const auto watched_from = requests(true)[0].params.at("resourceVersion");
  // While the history is compacted away, web is deleted and db added without us seeing it.
  api.remove(web().uid);
  api.upsert(pod_json(db()));
  api.compact();
  ASSERT_TRUE(eventually([&] { return w.lists() == 2 && api.open_watches() == 1; }));
  EXPECT_TRUE(knows(db()));
  EXPECT_EQ(store_.live(), 1u);  // web was deleted by the re-list (kept for the grace period)
  const auto lists = requests(false);
  ASSERT_EQ(lists.size(), 2u);
  // The re-list asks for at least what we had seen, not for the server's cache at any age.
  EXPECT_NE(lists[1].params.at("resourceVersion"), "0");
  EXPECT_GE(std::stoull(lists[1].params.at("resourceVersion")), std::stoull(watched_from));
  EXPECT_EQ(w.errors(WatchError::kHttp), 0u);  // 410 is the protocol working, not an error
}

TEST_F(KubeWatch, GoneStatusOnWatchAndExpiredContinueTokens) {
  FakeKubeApi::Options o;
  o.gone_as_http_status = true;
  auto& api = serve(o);
  for (const auto& p : {web(), db()}) api.upsert(pod_json(p));
  auto opts = options();
  opts.page_size = 1;
  api.expire_continue_tokens(true);
  auto& w = watch(opts);
  // The second page's token is refused (410): the list starts over as a consistent read.
  ASSERT_TRUE(eventually([&] { return requests(false).size() >= 3; }));
  api.expire_continue_tokens(false);
  ASSERT_TRUE(eventually([&] { return synced() && api.open_watches() == 1; }));
  EXPECT_EQ(store_.live(), 2u);
  const auto lists = requests(false);
  EXPECT_EQ(lists[2].params.count("resourceVersion"), 0u);
  EXPECT_EQ(lists[2].params.count("continue"), 0u);

  // Now the history is compacted and the watch broken: the re-watch gets HTTP 410 and lists again.
  const auto lists_before = w.lists();
  api.compact(false);
  api.drop_watches();
  ASSERT_TRUE(eventually([&] { return w.lists() == lists_before + 1 && synced(); }));
  bool saw_410 = false;
  for (const auto& r : requests(true)) saw_410 |= r.status == 410;
  EXPECT_TRUE(saw_410);
}

TEST_F(KubeWatch, DroppedConnectionResumesWithoutRelisting) {
  auto& api = serve();
  auto& w = watch();
  ASSERT_TRUE(eventually([&] { return synced() && api.open_watches() == 1; }));
  api.upsert(pod_json(web()));
  ASSERT_TRUE(eventually([&] { return knows(web()); }));
  const auto rv_after_web = std::to_string(api.resource_version());
  api.drop_watches();          // cut mid-stream, no terminating chunk
  api.upsert(pod_json(db()));  // happens while we are disconnected
  ASSERT_TRUE(eventually([&] { return knows(db()); }));
  EXPECT_EQ(w.lists(), 1u);
  const auto watches = requests(true);
  ASSERT_GE(watches.size(), 2u);
  EXPECT_EQ(watches[1].params.at("resourceVersion"), rv_after_web);  // replayed from where we were
  EXPECT_GE(w.errors(WatchError::kProtocol), 1u);
}

TEST_F(KubeWatch, TruncatedAndMalformedEvents) {
  auto& api = serve();
  api.upsert(pod_json(web()));
  auto& w = watch();
  ASSERT_TRUE(eventually([&] { return synced() && api.open_watches() == 1; }));
  const auto good_rv = requests(true)[0].params.at("resourceVersion");

  // Malformed JSON: the stream cannot be trusted; watch again from the last good version.
  api.push_raw("{\"type\":\"ADDED\",\"object\":{\"metadata\":\n");
  ASSERT_TRUE(eventually([&] { return w.errors(WatchError::kDecode) == 1 && requests(true).size() == 2; }));
  EXPECT_EQ(requests(true)[1].params.at("resourceVersion"), good_rv);

  // Wrong types: a pod whose uid is a number.
  ASSERT_TRUE(eventually([&] { return api.open_watches() == 1; }));
  auto bad = pod_json(db());
  bad["metadata"]["uid"] = 42;
  api.push_raw(nlohmann::json{{"type", "ADDED"}, {"object", bad}}.dump() + "\n");
  ASSERT_TRUE(eventually([&] { return w.errors(WatchError::kDecode) == 2 && requests(true).size() == 3; }));
  EXPECT_FALSE(knows(db()));

  // A line cut off by the end of the stream: dropped, the watch resumes before it, nothing lost.
  ASSERT_TRUE(eventually([&] { return api.open_watches() == 1; }));
  api.push_raw(nlohmann::json{{"type", "ADDED"}, {"object", pod_json(db())}}.dump().substr(0, 100));
  api.end_watches();
  ASSERT_TRUE(eventually([&] { return requests(true).size() == 4; }));
  EXPECT_EQ(w.errors(WatchError::kDecode), 2u);
  EXPECT_EQ(store_.live(), 1u);
  EXPECT_EQ(w.lists(), 1u);
}

TEST_F(KubeWatch, MalformedListBodyAndWrongTypesInItems) {
  auto& api = serve();
  api.set_list_body("{\"kind\":\"PodList\",\"items\":[{\"metadata\":");
  {
    auto& broken = watch();
    ASSERT_TRUE(eventually([&] { return broken.errors(WatchError::kDecode) >= 2; }));  // retried with backoff
    EXPECT_EQ(broken.status().state, SyncState::kConnecting);
    EXPECT_NE(broken.status().error.find("decode pod list"), std::string::npos) << broken.status().error;
    broken.stop();
  }
  auto bad = pod_json(db());
  bad["spec"] = "not an object";
  api.set_list_body(nlohmann::json{
      {"kind", "PodList"}, {"metadata", {{"resourceVersion", "500"}}}, {"items", {pod_json(web()), bad}}}
                        .dump());
  auto& w = watch();
  ASSERT_TRUE(eventually([&] { return synced(); }));
  EXPECT_TRUE(knows(web()));
  EXPECT_FALSE(knows(db()));
  EXPECT_EQ(w.errors(WatchError::kDecode), 1u);  // the one bad item
  EXPECT_EQ(w.status().error, "");
}

TEST_F(KubeWatch, ErrorStatusesBackOffAndGoStale) {
  auto& api = serve();
  api.fail_next(500, 3);
  auto& w = watch();
  ASSERT_TRUE(eventually([&] { return synced(); }));
  EXPECT_EQ(w.errors(WatchError::kHttp), 3u);
  EXPECT_EQ(requests(false).size(), 4u);
  // Synced, then the API fails: stale, with the error, until it answers again.
  api.fail_next(503, 1000);
  api.drop_watches();
  ASSERT_TRUE(eventually([&] {
    return w.status().state == SyncState::kStale && w.status().error.find("HTTP 503") != std::string::npos;
  })) << w.status().error;
  EXPECT_NE(w.status().error.find("scripted failure"), std::string::npos);  // the Status message
  api.fail_next(0, 0);
  ASSERT_TRUE(eventually([&] { return synced(); }));
  EXPECT_EQ(w.lists(), 1u);  // the watch resumed; no re-list was needed
}

TEST_F(KubeWatch, RotatedTokenIsSentAfterTheFileChanges) {
  auto& api = serve();
  auto& w = watch();
  ASSERT_TRUE(eventually([&] { return synced() && api.open_watches() == 1; }));
  // The API server now only accepts the new token; the old watch ends.
  api.set_token("rotated-token");
  api.end_watches();
  ASSERT_TRUE(eventually([&] { return w.errors(WatchError::kHttp) >= 1; }));  // 401 with the old file
  write_token("rotated-token");
  ASSERT_TRUE(eventually([&] { return synced() && api.open_watches() == 1; }));
  const auto all = api.requests();
  EXPECT_EQ(all.back().authorization, "Bearer rotated-token");
  EXPECT_EQ(all.back().status, 200);
  bool saw_401 = false;
  for (const auto& r : all) saw_401 |= r.status == 401 && r.authorization == "Bearer test-token";
  EXPECT_TRUE(saw_401);
}

TEST_F(KubeWatch, WrongCaIsRefused) {
  auto& api = serve();
  api.upsert(pod_json(web()));
  auto& w = watch(options(), pki_->other_ca_cert());
  ASSERT_TRUE(eventually([&] { return w.errors(WatchError::kTls) >= 2; }));
  EXPECT_EQ(w.status().state, SyncState::kConnecting);
  EXPECT_NE(w.status().error.find("certificate verify failed"), std::string::npos) << w.status().error;
  EXPECT_TRUE(api.requests().empty());  // nothing, not even the token, went over the wire
  EXPECT_FALSE(knows(web()));
}

TEST_F(KubeWatch, OversizedListPagesShrinkAndOversizedEventsAreRefused) {
  auto& api = serve();
  auto big = pod_json(web());
  big["metadata"]["annotations"]["huge"] = std::string(100 * 1024, 'x');
  api.upsert(big);
  api.upsert(pod_json(db()));
  auto o = options();
  o.max_response_bytes = 64 * 1024;
  o.page_size = 4;
  auto& w = watch(o);
  // 4 -> 2 -> 1 pods per page, and a page with just the big pod is still too large.
  ASSERT_TRUE(eventually([&] { return w.errors(WatchError::kTooLarge) >= 3; }));
  EXPECT_EQ(w.status().state, SyncState::kConnecting);
  std::set<std::string> limits;
  for (const auto& r : requests(false)) limits.insert(r.params.at("limit"));
  EXPECT_EQ(limits, (std::set<std::string>{"1", "2", "4"}));

  // Without the big pod the list fits; then a huge event on the watch is refused, not buffered.
  api.remove(web().uid);
  ASSERT_TRUE(eventually([&] { return synced() && api.open_watches() == 1; }));
  const auto too_large = w.errors(WatchError::kTooLarge);
  api.push_raw(std::string(100 * 1024, ' '));
  ASSERT_TRUE(eventually([&] { return w.errors(WatchError::kTooLarge) == too_large + 1; }));
}

TEST_F(KubeWatch, PodsOfOtherNodesAreIgnoredWhateverTheServerSends) {
  FakeKubeApi::Options o;
  o.honor_field_selector = false;
  auto& api = serve(o);
  api.upsert(pod_json(web()));
  api.upsert(pod_json(elsewhere()));
  watch();
  ASSERT_TRUE(eventually([&] { return synced() && api.open_watches() == 1; }));
  TestPod moved = elsewhere();
  moved.name = "another";
  moved.uid = "66666666-6666-4666-8666-666666666666";
  api.upsert(pod_json(moved));
  api.upsert(pod_json(db()));
  ASSERT_TRUE(eventually([&] { return knows(db()); }));
  EXPECT_EQ(store_.live(), 2u);
  EXPECT_FALSE(knows(elsewhere()));
  EXPECT_FALSE(knows(moved));
}

TEST_F(KubeWatch, FullStoreCountsRejectedPods) {
  auto& api = serve();
  api.upsert(pod_json(web()));
  api.upsert(pod_json(db()));
  PodStore small(1);
  PodWatcher w(server(), options(), small);
  w.start();
  ASSERT_TRUE(eventually([&] { return w.status().state == SyncState::kSynced; }));
  EXPECT_EQ(small.live(), 1u);
  EXPECT_EQ(w.errors(WatchError::kTooManyPods), 1u);
  w.stop();
}

TEST_F(KubeWatch, StopsAtOnceWhereverItWaits) {
  auto& api = serve();
  // In a watch that would last five minutes.
  auto& w = watch();
  ASSERT_TRUE(eventually([&] { return synced() && api.open_watches() == 1; }));
  w.stop();
  EXPECT_EQ(api.count(true), 1u);
  // In a backoff that would last an hour.
  auto o = options();
  o.backoff_initial = std::chrono::hours(1);
  o.backoff_max = std::chrono::hours(1);
  api.fail_next(500, 1);
  PodWatcher waiting(server(), o, store_);
  waiting.start();
  ASSERT_TRUE(eventually([&] { return waiting.errors(WatchError::kHttp) == 1; }));
  waiting.stop();
  // list_once() for --check: the node's pods, without touching the store.
  api.upsert(pod_json(web()));
  PodStore untouched;
  PodWatcher check(server(), options(), untouched);
  auto n = check.list_once();
  ASSERT_TRUE(n.ok()) << n.error().message();
  EXPECT_EQ(*n, 1u);
  EXPECT_EQ(untouched.size(), 0u);
}

}  // namespace
}  // namespace podsight::metadata
