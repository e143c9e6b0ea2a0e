// Feature probes: kernel release, mounts, BTF, tracepoints, kprobes, fentry.
#include "bpf/probe.hpp"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <vector>

namespace podsight::bpf {
namespace {

// fd of a minimal program ("return 0") of `type`, or -1 if the kernel refuses it.
int load_minimal_program(bpf_prog_type type, const bpf_prog_load_opts* opts) {
  const bpf_insn insns[] = {
      {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0},
      {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
  };
  return bpf_prog_load(type, "podsight_probe", "GPL", insns, 2, opts);
}

// Loads a program that returns 0 as `type` and attaches it with BPF_RAW_TRACEPOINT_OPEN (to the raw
// tracepoint `name`, or, with a null name, to the target in `opts`), then detaches it: whether such a
// program can run there on this kernel.
bool attaches_minimal_program(bpf_prog_type type, const char* name, const bpf_prog_load_opts* opts) {
  const int fd = load_minimal_program(type, opts);
  if (fd < 0) return false;
  const int link = bpf_raw_tracepoint_open(name, fd);
  if (link >= 0) ::close(link);
  ::close(fd);
  return link >= 0;
}

std::string unescape_mountinfo(std::string_view s) {
  auto is_oct = [](char c) { return c >= '0' && c <= '7'; };
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && is_oct(s[i + 1]) && is_oct(s[i + 2]) && is_oct(s[i + 3])) {
      out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
      continue;
    }
    out += s[i];
  }
  return out;
}

std::vector<std::string_view> split_spaces(std::string_view line) {
  std::vector<std::string_view> f;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && line[i] == ' ') ++i;
    std::size_t j = i;
    while (j < line.size() && line[j] != ' ') ++j;
    if (j > i) f.push_back(line.substr(i, j - i));
    i = j;
  }
  return f;
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace

Result<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return errno_error("open", path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

MountPoints parse_mountinfo(std::string_view content) {
  MountPoints m;
  while (!content.empty()) {
    auto nl = content.find('\n');
    std::string_view line = content.substr(0, nl);
    content = nl == std::string_view::npos ? std::string_view{} : content.substr(nl + 1);
    // id parent major:minor root mountpoint options [optional...] - fstype source superoptions
    auto f = split_spaces(line);
    std::size_t dash = 0;
    for (std::size_t i = 6; i < f.size(); ++i) {
      if (f[i] == "-") {
        dash = i;
        break;
      }
    }
    if (dash == 0 || dash + 1 >= f.size()) continue;
    std::string_view fstype = f[dash + 1];
    std::string mountpoint = unescape_mountinfo(f[4]);
    std::string_view root = f[3];
    if (fstype == "cgroup2" && m.cgroup2.empty() && root == "/") m.cgroup2 = mountpoint;
    if (fstype == "bpf" && m.bpffs.empty()) m.bpffs = mountpoint;
    if (fstype == "tracefs" && m.tracefs.empty()) m.tracefs = mountpoint;
  }
  return m;
}

Features::Features() {
  struct utsname u {};
  if (::uname(&u) == 0) release_ = u.release;
  int major = 0;
  int minor = 0;
  if (std::sscanf(release_.c_str(), "%d.%d", &major, &minor) == 2) version_ = {major, minor};
  if (auto mi = read_file("/proc/self/mountinfo")) mounts_ = parse_mountinfo(*mi);
}

Features::~Features() { btf__free(btf_); }

const struct btf* Features::vmlinux_btf() {
  std::lock_guard lock(mu_);
  if (!btf_loaded_) {
    btf_loaded_ = true;
    btf_ = btf__load_vmlinux_btf();
    if (btf_ == nullptr) btf_ = nullptr;  // libbpf returns NULL with errno set on failure
  }
  return btf_;
}

void Features::release_btf() {
  std::lock_guard lock(mu_);
  btf__free(btf_);
  btf_ = nullptr;
  btf_loaded_ = false;
}

bool Features::has_vmlinux_btf() { return vmlinux_btf() != nullptr; }

bool Features::has_tp_btf(std::string_view event) {
  const auto* b = vmlinux_btf();
  if (b == nullptr) return false;
  std::string name = "btf_trace_" + std::string(event);
  return btf__find_by_name_kind(b, name.c_str(), BTF_KIND_TYPEDEF) > 0;
}

bool Features::cached(std::map<std::string, bool, std::less<>>& cache, std::string_view key,
                      const std::function<bool()>& probe) {
  {
    std::lock_guard lock(mu_);
    if (auto it = cache.find(key); it != cache.end()) return it->second;
  }
  const bool ok = probe();
  std::lock_guard lock(mu_);
  cache[std::string(key)] = ok;
  return ok;
}

bool Features::has_raw_tracepoint(std::string_view event) {
  return cached(raw_tp_cache_, event, [&] {
    const std::string name(event);
    return attaches_minimal_program(BPF_PROG_TYPE_RAW_TRACEPOINT, name.c_str(), nullptr);
  });
}

bool Features::has_kprobes() const { return exists("/sys/bus/event_source/devices/kprobe/type"); }

std::uint32_t Features::btf_func_id(const std::string& func) {
  const auto* b = vmlinux_btf();
  if (b == nullptr) return 0;
  const int id = btf__find_by_name_kind(b, func.c_str(), BTF_KIND_FUNC);
  return id > 0 ? static_cast<std::uint32_t>(id) : 0;
}

bool Features::can_load_fentry(std::string_view func) {
  return cached(fentry_cache_, func, [&] {
    const std::uint32_t id = btf_func_id(std::string(func));
    if (id == 0) return false;
    LIBBPF_OPTS(bpf_prog_load_opts, opts, .expected_attach_type = BPF_TRACE_FENTRY, .attach_btf_id = id);
    // Loading is not enough on every kernel: attaching is what fails without trampolines.
    return attaches_minimal_program(BPF_PROG_TYPE_TRACING, nullptr, &opts);
  });
}

bool Features::can_load_iter(std::string_view target) {
  return cached(iter_cache_, target, [&] {
    const std::uint32_t id = btf_func_id("bpf_iter_" + std::string(target));
    if (id == 0) return false;
    LIBBPF_OPTS(bpf_prog_load_opts, opts, .expected_attach_type = BPF_TRACE_ITER, .attach_btf_id = id);
    // Loading is the test: attaching a map iterator needs a map of that type.
    const int fd = load_minimal_program(BPF_PROG_TYPE_TRACING, &opts);
    if (fd >= 0) ::close(fd);
    return fd >= 0;
  });
}

bool Features::memcg_accounting() const {
  return version_.first > 5 || (version_.first == 5 && version_.second >= 11);
}

bool Features::tracing_maps_may_allocate() const {
  return version_.first > 6 || (version_.first == 6 && version_.second >= 1);
}

}  // namespace podsight::bpf
