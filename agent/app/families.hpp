// The list of program families and their collectors: the one place a new family is wired in.
#pragma once

#include "collectors/collector.hpp"
#include "config/config.hpp"
#include "metadata/remote.hpp"
#include "metadata/workload.hpp"
#include "programs/program.hpp"

#include <memory>
#include <vector>

namespace podsight::app {

struct FamilyParts {
  std::unique_ptr<programs::Family> program;
  std::unique_ptr<collectors::Collector> collector;
};

// `remote`: the remote-address index when programs.tcp.remote is enabled, else null.
std::vector<FamilyParts> make_families(const config::Config& cfg, metadata::WorkloadResolver& workloads,
                                       metadata::RemoteIndex* remote = nullptr);

}  // namespace podsight::app
