// podsight: command line -> config -> programs -> collectors -> HTTP; then wait for signals.
#include "app/agent.hpp"
#include "config/config.hpp"
#include "log/log.hpp"
#include "podsight/version.hpp"

#include <bpf/libbpf.h>
#include <malloc.h>

#include <csignal>
#include <pthread.h>

#include <iostream>

namespace {

constexpr int kExitUsage = 2;

spdlog::level::level_enum level_of(const std::string& name) {
  spdlog::level::level_enum l = spdlog::level::info;
  podsight::log::parse_level(name, l);
  return l;
}

// Re-reads the config file. Only logging settings change at run time; everything else is validated
// (so a bad file is reported now, not at the next restart) and kept as it was.
void reload(const podsight::config::CommandLine& cl, podsight::config::Config& running) {
  auto next = podsight::config::resolve(cl);
  if (!next) {
    podsight::log::error("configuration reload rejected, keeping the running configuration",
                         {{"error", next.error().message()}});
    return;
  }
  running.log_format = next->log_format;
  running.log_level = next->log_level;
  podsight::log::setup(running.log_format, level_of(running.log_level));
  podsight::log::info("configuration reloaded", {{"log_level", running.log_level}});
}

}  // namespace

int main(int argc, char** argv) {
  using namespace podsight;
  // A big scrape's buffers (label blocks, the exposition) are a few large allocations. glibc's
  // adaptive threshold would soon serve them from per-thread arenas, which keep their peak for good
  // (concurrent 100k-series scrapes left ~60 MiB behind); a fixed threshold maps them and hands
  // them back to the kernel when the scrape is done.
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
  auto cl = config::parse_args(argc, argv);
  if (!cl) {
    std::cerr << "podsight: " << cl.error().message() << "\n" << config::usage();
    return kExitUsage;
  }
  if (cl->help) {
    std::cout << config::usage();
    return 0;
  }
  if (cl->version) {
    std::cout << "podsight " << kVersion << " (" << kRevision << "), libbpf " << libbpf_major_version() << "."
              << libbpf_minor_version() << "\n";
    return 0;
  }
  auto cfg = config::resolve(*cl);
  if (!cfg) {
    std::cerr << "podsight: " << cfg.error().message() << "\n";
    return kExitUsage;
  }
  // A missing certificate or token file is a configuration mistake: say so before loading anything.
  if (auto st = http::check_security_files(cfg->http); !st) {
    std::cerr << "podsight: invalid configuration: " << st.error().message() << "\n";
    return kExitUsage;
  }
  if (cl->validate_config) {
    // Before logging, BPF or HTTP: a config check must not need privileges or touch the kernel.
    std::cout << "podsight: configuration valid ("
              << (cl->config_file.empty() ? std::string("defaults") : cl->config_file) << ")\n";
    return 0;
  }
  log::setup(cfg->log_format, level_of(cfg->log_level));
  log::bridge_libbpf();

  // Block the signals we handle before any thread starts, so that only sigwait() below receives them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  app::Agent agent(*cfg);
  if (cl->check) return agent.check(std::cout);

  agent.start_programs();
  agent.start_background();
  if (auto st = agent.start_http(); !st) {
    log::error("cannot serve HTTP", {{"error", st.error().message()}});
    agent.stop();
    return 1;
  }
  config::Config running = *cfg;
  for (;;) {
    int sig = 0;
    if (sigwait(&signals, &sig) != 0) continue;
    if (sig == SIGHUP) {
      reload(*cl, running);
      continue;
    }
    log::info("stopping", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
    agent.stop();
    log::info("stopped");
    return 0;
  }
}
