// Fuzzes the Kubernetes pod list and watch event decoders (metadata::decode_pod_list,
// decode_watch_event, status_message) with arbitrary bytes, under the default limits and under tight
// ones. They must never crash or throw; what is not JSON is an error; what they accept holds only
// valid pods (uid, name and namespace set), every kept string within the limit, only allowlisted
// labels sorted by key, no more containers or labels than the limits allow.
#include "metadata/pod_json.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

using namespace podsight::metadata;

[[noreturn]] void fail(const char* what, std::string_view input, const std::string& detail) {
  std::fprintf(stderr, "pod_json fuzz: %s: %s\n---- input ----\n%.*s\n----\n", what, detail.c_str(),
               static_cast<int>(input.size()), input.data());
  std::abort();
}

void check_pod(const Pod& p, const LabelAllowlist& labels, const DecodeLimits& limits, std::string_view in) {
  if (p.uid.empty() || p.name.empty() || p.namespace_.empty())
    fail("accepted a pod without identity", in, p.uid);
  for (const std::string* s : {&p.uid, &p.name, &p.namespace_, &p.node, &p.pod_ip, &p.qos_class,
                               &p.owner_kind, &p.owner_name, &p.mirror_uid}) {
    if (s->size() > limits.max_field_bytes) fail("kept a field over the limit", in, s->substr(0, 80));
  }
  if (p.labels.size() > limits.max_labels) fail("kept more labels than the limit", in, p.uid);
  if (!std::is_sorted(p.labels.begin(), p.labels.end())) fail("labels not sorted", in, p.uid);
  for (const auto& [k, v] : p.labels) {
    if (!labels.allows(k)) fail("kept a label not allowed", in, k);
    if (k.size() > limits.max_field_bytes || v.size() > limits.max_field_bytes)
      fail("kept a label over the limit", in, k.substr(0, 80));
  }
  if (p.containers.size() > limits.max_containers) fail("kept more containers than the limit", in, p.uid);
  for (const auto& c : p.containers) {
    if (c.id.size() > limits.max_field_bytes || c.name.size() > limits.max_field_bytes)
      fail("kept a container field over the limit", in, c.id.substr(0, 80));
  }
  if (p.all_ids_known && p.containers.empty()) fail("all IDs known without containers", in, p.uid);
}

void check(std::string_view in, const LabelAllowlist& labels, const DecodeLimits& limits, bool json) {
  auto list = decode_pod_list(in, labels, limits);
  if (list) {
    if (!json) fail("accepted a list that is not JSON", in, "");
    if (list->resource_version.empty()) fail("accepted a list without resourceVersion", in, "");
    if (list->skipped > 0 && list->first_skip_reason.empty()) fail("skipped a pod without a reason", in, "");
    for (const auto& p : list->pods) check_pod(p, labels, limits, in);
  } else if (!list.error().what.starts_with("decode pod list: ")) {
    fail("list error without its prefix", in, list.error().what);
  }

  auto event = decode_watch_event(in, labels, limits);
  if (!event) {
    if (!event.error().what.starts_with("decode watch event: "))
      fail("event error without its prefix", in, event.error().what);
    return;
  }
  if (!json) fail("accepted an event that is not JSON", in, "");
  switch (event->type) {
    case EventType::kAdded:
    case EventType::kModified:
    case EventType::kDeleted:
      check_pod(event->pod, labels, limits, in);
      break;
    case EventType::kBookmark:
      if (event->resource_version.empty()) fail("a bookmark without resourceVersion", in, "");
      break;
    case EventType::kError:
      if (event->code < 0 || event->code > 999)
        fail("an error code out of range", in, std::to_string(event->code));
      if (event->reason.size() > limits.max_field_bytes || event->message.size() > limits.max_field_bytes)
        fail("an error reason or message over the limit", in, event->reason.substr(0, 80));
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const bool json = nlohmann::json::accept(in.begin(), in.end());
  static const LabelAllowlist some{{"app", "app.kubernetes.io/name"}};
  static const LabelAllowlist all{{"*"}};
  check(in, some, DecodeLimits{}, json);
  // Tight limits, so that short inputs reach every bound.
  check(in, all, DecodeLimits{.max_depth = 16, .max_field_bytes = 16, .max_containers = 2, .max_labels = 2},
        json);
  const std::string message = status_message(in);
  if (message.size() > 512) fail("status message over 512 bytes", in, "");
  if (!message.empty() && !json) fail("a status message from what is not JSON", in, message);
  return 0;
}
