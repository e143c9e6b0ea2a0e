// `xdp-bench pass` without xdp-bench's tracepoints: on kernels that dropped the xdp_redirect_map_err
// tracepoint (6.18 among them) xdp-bench 1.3 cannot load its object at all, because it loads the
// tracepoint programs it uses for statistics together with the XDP program. This subcommand takes
// the BPF object xdp-bench embeds (its skeleton's ELF image, found in the xdp-bench binary), loads
// only its XDP program, `xdp_basic_prog`, configured as `xdp-bench pass` configures it (action
// XDP_PASS, no-touch mode, no per-queue statistics, one counter slot per CPU), attaches it natively
// to --ifname, prints its id and stays until stdin closes. The bytecode in the kernel is xdp-bench's.
#include "common.hpp"

#include "bpf/handles.hpp"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

namespace podsight::bench {
namespace {

constexpr std::uint16_t kEmBpf = 247;
constexpr const char* kProgram = "xdp_basic_prog";

template <typename T>
T read_at(const std::vector<char>& b, std::size_t off) {
  T v{};
  if (off + sizeof v > b.size()) throw std::runtime_error("truncated ELF header");
  std::memcpy(&v, b.data() + off, sizeof v);
  return v;
}

// Every little-endian 64-bit BPF ELF image inside `bin`, as (offset, size).
std::vector<std::pair<std::size_t, std::size_t>> embedded_bpf_objects(const std::vector<char>& bin) {
  static const char magic[] = {0x7f, 'E', 'L', 'F', 2, 1, 1};
  std::vector<std::pair<std::size_t, std::size_t>> out;
  for (auto it = bin.begin();; ++it) {
    it = std::search(it, bin.end(), std::begin(magic), std::end(magic));
    if (it == bin.end()) break;
    const auto off = static_cast<std::size_t>(it - bin.begin());
    if (off + 64 > bin.size() || read_at<std::uint16_t>(bin, off + 18) != kEmBpf) continue;
    const auto shoff = read_at<std::uint64_t>(bin, off + 0x28);
    const auto shentsize = read_at<std::uint16_t>(bin, off + 0x3a);
    const auto shnum = read_at<std::uint16_t>(bin, off + 0x3c);
    const std::size_t size = shoff + std::size_t{shentsize} * shnum;
    if (size > 64 && off + size <= bin.size()) out.emplace_back(off, size);
  }
  return out;
}

// Writes `value` into the read-only data variable `name` before load (what a skeleton's
// rodata->name = value does).
void set_rodata(bpf_object* obj, const char* name, const void* value, std::size_t len) {
  const btf* b = bpf_object__btf(obj);
  const int sec = b ? btf__find_by_name_kind(b, ".rodata", BTF_KIND_DATASEC) : -1;
  if (sec < 0) throw std::runtime_error("xdp-bench object has no .rodata BTF");
  const btf_type* t = btf__type_by_id(b, static_cast<__u32>(sec));
  const btf_var_secinfo* v = btf_var_secinfos(t);
  bpf_map* rodata = nullptr;
  bpf_map* m = nullptr;
  bpf_object__for_each_map(m, obj) {
    const std::string n = bpf_map__name(m);
    if (bpf_map__is_internal(m) && n.size() >= 7 && n.compare(n.size() - 7, 7, ".rodata") == 0) rodata = m;
  }
  if (rodata == nullptr) throw std::runtime_error("xdp-bench object has no .rodata map");
  for (int i = 0; i < btf_vlen(t); ++i, ++v) {
    const btf_type* var = btf__type_by_id(b, v->type);
    if (std::strcmp(btf__name_by_offset(b, var->name_off), name) != 0) continue;
    if (v->size != len) throw std::runtime_error(std::string("unexpected size of ") + name);
    std::size_t size = 0;
    const auto* image = static_cast<const char*>(bpf_map__initial_value(rodata, &size));
    if (image == nullptr || v->offset + len > size) throw std::runtime_error("no .rodata image");
    std::vector<char> data(image, image + size);
    std::memcpy(data.data() + v->offset, value, len);
    if (bpf_map__set_initial_value(rodata, data.data(), data.size()) != 0) {
      throw std::runtime_error(std::string("set .rodata ") + name);
    }
    return;
  }
  throw std::runtime_error(std::string("xdp-bench object has no variable ") + name);
}

}  // namespace

// --binary /usr/sbin/xdp-bench --ifname IF
int xdp_bench_pass(const Args& a) {
  const std::string path = a.str("binary", "/usr/sbin/xdp-bench");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot read");
  const std::vector<char> bin((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string ifname = a.required("ifname");
  const unsigned ifindex = if_nametoindex(ifname.c_str());
  if (ifindex == 0) throw std::runtime_error(ifname + ": no such interface");

  bpf_object* obj = nullptr;
  for (const auto& [off, size] : embedded_bpf_objects(bin)) {
    LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = "xdp_basic");
    bpf_object* o = bpf_object__open_mem(bin.data() + off, size, &opts);
    if (o == nullptr) continue;
    if (bpf_object__find_program_by_name(o, kProgram) != nullptr) {
      obj = o;
      break;
    }
    bpf_object__close(o);
  }
  if (obj == nullptr) throw std::runtime_error(path + ": no embedded BPF object with " + kProgram);
  struct Closer {
    bpf_object* o;
    ~Closer() { bpf_object__close(o); }
  } closer{obj};

  bpf_program* prog = nullptr;
  bpf_program* p = nullptr;
  bpf_object__for_each_program(p, obj) {
    const bool ours = std::strcmp(bpf_program__name(p), kProgram) == 0;
    bpf_program__set_autoload(p, ours);
    if (ours) prog = p;
  }
  // As xdp-bench's sample_init_pre_load: counters have one slot per possible CPU; maps it sizes at
  // run time and this program never touches get the same so they can be created.
  const int ncpus = libbpf_num_possible_cpus();
  if (ncpus <= 0) throw std::runtime_error("libbpf_num_possible_cpus failed");
  bpf_map* m = nullptr;
  bpf_object__for_each_map(m, obj) {
    if (!bpf_map__is_internal(m) && bpf_map__max_entries(m) <= 1) {
      bpf_map__set_max_entries(m, static_cast<__u32>(ncpus));
    }
  }
  const __u32 nr_cpus = static_cast<__u32>(ncpus);
  const __u32 action = XDP_PASS;
  const bool off = false;
  set_rodata(obj, "nr_cpus", &nr_cpus, sizeof nr_cpus);
  set_rodata(obj, "action", &action, sizeof action);
  set_rodata(obj, "read_data", &off, sizeof off);
  set_rodata(obj, "swap_macs", &off, sizeof off);
  set_rodata(obj, "rxq_stats", &off, sizeof off);
  if (int err = bpf_object__load(obj); err != 0) {
    throw std::runtime_error(std::string("load xdp-bench's ") + kProgram + ": " + std::strerror(-err));
  }
  LIBBPF_OPTS(bpf_link_create_opts, lopts, .flags = XDP_FLAGS_DRV_MODE);
  bpf::UniqueFd link(bpf_link_create(bpf_program__fd(prog), static_cast<int>(ifindex), BPF_XDP, &lopts));
  if (!link) throw std::runtime_error("attach to " + ifname + ": " + std::strerror(errno));
  bpf_prog_info info{};
  __u32 len = sizeof info;
  if (bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len) != 0) {
    throw std::runtime_error(std::string("prog info: ") + std::strerror(errno));
  }
  emit({{"progs", {{kProgram, info.id}}}});
  char c;
  while (::read(STDIN_FILENO, &c, 1) > 0) {
  }
  return 0;
}

}  // namespace podsight::bench
