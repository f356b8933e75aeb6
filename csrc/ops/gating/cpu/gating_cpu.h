// gating CPU internals shared by the instruction-set builds of the row kernels
// (gating_cpu.cpp: AVX2 / generic vectors; gating_cpu_avx512.cpp: 16-float vectors).
#pragma once

#include <cstdint>

#include "ops/gating/gating.h"

namespace knet {
namespace gating_cpu {

// the row pointers the kernels read (ops/gating/gating.h)
template <typename T>
using Ptrs = GateRows<T>;

// Whether the AVX-512 build of the float kernels runs: it must be compiled (GCC on x86-64) and
// the CPU must have AVX-512 F/DQ/BW/VL; on by default then, unless KNET_NO_AVX512 is set.
// set_avx512 switches it (tests) and returns the previous setting; it cannot turn on what the
// build or the CPU lacks.
bool avx512_enabled();
bool set_avx512(bool on);

// rows [row0, row1) of the forward / backward, float32, AVX-512 (only call when avx512_enabled())
void forward_rows_avx512(const Ptrs<float>& p, int64_t m, int64_t cf, float eps, float* out, float* stats,
                         float* gates, int64_t row0, int64_t row1);
void backward_rows_avx512(const Ptrs<float>& p, const float* grad, const float* stats, const float* gates, int64_t m,
                          int64_t cf, float* const* dx, float* const* dparams, float* scratch, int64_t row0,
                          int64_t row1);

}  // namespace gating_cpu
}  // namespace knet
