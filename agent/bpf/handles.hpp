// Move-only owners for libbpf objects: a skeleton, a link, a file descriptor. Destructors never throw
// and release in the right order, so an early return anywhere cannot leave a program attached.
#pragma once

#include <bpf/libbpf.h>
#include <unistd.h>

#include <memory>
#include <utility>

namespace podsight::bpf {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) reset(std::exchange(o.fd_, -1));
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  [[nodiscard]] int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

struct LinkDeleter {
  void operator()(bpf_link* l) const { bpf_link__destroy(l); }
};
// Destroying a link detaches the program (unless it was pinned, which podsight never does).
using Link = std::unique_ptr<bpf_link, LinkDeleter>;

// Owns a bpftool-generated skeleton `T` (T::open / T::load / T::destroy are generated for C++).
template <typename T>
class Skeleton {
 public:
  Skeleton() = default;
  explicit Skeleton(T* s) : s_(s) {}
  Skeleton(Skeleton&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  Skeleton& operator=(Skeleton&& o) noexcept {
    if (this != &o) {
      reset();
      s_ = std::exchange(o.s_, nullptr);
    }
    return *this;
  }
  Skeleton(const Skeleton&) = delete;
  Skeleton& operator=(const Skeleton&) = delete;
  ~Skeleton() { reset(); }

  T* operator->() const { return s_; }
  [[nodiscard]] T* get() const { return s_; }
  explicit operator bool() const { return s_ != nullptr; }
  void reset() {
    if (s_ != nullptr) T::destroy(s_);
    s_ = nullptr;
  }

 private:
  T* s_ = nullptr;
};

}  // namespace podsight::bpf
