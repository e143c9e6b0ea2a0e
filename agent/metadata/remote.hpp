// Who a remote address is, for the opt-in remote labels of outbound TCP metrics: the cluster's pods,
// services and nodes by IP, as the Kubernetes API describes them. Every owner (a pod, a service, a
// node) gets an endpoint id that never passes to another owner, and the index publishes address -> id
// to a sink (the tcp family's kernel map), so that a connection is attributed when it is made and its
// counters never move to whoever gets the address next.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace podsight::metadata {

// An IP address as the kernel map keys it: IPv6, with IPv4 as ::ffff:a.b.c.d.
using Address = std::array<std::uint8_t, 16>;
// An IPv4 or IPv6 literal (no zone, no prefix); nullopt for anything else ("None", "", garbage).
std::optional<Address> parse_address(std::string_view text);

enum class RemoteKind : std::uint8_t { kExternal, kLocal, kPod, kService, kNode };
// The `remote` label value: external, local, pod, service, node.
std::string_view to_string(RemoteKind k);

struct RemoteLabels {
  RemoteKind kind = RemoteKind::kExternal;
  std::string namespace_;
  std::string pod;
  std::string service;

  bool operator==(const RemoteLabels&) const = default;
};

// The fields of a pod the index uses.
struct RemotePod {
  std::string uid;
  std::string namespace_;
  std::string name;
  std::string node;
  std::vector<std::string> host_ips;  // status.hostIPs (or hostIP): the node's addresses
  std::vector<std::string> ips;       // status.podIPs (or podIP)
  bool host_network = false;          // its IPs are the node's: they name the node, not the pod
  bool terminated = false;            // Succeeded or Failed: its IPs are free for other pods

  bool operator==(const RemotePod&) const = default;
};

struct RemoteService {
  std::string uid;
  std::string namespace_;
  std::string name;
  std::vector<std::string> ips;  // cluster IPs, external IPs, load-balancer ingress IPs

  bool operator==(const RemoteService&) const = default;
};

class RemoteIndex {
 public:
  using Clock = std::chrono::steady_clock;
  // Ids the kernel uses by itself: an address nobody claims, and loopback.
  static constexpr std::uint32_t kExternalId = 0;
  static constexpr std::uint32_t kLocalId = 1;
  static constexpr std::uint32_t kFirstId = 16;

  // Receives address -> id assignments, with the index's lock held (so keep it to a map update).
  class Sink {
   public:
    virtual ~Sink() = default;
    virtual void assign(const Address& addr, std::uint32_t id) = 0;
    virtual void unassign(const Address& addr) = 0;
  };

  explicit RemoteIndex(std::size_t max_addresses) : max_addresses_(max_addresses) {}

  // A complete list replaces what was known of that kind; objects missing from it are gone as of
  // `now`. Return how many addresses did not fit under max_addresses.
  std::size_t replace_pods(std::vector<RemotePod> pods, Clock::time_point now);
  std::size_t replace_services(std::vector<RemoteService> services, Clock::time_point now);
  // Watch events: added or modified, deleted. Upserts return the addresses that did not fit.
  std::size_t upsert_pod(RemotePod pod, Clock::time_point now);
  void remove_pod(const std::string& uid, Clock::time_point now);
  std::size_t upsert_service(RemoteService service, Clock::time_point now);
  void remove_service(const std::string& uid, Clock::time_point now);

  // Sends every current assignment to `sink` and every later change; nullptr detaches.
  void attach(Sink* sink);

  // Who endpoint id `id` is. Retired owners (deleted, or no address left) keep their labels until
  // forget_retired(); nullopt for an id never given or forgotten.
  [[nodiscard]] std::optional<RemoteLabels> labels(std::uint32_t id) const;
  // Forgets owners retired at least `grace` before `now`; returns their ids (whose counters can go).
  std::vector<std::uint32_t> forget_retired(Clock::duration grace, Clock::time_point now);
  // The id an address is assigned to now, if any.
  [[nodiscard]] std::optional<std::uint32_t> lookup(const Address& addr) const;

  struct Counts {
    std::size_t pod = 0, service = 0, node = 0;  // addresses assigned, by kind of owner
    std::size_t refused = 0;                     // address claims refused (max_addresses), ever
  };
  [[nodiscard]] Counts counts() const;

 private:
  struct AddressHash {
    std::size_t operator()(const Address& a) const noexcept;
  };
  using Addresses = std::vector<Address>;  // sorted, unique
  struct Owner {
    const std::string* key = nullptr;  // its key in ids_
    RemoteLabels labels;
    Addresses claims;
    std::uint64_t seq = 0;  // when it last claimed: the most recent claim of an address wins
    std::optional<Clock::time_point> retired_at;
  };
  struct AddressState {
    std::vector<std::uint32_t> claimants;  // owners claiming it
    std::uint32_t assigned = 0;            // what the sink was told; 0: nothing
  };
  struct PodState {
    std::string node;
    Addresses node_addrs;  // what this pod says its node's addresses are
  };

  std::size_t upsert_pod_locked(RemotePod pod, Clock::time_point now);
  void remove_pod_locked(const std::string& uid, Clock::time_point now);
  std::size_t upsert_service_locked(RemoteService service, Clock::time_point now);
  // Sets what owner `key` claims (creating or reviving it); an empty set retires it.
  std::size_t set_claims(const std::string& key, const RemoteLabels& labels, Addresses claims,
                         Clock::time_point now);
  // Adds (+1) or withdraws (-1) a pod's word on its node's addresses, and updates the node's claims.
  void count_node_addrs(const std::string& node, const Addresses& addrs, int delta, Clock::time_point now);
  void publish(const Address& addr);
  std::uint32_t next_id();

  std::size_t max_addresses_;
  mutable std::mutex mu_;
  Sink* sink_ = nullptr;
  std::uint32_t last_id_ = kFirstId - 1;
  std::uint64_t seq_ = 0;
  std::size_t refused_ = 0;
  std::unordered_map<std::string, std::uint32_t> ids_;  // "pod/<uid>", "service/<uid>", "node/<name>" -> id
  std::unordered_map<std::uint32_t, Owner> owners_;
  std::unordered_map<Address, AddressState, AddressHash> addresses_;  // claimed or assigned
  std::size_t assigned_count_ = 0;
  std::array<std::size_t, 5> assigned_by_kind_{};
  std::unordered_map<std::string, PodState> pods_;  // uid -> what it contributed
  std::set<std::string> services_;                  // uids, for replace
  // node -> address -> how many pods say the node has it
  std::unordered_map<std::string, std::map<Address, std::uint32_t>> node_addrs_;
};

}  // namespace podsight::metadata
