// Decoding of Kubernetes API pod lists and watch events into compact Pods, by streaming (SAX) over
// the JSON: only the fields podsight labels with are kept, so memory follows the pods we keep and not
// the size of the objects the API sends (managedFields, specs, annotations are skipped unread).
#pragma once

#include "metadata/pods.hpp"
#include "util/result.hpp"

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace podsight::metadata {

// Which pod labels to keep (for podsight_pod_info). "*" in the list keeps all of them.
struct LabelAllowlist {
  std::vector<std::string> names;
  [[nodiscard]] bool allows(std::string_view key) const;
};

struct DecodeLimits {
  std::size_t max_depth = 64;          // JSON nesting; deeper input is rejected (a pod nests ~12 deep)
  std::size_t max_field_bytes = 1024;  // any kept string; a longer one makes the pod invalid
  std::size_t max_containers = 256;    // container IDs kept per pod (current and previous); more are ignored
  std::size_t max_labels = 64;         // allowlisted labels kept per pod; more are ignored
};

struct PodList {
  std::string resource_version;
  std::string continue_token;
  std::vector<Pod> pods;
  std::size_t skipped = 0;  // items that were not valid pods (missing uid/name/namespace, wrong types)
  std::string first_skip_reason;
};

// A PodList (one page). An error means the page as a whole cannot be used.
Result<PodList> decode_pod_list(std::string_view json, const LabelAllowlist& labels,
                                const DecodeLimits& limits = {});

enum class EventType { kAdded, kModified, kDeleted, kBookmark, kError };

struct WatchEvent {
  EventType type = EventType::kError;
  Pod pod;                       // kAdded, kModified, kDeleted
  std::string resource_version;  // the object's metadata.resourceVersion (all but kError)
  int code = 0;                  // kError: the metav1.Status (410 when the resource version expired)
  std::string reason;
  std::string message;
};

// One line of a watch stream.
Result<WatchEvent> decode_watch_event(std::string_view json, const LabelAllowlist& labels,
                                      const DecodeLimits& limits = {});

// The message of a metav1.Status error body, or "" when the body is not one.
std::string status_message(std::string_view body);

}  // namespace podsight::metadata
