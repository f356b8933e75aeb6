// gating CPU internals shared by the instruction-set builds of the row kernels
// (gating_cpu.cpp: AVX2 / generic vectors; gating_cpu_avx512.cpp: 16-float vectors).
#pragma once

#include <cstdint>

namespace knet {
namespace gating_cpu {

// the four activations (rows may be strided, unit stride along Cf) and the four LayerNorms'
// weight and bias ([Cf], contiguous), in the order of knet/gating_math.h's GateLn
template <typename T>
struct Ptrs {
  const T* x[4];
  int64_t stride[4];
  const T* w[4];
  const T* b[4];
};

// True when the AVX-512 build of the float kernels was compiled (GCC on x86-64) and this CPU
// has AVX-512 F/DQ/BW/VL. The choice is explicit and can be switched for tests (set_avx512).
bool avx512_compiled();
bool avx512_enabled();
bool set_avx512(bool on);  // -> previous setting; on is ignored where avx512_compiled() && cpu lacks it

// rows [row0, row1) of the forward / backward, float32, AVX-512 (only call when avx512_enabled())
void forward_rows_avx512(const Ptrs<float>& p, int64_t m, int64_t cf, float eps, float* out, float* stats,
                         float* gates, int64_t row0, int64_t row1);
void backward_rows_avx512(const Ptrs<float>& p, const float* grad, const float* stats, const float* gates, int64_t m,
                          int64_t cf, float* const* dx, float* const* dparams, float* scratch, int64_t row0,
                          int64_t row1);

}  // namespace gating_cpu
}  // namespace knet
