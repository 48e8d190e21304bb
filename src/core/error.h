// Errors: every failure the user can cause (bad file, bad flag, prompt too long) is thrown as
// edgevlm::Error with a message that names what is wrong. Internal invariants use EV_CHECK.
#pragma once

#include <stdexcept>
#include <string>
#include <cstdio>
#include <utility>

namespace edgevlm {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

template <typename... Args>
[[noreturn]] inline void fail(const char* fmt, Args&&... args) {
  char buf[1024];
  if constexpr (sizeof...(Args) == 0) {
    std::snprintf(buf, sizeof buf, "%s", fmt);
  } else {
    std::snprintf(buf, sizeof buf, fmt, std::forward<Args>(args)...);
  }
  throw Error(buf);
}

}  // namespace edgevlm

#define EV_CHECK(cond, ...)                     \
  do {                                          \
    if (!(cond)) ::edgevlm::fail(__VA_ARGS__);  \
  } while (0)
