// Starting a cpp-httplib server that a test can stop at any moment.
#pragma once

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

namespace podsight::testing {

// Runs `server.listen_after_bind()` (the server is bound already) on a new thread and returns that
// thread once the accept loop runs, or has ended. httplib's stop() does nothing until the loop has
// marked the server running, so a test torn down right after start (a skip in SetUp on a busy machine)
// would otherwise join a loop that never ends.
inline std::thread listen_in_background(httplib::Server& server) {
  auto done = std::make_shared<std::atomic<bool>>(false);
  std::thread thread([&server, done] {
    server.listen_after_bind();
    *done = true;
  });
  while (!server.is_running() && !*done) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return thread;
}

}  // namespace podsight::testing
