// The cluster's pods and services, listed and watched for the remote-address index (opt-in remote
// labels of outbound TCP metrics). Only the few fields the index uses are decoded: the JSON is parsed
// with everything else discarded as it is read, so memory follows what is kept, not what is sent.
#pragma once

#include "metadata/kube_watch.hpp"
#include "metadata/remote.hpp"
#include "util/result.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace podsight::metadata {

template <typename T>
struct RemoteList {
  std::string resource_version;
  std::string continue_token;
  std::vector<T> items;
  std::size_t skipped = 0;  // items that were not valid objects
  std::string first_skip_reason;
};

template <typename T>
struct RemoteEvent {
  EventType type = EventType::kError;
  T object;                      // kAdded, kModified, kDeleted
  std::string resource_version;  // all but kError
  int code = 0;                  // kError
  std::string reason;
  std::string message;
};

// Decoders (also for tests). Strings longer than limits.max_field_bytes and more than 16 addresses of
// one kind make an object invalid.
Result<RemoteList<RemotePod>> decode_remote_pod_list(std::string_view json, const DecodeLimits& limits = {});
Result<RemoteEvent<RemotePod>> decode_remote_pod_event(std::string_view json,
                                                       const DecodeLimits& limits = {});
Result<RemoteList<RemoteService>> decode_service_list(std::string_view json, const DecodeLimits& limits = {});
Result<RemoteEvent<RemoteService>> decode_service_event(std::string_view json,
                                                        const DecodeLimits& limits = {});

// Every object of one kind into the index: RemotePod (the cluster's pods, /api/v1/pods without a
// field selector) or RemoteService (/api/v1/services).
template <typename T>
class IndexTarget final : public WatchTarget {
 public:
  IndexTarget(RemoteIndex& index, DecodeLimits limits) : index_(index), limits_(limits) {}
  [[nodiscard]] std::string resource() const override;
  [[nodiscard]] std::string path() const override { return "/api/v1/" + resource(); }
  Result<ListPage> add_page(std::string_view body) override;
  [[nodiscard]] std::size_t listed() const override { return objects_.size(); }
  void discard_list() override { objects_.clear(); }
  std::size_t commit_list() override;
  Result<AppliedEvent> apply_event(std::string_view line) override;

 private:
  RemoteIndex& index_;
  DecodeLimits limits_;
  std::vector<T> objects_;  // the list being read
};

using ClusterPods = IndexTarget<RemotePod>;
using Services = IndexTarget<RemoteService>;

}  // namespace podsight::metadata
