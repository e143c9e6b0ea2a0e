// Pod cgroup path parser. The layouts (kubelet pkg/kubelet/cm, runc/crun systemd and fs managers):
//   systemd:
//   [<root>.slice/]<r->kubepods.slice[/<r->kubepods-<qos>.slice]/<r->kubepods[-<qos>]-pod<uid_>.slice/
//             {cri-containerd,crio,crio-conmon,docker}-<id>.scope
//   cgroupfs: [/<root>]/kubepods[/<qos>]/pod<uid>/{<id>,crio-<id>,crio-conmon-<id>}
// where <uid_> is the pod UID with '-' written as '_' (a '-' in a slice name means nesting).
#include "metadata/pod_cgroup.hpp"

#include <array>
#include <vector>

namespace podsight::metadata {
namespace {

constexpr std::size_t kUidLen = 36;
constexpr std::size_t kStaticUidLen = 32;
constexpr std::size_t kContainerIdLen = 64;

bool is_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

// 8-4-4-4-12 lowercase hex digits with `sep` between the groups; returns the canonical form with '-'.
// Static pods are the exception: their UID is kubelet's 32-hex-digit config hash, without separators.
std::optional<std::string> parse_uid(std::string_view s, char sep) {
  if (s.size() == kStaticUidLen) {
    for (char c : s) {
      if (!is_hex(c)) return std::nullopt;
    }
    return std::string(s);
  }
  if (s.size() != kUidLen) return std::nullopt;
  std::string out(s);
  for (std::size_t i = 0; i < s.size(); ++i) {
    const bool dash_pos = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash_pos) {
      if (s[i] != sep) return std::nullopt;
      out[i] = '-';
    } else if (!is_hex(s[i])) {
      return std::nullopt;
    }
  }
  return out;
}

bool is_container_id(std::string_view s) {
  if (s.size() != kContainerIdLen) return false;
  for (char c : s) {
    if (!is_hex(c)) return false;
  }
  return true;
}

bool consume_suffix(std::string_view& s, std::string_view suffix) {
  if (!s.ends_with(suffix)) return false;
  s.remove_suffix(suffix.size());
  return true;
}

bool consume_prefix(std::string_view& s, std::string_view prefix) {
  if (!s.starts_with(prefix)) return false;
  s.remove_prefix(prefix.size());
  return true;
}

// "kubepods" itself or "<root>-kubepods" (kubelet --cgroup-root under the systemd driver).
bool is_kubepods_slice_name(std::string_view name) {
  return name == "kubepods" || name.ends_with("-kubepods");
}

struct PodMatch {
  std::string uid;
  QosClass qos = QosClass::kGuaranteed;
  CgroupDriver driver = CgroupDriver::kCgroupfs;
};

// comps[i] is "<r->kubepods[-<qos>]-pod<uid_>.slice" and its ancestors are the matching slices.
std::optional<PodMatch> match_systemd_pod(const std::vector<std::string_view>& comps, std::size_t i) {
  std::string_view name = comps[i];
  if (!consume_suffix(name, ".slice")) return std::nullopt;
  const auto at = name.rfind("-pod");
  if (at == std::string_view::npos) return std::nullopt;
  auto uid = parse_uid(name.substr(at + 4), '_');
  if (!uid) return std::nullopt;
  name = name.substr(0, at);
  // name is now the parent slice's name: "<r->kubepods" or "<r->kubepods-<qos>".
  PodMatch m{std::move(*uid), QosClass::kGuaranteed, CgroupDriver::kSystemd};
  if (i == 0 || comps[i - 1].size() != name.size() + 6 || !comps[i - 1].starts_with(name) ||
      !comps[i - 1].ends_with(".slice")) {
    return std::nullopt;
  }
  std::string_view kubepods = name;
  if (consume_suffix(kubepods, "-burstable")) {
    m.qos = QosClass::kBurstable;
  } else if (consume_suffix(kubepods, "-besteffort")) {
    m.qos = QosClass::kBestEffort;
  }
  if (!is_kubepods_slice_name(kubepods)) return std::nullopt;
  if (m.qos != QosClass::kGuaranteed) {
    if (i < 2 || comps[i - 2].size() != kubepods.size() + 6 || !comps[i - 2].starts_with(kubepods) ||
        !comps[i - 2].ends_with(".slice")) {
      return std::nullopt;
    }
  }
  return m;
}

// comps[i] is "pod<uid>" under "kubepods" or "kubepods/<qos>".
std::optional<PodMatch> match_cgroupfs_pod(const std::vector<std::string_view>& comps, std::size_t i) {
  std::string_view name = comps[i];
  if (!consume_prefix(name, "pod") || i == 0) return std::nullopt;
  auto uid = parse_uid(name, '-');
  if (!uid) return std::nullopt;
  PodMatch m{std::move(*uid), QosClass::kGuaranteed, CgroupDriver::kCgroupfs};
  const std::string_view parent = comps[i - 1];
  if (parent == "kubepods") return m;
  if (i < 2 || comps[i - 2] != "kubepods") return std::nullopt;
  if (parent == "burstable") {
    m.qos = QosClass::kBurstable;
  } else if (parent == "besteffort") {
    m.qos = QosClass::kBestEffort;
  } else {
    return std::nullopt;
  }
  return m;
}

// The pod's child cgroup: fills container_id, runtime and conmon when it is a container the runtimes
// create; leaves them empty otherwise.
void match_container(std::string_view name, PodCgroup& out) {
  const bool scope = consume_suffix(name, ".scope");
  struct Prefix {
    std::string_view text;
    Runtime runtime;
    bool conmon;
  };
  // Longest first: "crio-conmon-" must win over "crio-".
  constexpr std::array<Prefix, 4> kPrefixes{{{"crio-conmon-", Runtime::kCrio, true},
                                             {"cri-containerd-", Runtime::kContainerd, false},
                                             {"crio-", Runtime::kCrio, false},
                                             {"docker-", Runtime::kDocker, false}}};
  for (const auto& p : kPrefixes) {
    std::string_view rest = name;
    if (consume_prefix(rest, p.text) && is_container_id(rest)) {
      out.container_id = std::string(rest);
      out.runtime = p.runtime;
      out.conmon = p.conmon;
      return;
    }
  }
  if (!scope && is_container_id(name)) out.container_id = std::string(name);
}

}  // namespace

std::string_view to_string(CgroupDriver d) { return d == CgroupDriver::kSystemd ? "systemd" : "cgroupfs"; }

std::string_view to_string(QosClass q) {
  switch (q) {
    case QosClass::kGuaranteed:
      return "Guaranteed";
    case QosClass::kBurstable:
      return "Burstable";
    case QosClass::kBestEffort:
      return "BestEffort";
  }
  return "";
}

std::string_view to_string(Runtime r) {
  switch (r) {
    case Runtime::kContainerd:
      return "containerd";
    case Runtime::kCrio:
      return "cri-o";
    case Runtime::kDocker:
      return "docker";
    case Runtime::kUnknown:
      return "";
  }
  return "";
}

std::optional<PodCgroup> parse_pod_cgroup(std::string_view path) {
  if (path.size() > kMaxPodCgroupPath) return std::nullopt;
  std::vector<std::string_view> comps;
  std::size_t pos = 0;
  while (pos < path.size()) {
    std::size_t next = path.find('/', pos);
    if (next == std::string_view::npos) next = path.size();
    if (next > pos) {
      if (comps.size() == kMaxPodCgroupDepth) return std::nullopt;
      comps.push_back(path.substr(pos, next - pos));
    }
    pos = next + 1;
  }
  for (std::size_t i = 0; i < comps.size(); ++i) {
    auto m = match_systemd_pod(comps, i);
    if (!m) m = match_cgroupfs_pod(comps, i);
    if (!m) continue;
    PodCgroup out;
    out.pod_uid = std::move(m->uid);
    out.qos = m->qos;
    out.driver = m->driver;
    if (i + 1 < comps.size()) match_container(comps[i + 1], out);
    return out;
  }
  return std::nullopt;
}

}  // namespace podsight::metadata
