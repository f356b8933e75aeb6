// mask_conv CPU internals: the float32 GEMM for CPUs with AVX-512 (mask_conv_gemm_avx512.cpp),
// which mask_conv_cpu.cpp uses in place of at::bmm where avx512_enabled() (chosen explicitly at
// run time; float64 and CPUs without AVX-512 stay on at::bmm).
//
// The product is C[b] = A[b] B[b] for every image b:
//   A[b]: M x K, any strides          (the mask kernels [N, C], or their transpose [C, N])
//   B[b]: K x P, unit pixel stride    (the feature rows [C, H*W], or the mask gradient [N, H*W])
//   C[b]: M x P, unit pixel stride    (the masks [N, H*W], or the feature gradient [C, H*W])
// A is packed once per product into micro-panels. The pixels of all images are numbered in
// 32-pixel units; a thread takes a contiguous run of units and multiplies it in column blocks of
// up to nc pixels (never across images).
#pragma once

#include <cstdint>

namespace knet {
namespace mask_conv_cpu {

// Whether the AVX-512 GEMM runs for float32: it must be compiled (GCC on x86-64) and the CPU must
// have AVX-512 F/DQ/BW/VL; on by default then, unless KNET_NO_AVX512 is set. set_avx512 switches
// it (tests) and returns the previous setting; it cannot turn on what the build or the CPU lacks.
bool avx512_enabled();
bool set_avx512(bool on);

struct Gemm {
  int64_t batch = 0, m = 0, k = 0, p = 0;
  const float* a = nullptr;  // a[b * a_batch + i * a_row + kk * a_col]
  int64_t a_batch = 0, a_row = 0, a_col = 0;
  const float* b = nullptr;  // b[b * b_batch + kk * ldb + j]
  int64_t b_batch = 0, ldb = 0;
  float* c = nullptr;  // c[b * c_batch + i * ldc + j]
  int64_t c_batch = 0, ldc = 0;
};

struct GemmPlan {
  int64_t nc = 0;               // pixels per column block at most (a multiple of the unit)
  int64_t units_per_image = 0;  // ceil(p / 32)
  int64_t units = 0;            // batch * units_per_image
  int64_t packed_a_floats = 0;  // size of the packed A of all images
  int64_t unit_flops = 0;       // multiply-adds of one unit (for the thread grain)
};

// Requires m, k, p >= 1 and batch >= 1.
GemmPlan gemm_plan(const Gemm& g);
// A of every image into micro-panels (packed: plan.packed_a_floats floats, any alignment)
void gemm_pack_a_avx512(const Gemm& g, const GemmPlan& plan, float* packed);
// the pixel units [unit0, unit1) of C (only call when avx512_enabled())
void gemm_units_avx512(const Gemm& g, const GemmPlan& plan, const float* packed, int64_t unit0, int64_t unit1);

}  // namespace mask_conv_cpu
}  // namespace knet
