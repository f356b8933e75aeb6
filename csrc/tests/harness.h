// csrc/tests/harness.h: a minimal self-registering test harness for the torch-free C++ cores
// (built into `knet_core_tests` by CMakeLists.txt and run by ctest).
//
//   #include "tests/harness.h"
//   KNET_TEST(rle_roundtrip) { KNET_CHECK_EQ(decode(encode(x)), x); }
//
// Every KNET_TEST in every csrc/tests/*.cpp registers itself; test_main.cpp runs them all
// (or those whose name contains argv[1]) and exits non-zero when a check failed.
#pragma once

#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

namespace knet_test {

struct Case {
  const char* name;
  void (*fn)();
};

inline std::vector<Case>& registry() {
  static std::vector<Case> cases;
  return cases;
}

struct Registrar {
  Registrar(const char* name, void (*fn)()) { registry().push_back({name, fn}); }
};

inline int& failed_checks() {
  static int n = 0;
  return n;
}

inline void report(const char* file, int line, const char* what) {
  std::fprintf(stderr, "%s:%d: check failed: %s\n", file, line, what);
  ++failed_checks();
}

// runs the registered tests whose name contains `filter` (all when null); returns the exit code
inline int run_all(const char* filter) {
  int ran = 0, failed = 0;
  for (const Case& c : registry()) {
    if (filter != nullptr && std::strstr(c.name, filter) == nullptr) continue;
    const int before = failed_checks();
    c.fn();
    ++ran;
    const bool ok = failed_checks() == before;
    failed += ok ? 0 : 1;
    std::printf("[%s] %s\n", ok ? "  ok  " : " FAIL ", c.name);
  }
  std::printf("%d test(s), %d failed\n", ran, failed);
  return (failed == 0 && ran > 0) ? 0 : 1;
}

}  // namespace knet_test

#define KNET_TEST(name)                                                                           \
  static void knet_test_fn_##name();                                                              \
  static ::knet_test::Registrar knet_test_registrar_##name(#name, &knet_test_fn_##name);         \
  static void knet_test_fn_##name()

#define KNET_CHECK(cond)                                              \
  do {                                                                \
    if (!(cond)) ::knet_test::report(__FILE__, __LINE__, #cond);      \
  } while (0)

#define KNET_CHECK_EQ(a, b)                                                   \
  do {                                                                        \
    if (!((a) == (b))) ::knet_test::report(__FILE__, __LINE__, #a " == " #b); \
  } while (0)

#define KNET_CHECK_NEAR(a, b, tol)                                                                  \
  do {                                                                                              \
    if (!(std::fabs(static_cast<double>(a) - static_cast<double>(b)) <= static_cast<double>(tol))) \
      ::knet_test::report(__FILE__, __LINE__, "|" #a " - " #b "| <= " #tol);                        \
  } while (0)
