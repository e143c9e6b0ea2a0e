// Pod cgroups as kubelet makes them, for integration tests that serve the same pods from the test API
// server (support/kube_api.hpp): the real cgroup2 tree, either cgroup driver, every QoS class.
#pragma once

#include "integration/support/harness.hpp"
#include "support/kube_api.hpp"

#include <memory>
#include <string>
#include <vector>

namespace podsight::testing {

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

}  // namespace podsight::testing
