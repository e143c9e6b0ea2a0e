// BPF objects a process holds (from /proc/PID/fdinfo) and the kernel's run-time statistics of
// programs by id: the same numbers for podsight, bpftrace, xdp-bench and the floor programs.
#include "common.hpp"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <dirent.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <set>
#include <stdexcept>
#include <string>

namespace podsight::bench {
namespace {

// The kernel keeps 15 characters of a program's name; its BTF keeps the whole function name.
std::string full_name(int fd, const bpf_prog_info& info) {
  if (info.btf_id == 0 || info.nr_func_info == 0) return info.name;
  bpf_func_info func{};
  bpf_prog_info more{};
  more.nr_func_info = 1;
  more.func_info_rec_size = sizeof func;
  more.func_info = reinterpret_cast<std::uint64_t>(&func);
  __u32 len = sizeof more;
  if (bpf_obj_get_info_by_fd(fd, &more, &len) != 0) return info.name;
  btf* b = btf__load_from_kernel_by_id(info.btf_id);
  if (b == nullptr) return info.name;
  std::string name = info.name;
  if (const btf_type* t = btf__type_by_id(b, func.type_id)) {
    const char* n = btf__name_by_offset(b, t->name_off);
    if (n != nullptr && std::string(n).rfind(info.name, 0) == 0) name = n;
  }
  btf__free(b);
  return name;
}

// Opens a program or map by id and hands its info to `describe`; {"id", "error"} if it cannot.
template <typename Info>
nlohmann::json by_id(std::uint32_t id, int (*get_fd)(__u32),
                     const std::function<nlohmann::json(int fd, const Info&)>& describe) {
  int fd = get_fd(id);
  if (fd < 0) return {{"id", id}, {"error", std::strerror(errno)}};
  Info info{};
  __u32 len = sizeof info;
  nlohmann::json out;
  if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0) {
    out = describe(fd, info);
  } else {
    out = {{"id", id}, {"error", std::strerror(errno)}};
  }
  ::close(fd);
  return out;
}

nlohmann::json prog_json(std::uint32_t id) {
  return by_id<bpf_prog_info>(id, bpf_prog_get_fd_by_id, [&](int fd, const bpf_prog_info& info) {
    return nlohmann::json{{"id", id},
                          {"name", full_name(fd, info)},
                          {"type", info.type},
                          {"run_time_ns", info.run_time_ns},
                          {"run_cnt", info.run_cnt},
                          {"recursion_misses", info.recursion_misses}};
  });
}

nlohmann::json map_json(std::uint32_t id) {
  return by_id<bpf_map_info>(id, bpf_map_get_fd_by_id, [&](int, const bpf_map_info& info) {
    return nlohmann::json{{"id", id},
                          {"name", info.name},
                          {"type", info.type},
                          {"key_size", info.key_size},
                          {"value_size", info.value_size},
                          {"max_entries", info.max_entries}};
  });
}

}  // namespace

// --pid P: {"progs": [...], "maps": [...]} for every BPF fd the process holds.
int held(const Args& a) {
  const std::string dir = "/proc/" + a.required("pid") + "/fdinfo";
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) throw std::runtime_error(dir + ": " + std::strerror(errno));
  std::set<std::uint32_t> progs;
  std::set<std::uint32_t> maps;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream in(dir + "/" + e->d_name);
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("prog_id:", 0) == 0)
        progs.insert(static_cast<std::uint32_t>(std::stoul(line.substr(8))));
      if (line.rfind("map_id:", 0) == 0) maps.insert(static_cast<std::uint32_t>(std::stoul(line.substr(7))));
    }
  }
  ::closedir(d);
  nlohmann::json out{{"progs", nlohmann::json::array()}, {"maps", nlohmann::json::array()}};
  for (auto id : progs) out["progs"].push_back(prog_json(id));
  for (auto id : maps) out["maps"].push_back(map_json(id));
  emit(out);
  return 0;
}

// --ids A,B,C: run-time statistics of these programs.
int progs(const Args& a) {
  nlohmann::json out = nlohmann::json::array();
  for (auto id : a.list("ids")) out.push_back(prog_json(static_cast<std::uint32_t>(id)));
  emit(out);
  return 0;
}

}  // namespace podsight::bench
