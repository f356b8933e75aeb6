// knet/cpu_isa.h: the run-time switch between a CPU kernel's AVX-512 build and its default
// build (gating_cpu_avx512.cpp, mask_conv_gemm_avx512.cpp). Include it before any
// `#pragma GCC target`: its code is compiled for the baseline target.
#pragma once

#include <cstdlib>

namespace knet {
namespace cpu {

// the CPU has AVX-512 F/DQ/BW/VL (always false where the AVX-512 builds are not compiled:
// compilers other than GCC, other architectures)
inline bool cpu_has_avx512() {
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
#else
  return false;
#endif
}

// One op's switch: on when the CPU has AVX-512 and KNET_NO_AVX512 is not set. set() switches
// it (tests) and returns the previous setting; it cannot turn on what the CPU lacks.
class Avx512Switch {
 public:
  Avx512Switch() : on_(cpu_has_avx512() && std::getenv("KNET_NO_AVX512") == nullptr) {}
  bool enabled() const { return on_; }
  bool set(bool on) {
    const bool prev = on_;
    on_ = on && cpu_has_avx512();
    return prev;
  }

 private:
  bool on_;
};

}  // namespace cpu
}  // namespace knet
