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

std::vector<Address> parse_all(const std::vector<std::string>& ips) {
  std::vector<Address> out;
  for (const auto& ip : ips) {
    if (auto a = parse_address(ip)) out.push_back(*a);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
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

std::size_t RemoteIndex::AddressHash::operator()(const Address& a) const noexcept {
  std::uint64_t lo = 0, hi = 0;
  std::memcpy(&hi, a.data(), 8);
  std::memcpy(&lo, a.data() + 8, 8);
  return std::hash<std::uint64_t>{}(lo ^ (hi * 0x9e3779b97f4a7c15ULL));
}

std::uint32_t RemoteIndex::next_id() {
  // 2^32 ids take billions of pods to use up; after that, skip the ones still in use.
  do {
    ++last_id_;
    if (last_id_ < kFirstId) last_id_ = kFirstId;
  } while (owners_.count(last_id_) != 0);
  return last_id_;
}

void RemoteIndex::publish(const Address& addr) {
  auto it = addresses_.find(addr);
  if (it == addresses_.end()) return;
  AddressState& st = it->second;
  const Owner* best = nullptr;
  std::uint32_t winner = 0;
  for (auto id : st.claimants) {
    const Owner& o = owners_.at(id);
    if (best == nullptr ||
        std::pair(priority(o.labels.kind), o.seq) > std::pair(priority(best->labels.kind), best->seq)) {
      best = &o;
      winner = id;
    }
  }
  if (winner != st.assigned) {
    if (st.assigned != 0) {
      --assigned_by_kind_[static_cast<std::size_t>(owners_.at(st.assigned).labels.kind)];
      --assigned_count_;
    }
    if (winner != 0) {
      ++assigned_by_kind_[static_cast<std::size_t>(best->labels.kind)];
      ++assigned_count_;
      if (sink_ != nullptr) sink_->assign(addr, winner);
    } else if (sink_ != nullptr) {
      sink_->unassign(addr);
    }
    st.assigned = winner;
  }
  if (st.claimants.empty()) addresses_.erase(it);
}

std::size_t RemoteIndex::set_claims(const std::string& key, const RemoteLabels& labels, Addresses claims,
                                    Clock::time_point now) {
  auto k = ids_.find(key);
  if (k == ids_.end()) {
    if (claims.empty()) return 0;  // an owner is made when it first claims something
    const std::uint32_t id = next_id();
    k = ids_.emplace(key, id).first;
    owners_[id].key = &k->first;
  }
  const std::uint32_t id = k->second;
  Owner& o = owners_.at(id);
  if (!claims.empty()) o.labels = labels;  // a retired owner keeps the labels its counters carry
  std::size_t refused = 0;
  // Addresses new to the index are refused once it holds max_addresses of them.
  std::erase_if(claims, [&](const Address& a) {
    if (addresses_.count(a) != 0 || addresses_.size() < max_addresses_) return false;
    ++refused;
    return true;
  });
  refused_ += refused;
  Addresses touched;
  std::set_symmetric_difference(o.claims.begin(), o.claims.end(), claims.begin(), claims.end(),
                                std::back_inserter(touched));
  for (const auto& a : touched) {
    auto& claimants = addresses_[a].claimants;
    if (std::binary_search(claims.begin(), claims.end(), a)) {
      claimants.push_back(id);
    } else {
      std::erase(claimants, id);
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

void RemoteIndex::count_node_addrs(const std::string& node, const Addresses& addrs, int delta,
                                   Clock::time_point now) {
  auto& counts = node_addrs_[node];
  for (const auto& a : addrs) {
    auto& n = counts[a];
    n = static_cast<std::uint32_t>(static_cast<int>(n) + delta);
    if (n == 0) counts.erase(a);
  }
  Addresses claims;
  for (const auto& [a, n] : counts) claims.push_back(a);
  if (counts.empty()) node_addrs_.erase(node);
  set_claims("node/" + node, RemoteLabels{RemoteKind::kNode, {}, {}, {}}, std::move(claims), now);
}

std::size_t RemoteIndex::upsert_pod_locked(RemotePod pod, Clock::time_point now) {
  // A terminated pod says nothing any more: not its own addresses (free for others), not its node's.
  PodState state;
  Addresses own;
  if (!pod.terminated && !pod.node.empty()) {
    state.node = pod.node;
    state.node_addrs = parse_all(pod.host_ips);
    if (pod.host_network) {
      // Its addresses are the node's: several host-network pods share them.
      auto ips = parse_all(pod.ips);
      state.node_addrs.insert(state.node_addrs.end(), ips.begin(), ips.end());
      std::sort(state.node_addrs.begin(), state.node_addrs.end());
      state.node_addrs.erase(std::unique(state.node_addrs.begin(), state.node_addrs.end()),
                             state.node_addrs.end());
    }
  }
  if (!pod.terminated && !pod.host_network) own = parse_all(pod.ips);
  auto it = pods_.find(pod.uid);
  const bool same_node =
      it != pods_.end() && it->second.node == state.node && it->second.node_addrs == state.node_addrs;
  if (it != pods_.end() && !same_node) {
    PodState old = std::move(it->second);
    pods_.erase(it);
    if (!old.node.empty()) count_node_addrs(old.node, old.node_addrs, -1, now);
  }
  std::size_t refused = set_claims(
      "pod/" + pod.uid, RemoteLabels{RemoteKind::kPod, pod.namespace_, pod.name, {}}, std::move(own), now);
  if (!same_node && !state.node.empty()) {
    count_node_addrs(state.node, state.node_addrs, +1, now);
    pods_.emplace(pod.uid, std::move(state));
  }
  return refused;
}

void RemoteIndex::remove_pod_locked(const std::string& uid, Clock::time_point now) {
  set_claims("pod/" + uid, {}, {}, now);
  auto it = pods_.find(uid);
  if (it == pods_.end()) return;
  PodState state = std::move(it->second);
  pods_.erase(it);
  if (!state.node.empty()) count_node_addrs(state.node, state.node_addrs, -1, now);
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
  std::set<std::string> gone;
  for (const auto& [uid, state] : pods_) {
    if (listed.count(uid) == 0) gone.insert(uid);
  }
  // Pods that claim addresses without a node (an API object that never says where it runs).
  for (const auto& [key, id] : ids_) {
    if (key.rfind("pod/", 0) == 0 && !owners_.at(id).claims.empty() && listed.count(key.substr(4)) == 0)
      gone.insert(key.substr(4));
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
  for (const auto& [addr, st] : addresses_) {
    if (st.assigned != 0) sink_->assign(addr, st.assigned);
  }
}

std::optional<RemoteLabels> RemoteIndex::labels(std::uint32_t id) const {
  std::lock_guard lock(mu_);
  auto it = owners_.find(id);
  if (it == owners_.end()) return std::nullopt;
  return it->second.labels;
}

std::vector<std::uint32_t> RemoteIndex::forget_retired(Clock::duration grace, Clock::time_point now) {
  std::lock_guard lock(mu_);
  std::vector<std::uint32_t> ids;
  for (auto it = owners_.begin(); it != owners_.end();) {
    const Owner& o = it->second;
    if (o.retired_at && now - *o.retired_at >= grace) {
      ids.push_back(it->first);
      ids_.erase(*o.key);
      it = owners_.erase(it);
    } else {
      ++it;
    }
  }
  return ids;
}

std::optional<std::uint32_t> RemoteIndex::lookup(const Address& addr) const {
  std::lock_guard lock(mu_);
  auto it = addresses_.find(addr);
  if (it == addresses_.end() || it->second.assigned == 0) return std::nullopt;
  return it->second.assigned;
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
