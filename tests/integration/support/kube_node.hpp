// A Kubernetes node as the agent sees it, for integration tests that serve pods from the test API
// server (support/kube_api.hpp): kubelet-shaped pod cgroups in the real cgroup2 tree, pod UIDs and
// container IDs derived from a seed, and a kubeconfig that reaches the test API server.
#pragma once

#include "integration/support/harness.hpp"
#include "support/kube_api.hpp"

#include <memory>
#include <string>
#include <vector>

namespace podsight::testing {

// 64 lower-case hex digits (a container ID) and a version-4-shaped UUID (a pod UID), the same for the
// same seed.
std::string hex_id(const std::string& seed);
std::string uuid(const std::string& seed);

// A kubelet-shaped cgroup tree under a unique --cgroup-root: the parents are made here, each
// container cgroup is a TestCgroup (so Placement{cgroup, netns} can put traffic in it too). Removed
// leaves first on destruction.
class PodCgroups {
 public:
  PodCgroups();
  ~PodCgroups();
  PodCgroups(const PodCgroups&) = delete;
  PodCgroups& operator=(const PodCgroups&) = delete;

  // The container cgroup of `pod`, named the way the cgroup driver ("systemd" or "cgroupfs") names it
  // for the QoS class ("guaranteed", "burstable", "besteffort") and the pod's runtime.
  TestCgroup& container(const TestPod& pod, const std::string& container_id, const std::string& driver,
                        const std::string& qos);
  // The container ends: its cgroup goes (after its processes), as kubelet removes it.
  void remove(const TestCgroup& cg);

 private:
  std::string root_;
  std::string prefix_;
  std::vector<std::string> made_;
  std::vector<std::unique_ptr<TestCgroup>> containers_;
};

// Writes a kubeconfig (YAML, current context "e2e") for https://127.0.0.1:`port` with the PKI's CA
// inline (certificate-authority-data) and a bearer token.
void write_kubeconfig(const std::string& path, int port, const TestPki& pki, const std::string& token);

}  // namespace podsight::testing
