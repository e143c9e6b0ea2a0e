// Errors as values: what failed, on which object, with the errno, so logs, /readyz and metrics can say why.
#pragma once

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <variant>

namespace podsight {

struct Error {
  std::string what;    // the operation, e.g. "attach tracepoint sched/sched_process_exec"
  std::string object;  // program, map, file or key it concerns; may be empty
  int err = 0;         // positive errno, 0 when none applies

  [[nodiscard]] std::string message() const {
    std::string m = what;
    if (!object.empty()) m += " (" + object + ")";
    if (err != 0) {
      m += ": ";
      m += std::strerror(err);
      m += " [errno " + std::to_string(err) + "]";
    }
    return m;
  }
};

inline Error errno_error(std::string what, std::string object = {}, int err = errno) {
  return Error{std::move(what), std::move(object), err < 0 ? -err : err};
}

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}          // NOLINT(google-explicit-constructor)
  Result(Error error) : v_(std::move(error)) {}      // NOLINT(google-explicit-constructor)

  [[nodiscard]] bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  [[nodiscard]] const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT(google-explicit-constructor)

  [[nodiscard]] bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  [[nodiscard]] const Error& error() const { return error_; }

 private:
  Error error_;
  bool ok_ = true;
};

using Status = Result<void>;

}  // namespace podsight
