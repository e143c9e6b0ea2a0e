// Self-metrics collector.
#include "collectors/self.hpp"

#include "bpf/maps.hpp"
#include "log/log.hpp"
#include "metrics/family_builder.hpp"
#include "podsight/version.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <string>

namespace podsight::collectors {
namespace {

using prometheus::MetricType;

metrics::Family single(const char* name, const char* help, MetricType type, double value) {
  metrics::FamilyBuilder b(name, help, type, {});
  b.add(std::vector<std::string>{}, value);
  return b.take();
}

}  // namespace

Self::Self(std::vector<const programs::Family*> families, bpf::Features& features,
           std::shared_ptr<prometheus::Registry> registry, std::function<bool()> bpf_stats_enabled)
    : families_(std::move(families)),
      features_(features),
      registry_(std::move(registry)),
      bpf_stats_enabled_(std::move(bpf_stats_enabled)) {}

bool Self::collect(ScrapeContext& ctx, metrics::Families& out) {
  metrics::FamilyBuilder build("podsight_build_info", "Build and environment of the running agent.",
                               MetricType::Gauge, {"version", "revision", "libbpf_version", "kernel"});
  const std::string libbpf = std::to_string(libbpf_major_version()) + "." + std::to_string(libbpf_minor_version());
  build.add({kVersion, kRevision, libbpf, features_.kernel_release()}, 1);
  out.push_back(build.take());

  collect_programs(out);
  bool ok = collect_maps(ctx, out);

  out.push_back(single("podsight_bpf_stats_enabled",
                       "1 if the kernel collects BPF run-time statistics (podsight_program_run_* count).",
                       MetricType::Gauge, bpf_stats_enabled_() ? 1 : 0));
  out.push_back(single("podsight_scrape_duration_seconds",
                       "Time this scrape spent reading maps and building series, before encoding.",
                       MetricType::Gauge, ctx.seconds));
  collect_process(out);
  for (auto& f : registry_->Collect()) out.push_back(metrics::Family::from(std::move(f)));
  return ok;
}

void Self::collect_programs(metrics::Families& out) {
  metrics::FamilyBuilder attached("podsight_program_attached",
                                  "1 if the program family is loaded and attached (also when degraded), 0 if "
                                  "it failed. Disabled families are absent.",
                                  MetricType::Gauge, {"program", "variant"});
  metrics::FamilyBuilder state("podsight_program_state",
                               "Program family state, one series per possible state, 1 for the current one.",
                               MetricType::Gauge, {"program", "state"});
  metrics::FamilyBuilder runs("podsight_program_runs_total",
                              "Times the kernel ran this BPF program (counted only while BPF stats are enabled).",
                              MetricType::Counter, {"program"});
  metrics::FamilyBuilder run_seconds("podsight_program_run_seconds_total",
                                     "Time the kernel spent running this BPF program (counted only while BPF "
                                     "stats are enabled).",
                                     MetricType::Counter, {"program"});
  // Always counted by the kernel (no BPF stats needed): events the program missed because a BPF program
  // was already running on that CPU, so the family's counts fall short of the kernel's by this much.
  metrics::FamilyBuilder missed("podsight_program_missed_runs_total",
                                "Times the kernel skipped this BPF program because another BPF program was "
                                "running on the same CPU; the program's events were not counted.",
                                MetricType::Counter, {"program"});
  for (const auto* f : families_) {
    auto st = f->status();
    const std::string name(f->name());
    for (auto s : {programs::State::kDisabled, programs::State::kAttached, programs::State::kDegraded,
                   programs::State::kFailed}) {
      state.add({name, programs::to_string(s)}, st.state == s ? 1 : 0);
    }
    if (st.state == programs::State::kDisabled) continue;
    const bool up = st.state == programs::State::kAttached || st.state == programs::State::kDegraded;
    attached.add({name, st.variant}, up ? 1 : 0);
    for (const auto& p : f->progs()) {
      bpf_prog_info info{};
      __u32 len = sizeof info;
      if (bpf_obj_get_info_by_fd(p.fd, &info, &len) != 0) continue;
      runs.add({p.name}, static_cast<double>(info.run_cnt));
      run_seconds.add({p.name}, static_cast<double>(info.run_time_ns) / 1e9);
      missed.add({p.name}, static_cast<double>(info.recursion_misses));
    }
  }
  out.push_back(attached.take());
  out.push_back(state.take());
  out.push_back(runs.take());
  out.push_back(run_seconds.take());
  out.push_back(missed.take());
}

bool Self::collect_maps(const ScrapeContext& ctx, metrics::Families& out) {
  bool ok = true;
  metrics::FamilyBuilder entries("podsight_map_entries", "Entries in the BPF map at scrape time.",
                                 MetricType::Gauge, {"map"});
  metrics::FamilyBuilder capacity("podsight_map_capacity", "Maximum entries of the BPF map.", MetricType::Gauge,
                                  {"map"});
  metrics::FamilyBuilder errors("podsight_map_update_errors_total",
                                "Inserts the kernel could not make because the map was full (or out of memory).",
                                MetricType::Counter, {"map"});
  auto ncpus = bpf::possible_cpus();
  for (const auto* f : families_) {
    auto maps = f->maps();
    if (maps.empty()) continue;
    std::vector<std::uint64_t> errs;
    if (ncpus && f->map_errors_fd() >= 0) {
      auto r = bpf::read_percpu_u64_array(f->map_errors_fd(), f->map_errors_entries(), *ncpus,
                                          std::string(f->name()) + ".map_errors");
      if (r) {
        errs = std::move(*r);
      } else {
        ok = false;
        log::error("scrape failed", {{"collector", "self"}, {"error", r.error().message()}});
      }
    }
    for (const auto& m : maps) {
      capacity.add({m.name}, m.capacity);
      if (auto it = ctx.map_entries.find(m.name); it != ctx.map_entries.end()) {
        entries.add({m.name}, static_cast<double>(it->second));
      } else if (auto n = bpf::count_entries(m.fd, m.key_size, m.name)) {
        entries.add({m.name}, static_cast<double>(*n));
      }
      if (m.error_index >= 0 && static_cast<std::size_t>(m.error_index) < errs.size()) {
        errors.add({m.name}, static_cast<double>(errs[static_cast<std::size_t>(m.error_index)]));
      }
    }
  }
  out.push_back(entries.take());
  out.push_back(capacity.take());
  out.push_back(errors.take());
  return ok;
}

void collect_process(metrics::Families& out) {
  // /proc/self/stat: fields after the comm (which may contain spaces and parentheses) start after ')'.
  auto stat = bpf::read_file("/proc/self/stat");
  if (stat) {
    auto close = stat->rfind(')');
    if (close != std::string::npos) {
      unsigned long long utime = 0;
      unsigned long long stime = 0;
      unsigned long long starttime = 0;
      unsigned long long vsize = 0;
      long long rss = 0;
      // state(3) ... utime(14) stime(15) ... starttime(22) vsize(23) rss(24)
      int n = std::sscanf(stat->c_str() + close + 2,
                          "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d %llu "
                          "%llu %lld",
                          &utime, &stime, &starttime, &vsize, &rss);
      if (n == 5) {
        const double tick = static_cast<double>(::sysconf(_SC_CLK_TCK));
        const double page = static_cast<double>(::sysconf(_SC_PAGESIZE));
        double boot = 0;
        if (auto s = bpf::read_file("/proc/stat")) {
          auto pos = s->find("\nbtime ");
          if (pos != std::string::npos) boot = std::strtod(s->c_str() + pos + 7, nullptr);
        }
        out.push_back(single("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
                             MetricType::Counter, static_cast<double>(utime + stime) / tick));
        out.push_back(single("process_resident_memory_bytes", "Resident memory size in bytes.", MetricType::Gauge,
                             static_cast<double>(rss) * page));
        out.push_back(single("process_virtual_memory_bytes", "Virtual memory size in bytes.", MetricType::Gauge,
                             static_cast<double>(vsize)));
        out.push_back(single("process_start_time_seconds",
                             "Start time of the process since unix epoch in seconds.", MetricType::Gauge,
                             boot + static_cast<double>(starttime) / tick));
      }
    }
  }
  double fds = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] != '.') ++fds;
    }
    ::closedir(d);
    out.push_back(single("process_open_fds", "Number of open file descriptors.", MetricType::Gauge, fds - 1));
  }
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    out.push_back(single("process_max_fds", "Maximum number of open file descriptors.", MetricType::Gauge,
                         static_cast<double>(rl.rlim_cur)));
  }
}

}  // namespace podsight::collectors
