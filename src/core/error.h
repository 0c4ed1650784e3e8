// Errors at dizuo's boundaries.
//
// Untrusted input (files, flags, HTTP requests) is checked where it enters; a failed check throws
// dizuo::Error whose message names the problem (and, for files, where it is). Internal invariants
// use DZ_ASSERT, which aborts: reaching one is a bug in dizuo, never a user error.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace dizuo {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Throws dizuo::Error with a fmt-formatted message.
template <typename... Args>
[[noreturn]] void Fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

[[noreturn]] inline void AssertFailed(const char* expr, const char* file, int line) {
  std::fprintf(stderr, "dizuo: internal error: assertion '%s' failed at %s:%d\n", expr, file, line);
  std::abort();
}

}  // namespace dizuo

#define DZ_ASSERT(expr) \
  ((expr) ? static_cast<void>(0) : ::dizuo::AssertFailed(#expr, __FILE__, __LINE__))
