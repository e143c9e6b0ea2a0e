// Pod store: uid -> pod, plus the static pods' mirror UIDs, under one reader/writer lock (the watch
// thread writes, scrapes read).
#include "metadata/pods.hpp"

#include <algorithm>
#include <mutex>
#include <unordered_set>

namespace podsight::metadata {

void PodStore::index_locked(const Pod& pod) {
  if (!pod.mirror_uid.empty() && pod.mirror_uid != pod.uid) mirrors_[pod.mirror_uid] = pod.uid;
}

void PodStore::unindex_locked(const Pod& pod) {
  if (pod.mirror_uid.empty()) return;
  if (auto it = mirrors_.find(pod.mirror_uid); it != mirrors_.end() && it->second == pod.uid)
    mirrors_.erase(it);
}

bool PodStore::make_room_locked() {
  // The store is full: the pod deleted longest ago goes first (its series are the oldest leftovers).
  auto oldest = pods_.end();
  for (auto it = pods_.begin(); it != pods_.end(); ++it) {
    if (it->second.deleted_at &&
        (oldest == pods_.end() || *it->second.deleted_at < *oldest->second.deleted_at)) {
      oldest = it;
    }
  }
  if (oldest == pods_.end()) return false;
  unindex_locked(*oldest->second.pod);
  pods_.erase(oldest);
  return true;
}

bool PodStore::upsert(Pod pod) {
  std::unique_lock lock(mu_);
  return upsert_locked(std::move(pod));
}

bool PodStore::upsert_locked(Pod pod) {
  auto it = pods_.find(pod.uid);
  if (it != pods_.end()) {
    unindex_locked(*it->second.pod);
    if (it->second.deleted_at) ++live_;
    it->second.deleted_at.reset();
    index_locked(pod);
    it->second.pod = std::make_shared<const Pod>(std::move(pod));
    return true;
  }
  if (pods_.size() >= max_pods_ && !make_room_locked()) return false;
  index_locked(pod);
  std::string uid = pod.uid;
  pods_.emplace(std::move(uid), Entry{std::make_shared<const Pod>(std::move(pod)), std::nullopt});
  ++live_;
  return true;
}

std::size_t PodStore::replace(std::vector<Pod> pods, Clock::time_point now) {
  std::unordered_set<std::string> listed;
  for (const auto& p : pods) listed.insert(p.uid);
  // One critical section: a scrape never sees the node's pods half replaced.
  std::unique_lock lock(mu_);
  for (auto& [uid, e] : pods_) {
    if (!e.deleted_at && listed.count(uid) == 0) {
      e.deleted_at = now;
      --live_;
    }
  }
  std::size_t rejected = 0;
  for (auto& p : pods) rejected += upsert_locked(std::move(p)) ? 0 : 1;
  return rejected;
}

void PodStore::remove(const std::string& uid, Clock::time_point now) {
  std::unique_lock lock(mu_);
  auto it = pods_.find(uid);
  if (it == pods_.end() || it->second.deleted_at) return;
  it->second.deleted_at = now;
  --live_;
}

std::size_t PodStore::forget_deleted(Clock::duration grace, Clock::time_point now) {
  std::unique_lock lock(mu_);
  std::size_t dropped = 0;
  for (auto it = pods_.begin(); it != pods_.end();) {
    if (it->second.deleted_at && now - *it->second.deleted_at >= grace) {
      unindex_locked(*it->second.pod);
      it = pods_.erase(it);
      ++dropped;
    } else {
      ++it;
    }
  }
  return dropped;
}

std::optional<PodIdentity> PodStore::identify(const std::string& uid, const std::string& container_id,
                                              bool conmon) const {
  std::shared_lock lock(mu_);
  auto it = pods_.find(uid);
  if (it == pods_.end()) {
    auto m = mirrors_.find(uid);
    if (m == mirrors_.end()) return std::nullopt;
    it = pods_.find(m->second);
    if (it == pods_.end()) return std::nullopt;
  }
  const Pod& pod = *it->second.pod;
  PodIdentity id{pod.namespace_, pod.name, ""};
  if (container_id.empty() || conmon) return id;
  auto c = std::find_if(pod.containers.begin(), pod.containers.end(),
                        [&](const ContainerRef& r) { return r.id == container_id; });
  if (c != pod.containers.end()) {
    id.container = c->name;
  } else if (pod.all_ids_known) {
    id.container = kSandboxContainer;
  }
  return id;
}

std::vector<std::shared_ptr<const Pod>> PodStore::snapshot() const {
  std::shared_lock lock(mu_);
  std::vector<std::shared_ptr<const Pod>> out;
  out.reserve(pods_.size());
  for (const auto& [uid, e] : pods_) out.push_back(e.pod);
  return out;
}

std::size_t PodStore::live() const {
  std::shared_lock lock(mu_);
  return live_;
}

std::size_t PodStore::size() const {
  std::shared_lock lock(mu_);
  return pods_.size();
}

}  // namespace podsight::metadata
