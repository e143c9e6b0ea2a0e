// Kubelet-shaped pod cgroups.
#include "integration/support/pod_cgroups.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace podsight::testing {

PodCgroups::PodCgroups() : root_(cgroup2_root()), prefix_("psk" + random_suffix(6)) {}

PodCgroups::~PodCgroups() {
  containers_.clear();
  for (auto it = made_.rbegin(); it != made_.rend(); ++it) ::rmdir((root_ + *it).c_str());
}

TestCgroup& PodCgroups::container(const TestPod& pod, const std::string& container_id,
                                  const std::string& driver, const std::string& qos) {
  std::vector<std::string> parts;
  if (driver == "systemd") {
    std::string uid = pod.uid;
    std::replace(uid.begin(), uid.end(), '-', '_');
    const std::string kp = prefix_ + "-kubepods";
    parts = {prefix_ + ".slice", kp + ".slice"};
    std::string pod_slice = kp;
    if (qos != "guaranteed") {
      parts.push_back(kp + "-" + qos + ".slice");
      pod_slice += "-" + qos;
    }
    parts.push_back(pod_slice + "-pod" + uid + ".slice");
    parts.push_back((pod.runtime == "cri-o" ? "crio-" : "cri-containerd-") + container_id + ".scope");
  } else {
    parts = {prefix_, "kubepods"};
    if (qos != "guaranteed") parts.push_back(qos);
    parts.push_back("pod" + pod.uid);
    parts.push_back((pod.runtime == "cri-o" ? "crio-" : "") + container_id);
  }
  std::string rel;
  for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
    rel += "/" + parts[i];
    if (::mkdir((root_ + rel).c_str(), 0755) == 0) {
      made_.push_back(rel);
    } else if (errno != EEXIST) {
      throw std::runtime_error("mkdir " + root_ + rel + ": " + std::strerror(errno));
    }
  }
  containers_.push_back(TestCgroup::at(rel + "/" + parts.back()));
  return *containers_.back();
}

void PodCgroups::remove(const TestCgroup& cg) {
  std::erase_if(containers_, [&](const auto& c) { return c.get() == &cg; });
}

}  // namespace podsight::testing
