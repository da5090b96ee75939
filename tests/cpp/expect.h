// The minimal check harness shared by the C++ tests (no gtest): EXPECT counts passes and failures
// and prints each failure with its location; EXPECT_THROWS expects a c10::Error whose message
// contains a needle; report() prints the closing "N passed, M failed" line and gives the exit status.
// Each test file is its own binary (one translation unit), so the counters can live here.
#pragma once

#include <c10/util/Exception.h>
#include <c10/util/StringUtil.h>

#include <iostream>
#include <string>

static int g_passed = 0;
static int g_failed = 0;

#define EXPECT(cond, ...)                                                                     \
  do {                                                                                       \
    if (cond) {                                                                              \
      ++g_passed;                                                                            \
    } else {                                                                                 \
      ++g_failed;                                                                            \
      std::cerr << "FAIL " << __FILE__ << ":" << __LINE__ << ": " #cond ": "                 \
                << c10::str(__VA_ARGS__) << std::endl;                                       \
    }                                                                                        \
  } while (0)

// `expr` must throw c10::Error whose message contains `needle`; the optional rest describes it.
#define EXPECT_THROWS(expr, needle, ...)                                                      \
  do {                                                                                       \
    bool thrown_ = false;                                                                    \
    std::string message_;                                                                    \
    try {                                                                                    \
      (void)(expr);                                                                          \
    } catch (const c10::Error& e) {                                                          \
      thrown_ = true;                                                                        \
      message_ = e.what_without_backtrace();                                                 \
    }                                                                                        \
    EXPECT(thrown_ && message_.find(needle) != std::string::npos, c10::str(__VA_ARGS__),      \
           ": expected a c10::Error mentioning '", needle, "', got ",                        \
           thrown_ ? "'" + message_ + "'" : std::string("no exception"));                    \
  } while (0)

// The closing line the test runners read, and the process exit status.
inline int report() {
  std::cout << g_passed << " passed, " << g_failed << " failed" << std::endl;
  return g_failed == 0 ? 0 : 1;
}
