// The remote-address index: owners, their claims on addresses, and who wins an address claimed twice.
#include "metadata/remote.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

namespace podsight::metadata {
namespace {

// Which claim wins an address several owners claim: a service's address is never a pod's, but a pod
// IP can briefly be claimed by a deleted pod's object and its successor's; a node's address is a pod's
// only for host-network pods, which are counted as the node.
int priority(RemoteKind k) {
  switch (k) {
    case RemoteKind::kService:
      return 3;
    case RemoteKind::kPod:
      return 2;
    case RemoteKind::kNode:
      return 1;
    default:
      return 0;
  }
}

std::set<Address> parse_all(const std::vector<std::string>& ips) {
  std::set<Address> out;
  for (const auto& ip : ips) {
    if (auto a = parse_address(ip)) out.insert(*a);
  }
  return out;
}

}  // namespace

std::optional<Address> parse_address(std::string_view text) {
  if (text.empty() || text.size() > 45) return std::nullopt;
  const std::string s(text);
  Address a{};
  in_addr v4{};
  if (::inet_pton(AF_INET, s.c_str(), &v4) == 1) {
    a[10] = 0xff;
    a[11] = 0xff;
    std::memcpy(a.data() + 12, &v4, 4);
    return a;
  }
  in6_addr v6{};
  if (::inet_pton(AF_INET6, s.c_str(), &v6) == 1) {
    std::memcpy(a.data(), &v6, 16);
    return a;
  }
  return std::nullopt;
}

std::string_view to_string(RemoteKind k) {
  switch (k) {
    case RemoteKind::kLocal:
      return "local";
    case RemoteKind::kPod:
      return "pod";
    case RemoteKind::kService:
      return "service";
    case RemoteKind::kNode:
      return "node";
    case RemoteKind::kExternal:
      break;
  }
  return "external";
}

std::uint32_t RemoteIndex::next_id() {
  // 2^32 ids take billions of pods to use up; after that, skip the ones still in use.
  do {
    ++last_id_;
    if (last_id_ < kFirstId) last_id_ = kFirstId;
  } while (by_id_.count(last_id_) != 0);
  return last_id_;
}

void RemoteIndex::publish(const Address& addr) {
  std::optional<std::uint32_t> winner;
  RemoteKind kind = RemoteKind::kExternal;
  auto c = claimants_.find(addr);
  if (c != claimants_.end()) {
    const Owner* best = nullptr;
    for (const auto& key : c->second) {
      const Owner& o = owners_.at(key);
      if (best == nullptr ||
          std::pair(priority(o.labels.kind), o.seq) > std::pair(priority(best->labels.kind), best->seq)) {
        best = &o;
      }
    }
    if (best != nullptr) {
      winner = best->id;
      kind = best->labels.kind;
    }
    if (c->second.empty()) claimants_.erase(c);
  }
  auto a = assigned_.find(addr);
  if (a != assigned_.end()) {
    if (winner && a->second == *winner) return;
    --assigned_by_kind_[static_cast<std::size_t>(owners_.at(by_id_.at(a->second)).labels.kind)];
  }
  if (winner) {
    assigned_[addr] = *winner;
    ++assigned_by_kind_[static_cast<std::size_t>(kind)];
    if (sink_ != nullptr) sink_->assign(addr, *winner);
  } else if (a != assigned_.end()) {
    assigned_.erase(a);
    if (sink_ != nullptr) sink_->unassign(addr);
  }
}

std::size_t RemoteIndex::set_claims(const std::string& key, const RemoteLabels& labels,
                                    std::set<Address> claims, Clock::time_point now) {
  auto it = owners_.find(key);
  if (it == owners_.end()) {
    if (claims.empty()) return 0;  // an owner is made when it first claims something
    it = owners_.emplace(key, Owner{}).first;
    it->second.id = next_id();
    by_id_[it->second.id] = key;
  }
  Owner& o = it->second;
  if (!claims.empty()) o.labels = labels;  // a retired owner keeps the labels its counters carry
  std::size_t refused = 0;
  // Addresses new to the index are refused once it holds max_addresses of them.
  for (auto a = claims.begin(); a != claims.end();) {
    if (claimants_.count(*a) == 0 && claimants_.size() >= max_addresses_) {
      ++refused;
      a = claims.erase(a);
    } else {
      ++a;
    }
  }
  refused_ += refused;
  std::vector<Address> touched;
  for (const auto& a : o.claims) {
    if (claims.count(a) == 0) {
      std::erase(claimants_[a], key);
      touched.push_back(a);
    }
  }
  for (const auto& a : claims) {
    auto& keys = claimants_[a];
    if (std::find(keys.begin(), keys.end(), key) == keys.end()) {
      keys.push_back(key);
      touched.push_back(a);
    }
  }
  if (!touched.empty()) o.seq = ++seq_;
  o.claims = std::move(claims);
  if (o.claims.empty()) {
    if (!o.retired_at) o.retired_at = now;
  } else {
    o.retired_at.reset();
  }
  for (const auto& a : touched) publish(a);
  return refused;
}

void RemoteIndex::update_node_locked(const std::string& node, Clock::time_point now) {
  std::set<Address> addrs;
  auto n = node_pods_.find(node);
  if (n != node_pods_.end()) {
    for (const auto& uid : n->second) {
      const auto& contributed = pods_.at(uid).node_addrs;
      addrs.insert(contributed.begin(), contributed.end());
    }
    if (n->second.empty()) node_pods_.erase(n);
  }
  set_claims("node/" + node, RemoteLabels{RemoteKind::kNode, {}, {}, {}}, std::move(addrs), now);
}

std::size_t RemoteIndex::upsert_pod_locked(RemotePod pod, Clock::time_point now) {
  std::set<Address> own;
  PodState state;
  state.node = pod.node;
  if (!pod.node.empty()) state.node_addrs = parse_all(pod.host_ips);
  if (pod.host_network) {
    // Its addresses are the node's: several host-network pods share them.
    if (!pod.node.empty() && !pod.terminated) {
      auto ips = parse_all(pod.ips);
      state.node_addrs.insert(ips.begin(), ips.end());
    }
  } else if (!pod.terminated) {
    own = parse_all(pod.ips);
  }
  std::string old_node;
  if (auto it = pods_.find(pod.uid); it != pods_.end()) old_node = it->second.node;
  pods_[pod.uid] = state;
  if (!old_node.empty() && old_node != pod.node) {
    node_pods_[old_node].erase(pod.uid);
    update_node_locked(old_node, now);
  }
  std::size_t refused = set_claims(
      "pod/" + pod.uid, RemoteLabels{RemoteKind::kPod, pod.namespace_, pod.name, {}}, std::move(own), now);
  if (!pod.node.empty()) {
    node_pods_[pod.node].insert(pod.uid);
    update_node_locked(pod.node, now);
  }
  return refused;
}

void RemoteIndex::remove_pod_locked(const std::string& uid, Clock::time_point now) {
  auto it = pods_.find(uid);
  if (it == pods_.end()) return;
  const std::string node = it->second.node;
  pods_.erase(it);
  set_claims("pod/" + uid, {}, {}, now);
  if (!node.empty()) {
    node_pods_[node].erase(uid);
    update_node_locked(node, now);
  }
}

std::size_t RemoteIndex::upsert_service_locked(RemoteService service, Clock::time_point now) {
  services_.insert(service.uid);
  return set_claims("service/" + service.uid,
                    RemoteLabels{RemoteKind::kService, service.namespace_, {}, service.name},
                    parse_all(service.ips), now);
}

std::size_t RemoteIndex::replace_pods(std::vector<RemotePod> pods, Clock::time_point now) {
  std::lock_guard lock(mu_);
  std::set<std::string> listed;
  for (const auto& p : pods) listed.insert(p.uid);
  std::vector<std::string> gone;
  for (const auto& [uid, state] : pods_) {
    if (listed.count(uid) == 0) gone.push_back(uid);
  }
  for (const auto& uid : gone) remove_pod_locked(uid, now);
  std::size_t refused = 0;
  for (auto& p : pods) refused += upsert_pod_locked(std::move(p), now);
  return refused;
}

std::size_t RemoteIndex::replace_services(std::vector<RemoteService> services, Clock::time_point now) {
  std::lock_guard lock(mu_);
  std::set<std::string> listed;
  for (const auto& s : services) listed.insert(s.uid);
  for (auto it = services_.begin(); it != services_.end();) {
    if (listed.count(*it) == 0) {
      set_claims("service/" + *it, {}, {}, now);
      it = services_.erase(it);
    } else {
      ++it;
    }
  }
  std::size_t refused = 0;
  for (auto& s : services) refused += upsert_service_locked(std::move(s), now);
  return refused;
}

std::size_t RemoteIndex::upsert_pod(RemotePod pod, Clock::time_point now) {
  std::lock_guard lock(mu_);
  return upsert_pod_locked(std::move(pod), now);
}

void RemoteIndex::remove_pod(const std::string& uid, Clock::time_point now) {
  std::lock_guard lock(mu_);
  remove_pod_locked(uid, now);
}

std::size_t RemoteIndex::upsert_service(RemoteService service, Clock::time_point now) {
  std::lock_guard lock(mu_);
  return upsert_service_locked(std::move(service), now);
}

void RemoteIndex::remove_service(const std::string& uid, Clock::time_point now) {
  std::lock_guard lock(mu_);
  if (services_.erase(uid) != 0) set_claims("service/" + uid, {}, {}, now);
}

void RemoteIndex::attach(Sink* sink) {
  std::lock_guard lock(mu_);
  sink_ = sink;
  if (sink_ == nullptr) return;
  for (const auto& [addr, id] : assigned_) sink_->assign(addr, id);
}

std::optional<RemoteLabels> RemoteIndex::labels(std::uint32_t id) const {
  std::lock_guard lock(mu_);
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return std::nullopt;
  return owners_.at(it->second).labels;
}

std::vector<std::uint32_t> RemoteIndex::forget_retired(Clock::duration grace, Clock::time_point now) {
  std::lock_guard lock(mu_);
  std::vector<std::uint32_t> ids;
  for (auto it = owners_.begin(); it != owners_.end();) {
    const Owner& o = it->second;
    if (o.retired_at && now - *o.retired_at >= grace) {
      ids.push_back(o.id);
      by_id_.erase(o.id);
      it = owners_.erase(it);
    } else {
      ++it;
    }
  }
  return ids;
}

std::optional<std::uint32_t> RemoteIndex::lookup(const Address& addr) const {
  std::lock_guard lock(mu_);
  auto it = assigned_.find(addr);
  if (it == assigned_.end()) return std::nullopt;
  return it->second;
}

RemoteIndex::Counts RemoteIndex::counts() const {
  std::lock_guard lock(mu_);
  Counts c;
  c.pod = assigned_by_kind_[static_cast<std::size_t>(RemoteKind::kPod)];
  c.service = assigned_by_kind_[static_cast<std::size_t>(RemoteKind::kService)];
  c.node = assigned_by_kind_[static_cast<std::size_t>(RemoteKind::kNode)];
  c.refused = refused_;
  return c;
}

}  // namespace podsight::metadata
