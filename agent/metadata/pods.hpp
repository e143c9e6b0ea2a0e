// The pods of this node as the Kubernetes API last told us: just the fields podsight labels with, kept
// compact (a few hundred bytes per pod), bounded in count, and kept for a grace period after deletion
// so that the series of a deleted pod keep their labels until their map entries are collected.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace podsight::metadata {

struct ContainerRef {
  std::string id;  // the runtime's container ID without the "containerd://" scheme: 64 hex digits
  std::string name;

  bool operator==(const ContainerRef&) const = default;
};

struct Pod {
  std::string uid;
  std::string namespace_;
  std::string name;
  std::string node;
  std::string pod_ip;
  std::string qos_class;   // status.qosClass
  std::string owner_kind;  // the controller owner reference, e.g. ReplicaSet
  std::string owner_name;
  std::string mirror_uid;  // static pods: the UID kubelet uses for cgroups (kubernetes.io/config.mirror)
  bool host_network = false;
  std::vector<std::pair<std::string, std::string>> labels;  // only the allowlisted ones, sorted by key
  std::vector<ContainerRef> containers;  // current and previous IDs of app, init and ephemeral containers
  // Every container status carries a container ID: an ID in the pod's cgroup that matches none of them
  // is then the sandbox (pause) container.
  bool all_ids_known = false;

  bool operator==(const Pod&) const = default;
};

// Label value for the sandbox (pause) container of a pod, as kubelet's cAdvisor has always named it.
inline constexpr const char* kSandboxContainer = "POD";

struct PodIdentity {
  std::string namespace_;
  std::string pod;
  std::string container;
};

class PodStore {
 public:
  using Clock = std::chrono::steady_clock;

  explicit PodStore(std::size_t max_pods = 5000) : max_pods_(max_pods) {}

  // After a full list: these are the node's pods. Pods missing from `pods` are deleted as of `now`.
  // Returns how many pods did not fit under max_pods.
  std::size_t replace(std::vector<Pod> pods, Clock::time_point now);
  // ADDED / MODIFIED. False if the pod is new and the store is full of live pods.
  bool upsert(Pod pod);
  // DELETED: the pod stays resolvable until forget_deleted() is called `grace` after `now`.
  void remove(const std::string& uid, Clock::time_point now);
  // Drops pods deleted at least `grace` before `now`. Returns how many.
  std::size_t forget_deleted(Clock::duration grace, Clock::time_point now);

  // Who `container_id` in the cgroup of pod `uid` is. `uid` may also be a static pod's mirror UID.
  // container: the container's name; "" for the pod's own cgroup, CRI-O's conmon, or an ID the API has
  // not reported yet; kSandboxContainer for the sandbox. nullopt if the pod is not known.
  [[nodiscard]] std::optional<PodIdentity> identify(const std::string& uid, const std::string& container_id,
                                                    bool conmon) const;

  // Every pod known, deleted ones still in their grace period included (pod_info stays joinable for
  // as long as the pod's series exist).
  [[nodiscard]] std::vector<std::shared_ptr<const Pod>> snapshot() const;
  [[nodiscard]] std::size_t live() const;  // not deleted
  [[nodiscard]] std::size_t size() const;  // live + deleted within the grace period

 private:
  struct Entry {
    std::shared_ptr<const Pod> pod;
    std::optional<Clock::time_point> deleted_at;
  };
  bool upsert_locked(Pod pod);
  bool make_room_locked();
  void index_locked(const Pod& pod);
  void unindex_locked(const Pod& pod);

  std::size_t max_pods_;
  mutable std::shared_mutex mu_;
  std::unordered_map<std::string, Entry> pods_;           // uid -> pod
  std::unordered_map<std::string, std::string> mirrors_;  // mirror uid -> uid
  std::size_t live_ = 0;
};

}  // namespace podsight::metadata
