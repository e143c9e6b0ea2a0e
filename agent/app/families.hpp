// The list of program families and their collectors: the one place a new family is wired in.
#pragma once

#include "collectors/collector.hpp"
#include "config/config.hpp"
#include "metadata/workload.hpp"
#include "programs/program.hpp"

#include <memory>
#include <vector>

namespace podsight::app {

struct FamilyParts {
  std::unique_ptr<programs::Family> program;
  std::unique_ptr<collectors::Collector> collector;
};

std::vector<FamilyParts> make_families(const config::Config& cfg, metadata::WorkloadResolver& workloads);

}  // namespace podsight::app
