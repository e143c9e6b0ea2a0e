// Kubelet-shaped pod cgroups, seeded IDs and a kubeconfig for the test API server.
#include "integration/support/kube_node.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <stdexcept>

namespace podsight::testing {
namespace {

std::string base64(const std::string& in) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const unsigned v = (static_cast<unsigned char>(in[i]) << 16) |
                       (static_cast<unsigned char>(in[i + 1]) << 8) | static_cast<unsigned char>(in[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += k[(v >> s) & 63];
  }
  if (i < in.size()) {
    unsigned v = static_cast<unsigned char>(in[i]) << 16;
    if (i + 1 < in.size()) v |= static_cast<unsigned char>(in[i + 1]) << 8;
    out += k[(v >> 18) & 63];
    out += k[(v >> 12) & 63];
    out += i + 1 < in.size() ? k[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

}  // namespace

std::string hex_id(const std::string& seed) {
  std::string out;
  std::size_t h = std::hash<std::string>{}(seed);
  while (out.size() < 64) {
    h = h * 6364136223846793005ULL + 1442695040888963407ULL;
    out += "0123456789abcdef"[(h >> 60) & 15];
  }
  return out;
}

std::string uuid(const std::string& seed) {
  std::string h = hex_id(seed).substr(0, 32);
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-4" + h.substr(13, 3) + "-8" + h.substr(17, 3) + "-" +
         h.substr(20, 12);
}

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

void write_kubeconfig(const std::string& path, int port, const TestPki& pki, const std::string& token) {
  write_file(path,
             "apiVersion: v1\nkind: Config\ncurrent-context: e2e\nclusters:\n- name: test\n  cluster:\n"
             "    server: https://127.0.0.1:" +
                 std::to_string(port) +
                 "\n    certificate-authority-data: " + base64(TestPki::read(pki.ca_cert())) +
                 "\ncontexts:\n- name: e2e\n  context: {cluster: test, user: agent}\nusers:\n- name: agent\n"
                 "  user:\n    token: " +
                 token + "\n");
}

}  // namespace podsight::testing
