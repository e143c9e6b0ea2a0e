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

// Every pod of the cluster into the index.
class ClusterPods final : public WatchTarget {
 public:
  ClusterPods(RemoteIndex& index, DecodeLimits limits) : index_(index), limits_(limits) {}
  [[nodiscard]] std::string resource() const override { return "pods"; }
  [[nodiscard]] std::string path() const override { return "/api/v1/pods"; }
  Result<ListPage> add_page(std::string_view body) override;
  [[nodiscard]] std::size_t listed() const override { return pods_.size(); }
  void discard_list() override { pods_.clear(); }
  std::size_t commit_list() override;
  Result<AppliedEvent> apply_event(std::string_view line) override;

 private:
  RemoteIndex& index_;
  DecodeLimits limits_;
  std::vector<RemotePod> pods_;
};

// Every service of the cluster into the index.
class Services final : public WatchTarget {
 public:
  Services(RemoteIndex& index, DecodeLimits limits) : index_(index), limits_(limits) {}
  [[nodiscard]] std::string resource() const override { return "services"; }
  [[nodiscard]] std::string path() const override { return "/api/v1/services"; }
  Result<ListPage> add_page(std::string_view body) override;
  [[nodiscard]] std::size_t listed() const override { return services_.size(); }
  void discard_list() override { services_.clear(); }
  std::size_t commit_list() override;
  Result<AppliedEvent> apply_event(std::string_view line) override;

 private:
  RemoteIndex& index_;
  DecodeLimits limits_;
  std::vector<RemoteService> services_;
};

}  // namespace podsight::metadata
