// Pod list and watch event decoding: the fields podsight keeps from real API objects (fixtures), pods
// with wrong types skipped without losing the page, and hostile input (truncated, deep, huge, not JSON).
#include "metadata/pod_json.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace podsight::metadata {
namespace {

std::string fixture(const std::string& name) {
  std::ifstream in(std::string(PODSIGHT_FIXTURES_DIR) + "/pods/" + name);
  EXPECT_TRUE(in) << name;
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> fixture_lines(const std::string& name) {
  std::istringstream in(fixture(name));
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  return lines;
}

const std::string kId2(64, '2');

TEST(PodJson, ListKeepsWhatPodsightUses) {
  LabelAllowlist labels{{"app", "app.kubernetes.io/name"}};
  auto list = decode_pod_list(fixture("pod_list.json"), labels);
  ASSERT_TRUE(list.ok()) << list.error().message();
  EXPECT_EQ(list->resource_version, "48215");
  EXPECT_EQ(list->continue_token, "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6NDgyMTUsInN0YXJ0Ijoid2ViIn0");
  // 5 items: uid as a number and containerStatuses as an object make two of them invalid.
  ASSERT_EQ(list->pods.size(), 3u);
  EXPECT_EQ(list->skipped, 2u);
  EXPECT_NE(list->first_skip_reason.find("metadata.uid is not a string"), std::string::npos)
      << list->first_skip_reason;

  const Pod& web = list->pods[0];
  EXPECT_EQ(web.uid, "6f1c2f0e-3b5a-4c1d-9e2f-0a1b2c3d4e5f");
  EXPECT_EQ(web.namespace_, "shop");
  EXPECT_EQ(web.name, "web-7d4b9c6f5-x2x9q");
  EXPECT_EQ(web.node, "node-a");
  EXPECT_EQ(web.pod_ip, "10.244.1.23");
  EXPECT_EQ(web.qos_class, "Burstable");
  EXPECT_EQ(web.owner_kind, "ReplicaSet");
  EXPECT_EQ(web.owner_name, "web-7d4b9c6f5");
  EXPECT_FALSE(web.host_network);
  EXPECT_EQ(web.mirror_uid, "");
  // Only allowlisted labels, sorted by key.
  EXPECT_EQ(web.labels, (std::vector<std::pair<std::string, std::string>>{
                            {"app", "web"}, {"app.kubernetes.io/name", "web"}}));
  // Init, app (current and the OOM-killed previous one), sidecar and ephemeral containers; no scheme.
  EXPECT_EQ(web.containers, (std::vector<ContainerRef>{{std::string(64, '1'), "migrate"},
                                                       {kId2, "nginx"},
                                                       {std::string(64, '3'), "nginx"},
                                                       {std::string(64, '4'), "sidecar"},
                                                       {std::string(64, '5'), "debugger-x7"}}));
  EXPECT_TRUE(web.all_ids_known);

  const Pod& pending = list->pods[1];
  EXPECT_EQ(pending.name, "batch-job-abcde");
  EXPECT_EQ(pending.owner_kind, "Job");
  EXPECT_TRUE(pending.containers.empty());
  EXPECT_FALSE(pending.all_ids_known);  // a container is still being created
  EXPECT_TRUE(pending.labels.empty());

  const Pod& apiserver = list->pods[2];
  EXPECT_EQ(apiserver.mirror_uid, "5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c");
  EXPECT_TRUE(apiserver.host_network);
  EXPECT_EQ(apiserver.containers, (std::vector<ContainerRef>{{std::string(64, '6'), "kube-apiserver"}}));
}

TEST(PodJson, WildcardKeepsEveryLabel) {
  auto list = decode_pod_list(fixture("pod_list.json"), LabelAllowlist{{"*"}});
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->pods[0].labels.size(), 4u);
  auto none = decode_pod_list(fixture("pod_list.json"), LabelAllowlist{});
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->pods[0].labels.empty());
}

TEST(PodJson, WatchEventsOfEveryType) {
  auto lines = fixture_lines("watch_events.jsonl");
  ASSERT_EQ(lines.size(), 5u);
  LabelAllowlist labels{{"app"}};
  auto added = decode_watch_event(lines[0], labels);
  ASSERT_TRUE(added.ok()) << added.error().message();
  EXPECT_EQ(added->type, EventType::kAdded);
  EXPECT_EQ(added->pod.name, "web-7d4b9c6f5-x2x9q");
  EXPECT_EQ(added->resource_version, "48211");

  auto modified = decode_watch_event(lines[1], labels);
  ASSERT_TRUE(modified.ok()) << modified.error().message();
  EXPECT_EQ(modified->type, EventType::kModified);
  EXPECT_EQ(modified->resource_version, "48300");
  EXPECT_EQ(modified->pod.containers, (std::vector<ContainerRef>{{std::string(64, '7'), "work"}}));
  EXPECT_TRUE(modified->pod.all_ids_known);

  auto deleted = decode_watch_event(lines[2], labels);
  ASSERT_TRUE(deleted.ok());
  EXPECT_EQ(deleted->type, EventType::kDeleted);
  EXPECT_EQ(deleted->pod.uid, "9d9d9d9d-aaaa-4bbb-8ccc-dddddddddddd");

  auto bookmark = decode_watch_event(lines[3], labels);
  ASSERT_TRUE(bookmark.ok()) << bookmark.error().message();
  EXPECT_EQ(bookmark->type, EventType::kBookmark);
  EXPECT_EQ(bookmark->resource_version, "48400");

  auto error = decode_watch_event(lines[4], labels);
  ASSERT_TRUE(error.ok());
  EXPECT_EQ(error->type, EventType::kError);
  EXPECT_EQ(error->code, 410);
  EXPECT_EQ(error->reason, "Expired");
  EXPECT_NE(error->message.find("too old resource version"), std::string::npos);
}

TEST(PodJson, KeyOrderDoesNotMatter) {
  // "object" before "type", "status" before "metadata".
  auto ev = decode_watch_event(
      R"({"object":{"status":{"containerStatuses":[{"containerID":"docker://abc","name":"c"}]},)"
      R"("metadata":{"uid":"u1","name":"p","namespace":"n","resourceVersion":"7"},"spec":{"nodeName":"x"}},"type":"ADDED"})",
      LabelAllowlist{});
  ASSERT_TRUE(ev.ok()) << ev.error().message();
  EXPECT_EQ(ev->type, EventType::kAdded);
  EXPECT_EQ(ev->pod.containers, (std::vector<ContainerRef>{{"abc", "c"}}));
  EXPECT_EQ(ev->resource_version, "7");
}

TEST(PodJson, MalformedAndHostileInputIsAnError) {
  const LabelAllowlist none;
  const std::string good = fixture_lines("watch_events.jsonl")[0];
  // Truncated at every 97th byte: never a crash, always an error.
  for (std::size_t cut = 1; cut < good.size(); cut += 97) {
    EXPECT_FALSE(decode_watch_event(good.substr(0, cut), none).ok()) << cut;
  }
  for (const char* bad :
       {"", "null", "[]", "42", "\"ADDED\"", "{", "{\"type\":\"ADDED\"}", "{\"type\":5,\"object\":{}}",
        "{\"type\":\"ADDED\",\"object\":[]}", "{\"type\":\"ADDED\",\"object\":\"pod\"}",
        "{\"type\":\"UPSERTED\",\"object\":{}}", "{\"type\":\"BOOKMARK\",\"object\":{}}",
        "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"uid\":\"u\",\"name\":\"n\"}}}",
        "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"uid\":\"u\",\"name\":\"n\",\"namespace\":7}}}",
        "{\"type\":\"ADDED\",\"object\":{\"metadata\":[1,2]}}", "{\"type\":\"ADDED\"} trailing",
        "{\"type\":\"ADDED\",\"object\":{\"spec\":{\"hostNetwork\":\"yes\"},"
        "\"metadata\":{\"uid\":\"u\",\"name\":\"n\",\"namespace\":\"ns\"}}}"}) {
    EXPECT_FALSE(decode_watch_event(bad, none).ok()) << bad;
  }
  // Deep nesting is refused before it costs memory.
  std::string deep = "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"x\":" + std::string(100000, '[') +
                     std::string(100000, ']') + "}}}";
  auto d = decode_watch_event(deep, none);
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.error().what.find("nested deeper"), std::string::npos) << d.error().what;
  // A kept field over the limit makes the pod invalid; an ignored one does not matter.
  const std::string big(5000, 'x');
  EXPECT_FALSE(decode_watch_event("{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"uid\":\"u\",\"name\":\"" +
                                      big + "\",\"namespace\":\"ns\"}}}",
                                  none)
                   .ok());
  EXPECT_TRUE(decode_watch_event("{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"uid\":\"u\",\"name\":\"n\","
                                 "\"namespace\":\"ns\",\"annotations\":{\"huge\":\"" +
                                     big + "\"}}}}",
                                 none)
                  .ok());
  // Invalid UTF-8 inside a string is rejected by the JSON parser, not passed on.
  EXPECT_FALSE(decode_watch_event(
                   std::string("{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"uid\":\"\xff\"}}}"), none)
                   .ok());
}

TEST(PodJson, ListErrors) {
  const LabelAllowlist none;
  EXPECT_FALSE(decode_pod_list("{\"items\":[]}", none).ok());  // no resourceVersion to watch from
  EXPECT_FALSE(decode_pod_list("{\"metadata\":{\"resourceVersion\":\"1\"},\"items\":{}}", none).ok());
  EXPECT_FALSE(decode_pod_list("{\"metadata\":{\"resourceVersion\":\"1\"},\"items\":5}", none).ok());
  EXPECT_FALSE(decode_pod_list("[{\"metadata\":{\"resourceVersion\":\"1\"}}]", none).ok());
  EXPECT_FALSE(decode_pod_list("{\"metadata\":{\"resourceVersion\":\"1\"},\"items\":[", none).ok());
  auto empty = decode_pod_list("{\"metadata\":{\"resourceVersion\":\"1\"},\"items\":null}", none);
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->pods.empty());
  // Items that are not objects are not pods, and do not stop the page.
  auto odd = decode_pod_list(
      "{\"metadata\":{\"resourceVersion\":\"1\"},\"items\":[1,\"x\",{\"metadata\":{\"uid\":\"u\",\"name\":"
      "\"n\","
      "\"namespace\":\"ns\"}}]}",
      none);
  ASSERT_TRUE(odd.ok());
  EXPECT_EQ(odd->pods.size(), 1u);
}

TEST(PodJson, LimitsBoundWhatIsKept) {
  std::string statuses;
  for (int i = 0; i < 1000; ++i) {
    statuses += std::string(i ? "," : "") + "{\"name\":\"c" + std::to_string(i) +
                "\",\"containerID\":\"containerd://" + std::to_string(i) + "\"}";
  }
  std::string labels;
  for (int i = 0; i < 1000; ++i) labels += std::string(i ? "," : "") + "\"l" + std::to_string(i) + "\":\"v\"";
  auto ev = decode_watch_event(
      "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"uid\":\"u\",\"name\":\"n\","
      "\"namespace\":\"ns\",\"labels\":{" +
          labels + "}},\"status\":{\"containerStatuses\":[" + statuses + "]}}}",
      LabelAllowlist{{"*"}});
  ASSERT_TRUE(ev.ok()) << ev.error().message();
  EXPECT_EQ(ev->pod.containers.size(), DecodeLimits{}.max_containers);
  EXPECT_EQ(ev->pod.labels.size(), DecodeLimits{}.max_labels);
}

TEST(PodJson, StatusMessage) {
  EXPECT_EQ(status_message(R"({"kind":"Status","message":"pods is forbidden","code":403})"),
            "pods is forbidden");
  EXPECT_EQ(status_message("<html>502 Bad Gateway</html>"), "");
  EXPECT_EQ(status_message(""), "");
}

}  // namespace
}  // namespace podsight::metadata
