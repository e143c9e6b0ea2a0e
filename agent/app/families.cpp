// Wiring of program families to their collectors.
#include "app/families.hpp"

#include "collectors/exec.hpp"
#include "collectors/tcp.hpp"
#include "programs/exec.hpp"
#include "programs/tcp.hpp"

namespace podsight::app {

std::vector<FamilyParts> make_families(const config::Config& cfg, metadata::WorkloadResolver& workloads) {
  std::vector<FamilyParts> parts;
  {
    auto p = std::make_unique<programs::Exec>(cfg.programs.exec);
    auto c = std::make_unique<collectors::Exec>(*p, workloads);
    parts.push_back({std::move(p), std::move(c)});
  }
  {
    auto p = std::make_unique<programs::Tcp>(cfg.programs.tcp);
    auto c = std::make_unique<collectors::Tcp>(*p, workloads);
    parts.push_back({std::move(p), std::move(c)});
  }
  return parts;
}

}  // namespace podsight::app
