// Fuzzes the pod cgroup path parser (metadata::parse_pod_cgroup) with arbitrary bytes. It must never
// crash; what it accepts is a canonical pod UID and an empty or 64-hex container ID, both spelled in
// the path; and its answer depends only on the pod component and the one below it: a child cgroup,
// doubled slashes or an unrelated prefix leave it as it was.
#include "metadata/pod_cgroup.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

namespace {

using podsight::metadata::parse_pod_cgroup;
using podsight::metadata::PodCgroup;
using podsight::metadata::Runtime;

[[noreturn]] void fail(const char* what, std::string_view input, const std::string& detail) {
  std::fprintf(stderr, "cgroup_path fuzz: %s: %s\n---- input ----\n%.*s\n----\n", what, detail.c_str(),
               static_cast<int>(input.size()), input.data());
  std::abort();
}

bool lower_hex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// 8-4-4-4-12 lower-case hex with dashes, or a static pod's 32-hex config hash.
bool canonical_uid(std::string_view u) {
  if (u.size() == 32) return lower_hex(u);
  if (u.size() != 36) return false;
  for (std::size_t i = 0; i < u.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? u[i] != '-' : !lower_hex(u.substr(i, 1))) return false;
  }
  return true;
}

std::size_t components(std::string_view path) {
  std::size_t n = 0;
  for (std::size_t i = 0; i < path.size(); ++i) {
    if (path[i] != '/' && (i == 0 || path[i - 1] == '/')) ++n;
  }
  return n;
}

std::string describe(const std::optional<PodCgroup>& p) {
  if (!p) return "not a pod";
  return "pod " + p->pod_uid + " container " + p->container_id + " runtime " +
         std::string(to_string(p->runtime)) + " qos " + std::string(to_string(p->qos)) + " driver " +
         std::string(to_string(p->driver)) + (p->conmon ? " conmon" : "");
}

// `variant` of `path` must parse the same, when it is still within the parser's bounds.
void same_as(std::string_view path, const std::optional<PodCgroup>& want, const std::string& variant,
             const char* what) {
  if (variant.size() > podsight::metadata::kMaxPodCgroupPath ||
      components(variant) > podsight::metadata::kMaxPodCgroupDepth) {
    return;
  }
  const auto got = parse_pod_cgroup(variant);
  if (got != want) fail(what, path, describe(want) + " became " + describe(got));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view path(reinterpret_cast<const char*>(data), size);
  const auto pod = parse_pod_cgroup(path);
  if (pod) {
    if (path.size() > podsight::metadata::kMaxPodCgroupPath) fail("accepted an overlong path", path, "");
    if (components(path) > podsight::metadata::kMaxPodCgroupDepth) fail("accepted a too deep path", path, "");
    if (!canonical_uid(pod->pod_uid)) fail("not a canonical pod UID", path, pod->pod_uid);
    // The UID is in the path as kubelet writes it: with '_' for '-' in a systemd slice name.
    std::string spelled = pod->pod_uid;
    if (pod->driver == podsight::metadata::CgroupDriver::kSystemd) {
      for (auto& c : spelled) c = c == '-' ? '_' : c;
      spelled = "-pod" + spelled + ".slice";
    } else {
      spelled = "pod" + spelled;
    }
    if (path.find(spelled) == std::string_view::npos) fail("UID not in the path", path, spelled);
    if (!pod->container_id.empty()) {
      if (pod->container_id.size() != 64 || !lower_hex(pod->container_id))
        fail("not a container ID", path, pod->container_id);
      if (path.find(pod->container_id) == std::string_view::npos)
        fail("container ID not in the path", path, pod->container_id);
    } else if (pod->runtime != Runtime::kUnknown || pod->conmon) {
      fail("a runtime without a container", path, describe(pod));
    }
    if (pod->conmon && pod->runtime != Runtime::kCrio) fail("conmon of a runtime other than CRI-O", path, "");
  }
  // Nothing below the container changes what it is ("init.scope" is no pod or container name).
  same_as(path, pod, std::string(path) + "/init.scope", "a child cgroup changed the answer");
  // Empty components are nothing.
  std::string doubled;
  for (char c : path) {
    doubled += c;
    if (c == '/') doubled += '/';
  }
  same_as(path, pod, doubled, "doubled slashes changed the answer");
  // A root above that is no slice, no "kubepods" and no pod: the pod's own ancestors decide.
  same_as(path, pod, "/fuzzroot/" + std::string(path), "an unrelated prefix changed the answer");
  return 0;
}
