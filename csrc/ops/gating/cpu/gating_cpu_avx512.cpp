// AVX-512 build of the fused adaptive gate's float row kernels (gating_rows.inc with 16-float
// vectors), chosen at run time by gating_cpu.cpp on CPUs that have AVX-512 F/DQ/BW/VL.
//
// Only this file's own code is compiled for AVX-512: every header is included before the
// target pragma (their inline functions keep the baseline target, so no AVX-512 code can be
// shared with the other objects through inline-function merging), and the kernels live in an
// anonymous namespace. Other compilers / architectures build the stubs at the end.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <type_traits>
#include <vector>

#include "knet/cpu_isa.h"
#include "knet/gating_math.h"
#include "ops/gating/cpu/gating_cpu.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(KNET_NO_AVX512)
#define KNET_GATING_AVX512 1
#include <immintrin.h>
#endif

namespace knet {
namespace gating_cpu {

#if defined(KNET_GATING_AVX512)

static cpu::Avx512Switch g_avx512;

bool avx512_enabled() { return g_avx512.enabled(); }
bool set_avx512(bool on) { return g_avx512.set(on); }

#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx512bw,avx512vl,fma,avx2")

namespace {

template <typename T>
struct Vec512;
template <>
struct Vec512<float> {
  typedef float type __attribute__((vector_size(64), aligned(4)));
};
template <typename T>
using Vec = typename Vec512<T>::type;
template <typename T>
constexpr int64_t kLanes = 64 / sizeof(T);

inline Vec<float> vload(const float* p) { return *reinterpret_cast<const Vec<float>*>(p); }
inline void vstore(float* p, Vec<float> v) { *reinterpret_cast<Vec<float>*>(p) = v; }

// sigmoid(y) = 1 / (1 + 2^t), t = -y log2(e): 2^t = 2^n 2^f with n = round(t), f in
// [-1/2, 1/2], 2^f by a degree-5 minimax polynomial (relative error 2.3e-7 in float), the
// reciprocal by rcp14 and one Newton step. t is clamped at 100 (e^-69: the result, below
// 1e-30, stays finite and the Newton step stays away from inf * 0).
inline Vec<float> sig(Vec<float> yv) {
  const __m512 t = _mm512_min_ps(_mm512_mul_ps((__m512)yv, _mm512_set1_ps(-1.44269504088896341f)),
                                 _mm512_set1_ps(100.0f));
  const __m512 n = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 f = _mm512_sub_ps(t, n);
  __m512 p = _mm512_set1_ps(1.3276386307552457e-3f);
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.675518609583378e-3f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.550713464617729e-2f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.4022120237350464e-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.931469440460205e-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0000001192092896f));
  const __m512 d = _mm512_add_ps(_mm512_scalef_ps(p, n), _mm512_set1_ps(1.0f));  // 1 + e^-y
  __m512 r = _mm512_rcp14_ps(d);
  r = _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.0f)));
  return (Vec<float>)r;
}
inline float sig(float x) { return sigmoid(x); }
inline float hsum(Vec<float> v) { return _mm512_reduce_add_ps((__m512)v); }

#include "ops/gating/cpu/gating_rows.inc"

}  // namespace

void forward_rows_avx512(const Ptrs<float>& p, int64_t m, int64_t cf, float eps, float* out, float* stats,
                         float* gates, int64_t row0, int64_t row1) {
  forward_rows(p, m, cf, eps, out, stats, gates, row0, row1);
}

void backward_rows_avx512(const Ptrs<float>& p, const float* grad, const float* stats, const float* gates, int64_t m,
                          int64_t cf, float* const* dx, float* const* dparams, float* scratch, int64_t row0,
                          int64_t row1) {
  backward_rows(p, grad, stats, gates, m, cf, dx, dparams, scratch, row0, row1);
}

#pragma GCC pop_options

#else  // no AVX-512 build: the dispatcher never calls the kernels

bool avx512_enabled() { return false; }
bool set_avx512(bool) { return false; }
void forward_rows_avx512(const Ptrs<float>&, int64_t, int64_t, float, float*, float*, float*, int64_t, int64_t) {
  std::abort();
}
void backward_rows_avx512(const Ptrs<float>&, const float*, const float*, const float*, int64_t, int64_t,
                          float* const*, float* const*, float*, int64_t, int64_t) {
  std::abort();
}

#endif

}  // namespace gating_cpu
}  // namespace knet
