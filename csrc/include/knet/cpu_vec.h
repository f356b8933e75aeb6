// knet/cpu_vec.h: explicit SIMD for the CPU kernels with GCC/Clang vector extensions
// (portable: they lower to AVX2 with -mavx2, to SSE or NEON otherwise; no intrinsics).
//
// Plain loops over fast_math.h's exp are not auto-vectorised by GCC (the clamps and the
// float -> int conversion count as control flow), and accumulator arrays are not kept in
// registers, so the hot loops use these 32-byte vectors explicitly. CPU only.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define KNET_CPU_VEC_AVX2 1
#endif

#include "knet/fast_math.h"

namespace knet {
namespace cpu {

template <typename T>
struct VecOf;
template <>
struct VecOf<float> {
  typedef float type __attribute__((vector_size(32), aligned(4)));
  typedef int32_t itype __attribute__((vector_size(32), aligned(4)));
};
template <>
struct VecOf<double> {
  typedef double type __attribute__((vector_size(32), aligned(8)));
  typedef int64_t itype __attribute__((vector_size(32), aligned(8)));
};

template <typename T>
using Vec = typename VecOf<T>::type;

template <typename T>
constexpr int kLanes = 32 / sizeof(T);

// unaligned load / store (the vector types are declared with the element's alignment; GCC
// lets a vector alias its element type). memcpy here would go through the stack and stall.
template <typename T>
inline Vec<T> load(const T* p) {
  return *reinterpret_cast<const Vec<T>*>(p);
}

template <typename T>
inline void store(T* p, Vec<T> v) {
  *reinterpret_cast<Vec<T>*>(p) = v;
}

// e^x on 8 floats: the Cephes scheme of knet/fast_math.h (same constants, same accuracy).
// With AVX2+FMA it is written with intrinsics: min/max clamps, one rounding instruction and
// FMAs (GCC turns the portable ternaries and the float->int->float floor into compare+blend
// sequences, about a quarter more instructions); n = round(x log2 e) instead of
// floor(x log2 e + 0.5) (they differ only at exact ties, where both reductions are accurate).
inline Vec<float> exp_v(Vec<float> xv) {
#if defined(KNET_CPU_VEC_AVX2)
  __m256 x = reinterpret_cast<const __m256&>(xv);
  x = _mm256_min_ps(x, _mm256_set1_ps(88.3762626647949f));
  x = _mm256_max_ps(x, _mm256_set1_ps(-87.3365447504019f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  const __m256 z = _mm256_mul_ps(r, r);
  __m256 y = _mm256_set1_ps(1.9875691500e-4f);
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
  y = _mm256_add_ps(_mm256_fmadd_ps(y, z, r), _mm256_set1_ps(1.0f));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  const __m256 out = _mm256_mul_ps(y, _mm256_castsi256_ps(e));  // times 2^n, n in [-126, 127]
  return reinterpret_cast<const Vec<float>&>(out);
#else
  using V = Vec<float>;
  using I = VecOf<float>::itype;
  V x = xv;
  const V hi = V{} + 88.3762626647949f, lo = V{} - 87.3365447504019f;
  x = x < hi ? x : hi;
  x = x > lo ? x : lo;
  V n = x * 1.44269504088896341f + 0.5f;
  const V t = __builtin_convertvector(__builtin_convertvector(n, I), V);
  n = t > n ? t - 1.0f : t;  // floor
  V r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  const V z = r * r;
  V y = V{} + 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * z + r + 1.0f;
  const I bits = (__builtin_convertvector(n, I) + 127) << 23;  // 2^n
  return y * reinterpret_cast<const V&>(bits);
#endif
}

// 1 / (1 + e^-x) on 8 floats; with AVX2 the division is a reciprocal estimate refined by one
// Newton step (relative error ~1e-7, below float32's rounding of the sum 1 + e^-x)
inline Vec<float> sigmoid_v(Vec<float> x) {
#if defined(KNET_CPU_VEC_AVX2)
  const Vec<float> dv = 1.0f + exp_v(-x);
  const __m256 d = reinterpret_cast<const __m256&>(dv);
  __m256 r = _mm256_rcp_ps(d);
  r = _mm256_mul_ps(r, _mm256_fnmadd_ps(d, r, _mm256_set1_ps(2.0f)));
  return reinterpret_cast<const Vec<float>&>(r);
#else
  return 1.0f / (1.0f + exp_v(-x));
#endif
}

// out[i] = 1 / (1 + e^-in[i]) (in and out may alias)
inline void sigmoid_array(const float* in, float* out, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) store(out + i, sigmoid_v(load(in + i)));
  for (; i < n; ++i) out[i] = sigmoid(in[i]);
}

inline void sigmoid_array(const double* in, double* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = sigmoid(in[i]);
}

// out[i] = e^(in[i] - shift[i]) and sum[i] += out[i]
inline void exp_shift_accumulate(const float* in, const float* shift, float* out, float* sum, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const Vec<float> e = exp_v(load(in + i) - load(shift + i));
    store(out + i, e);
    store(sum + i, load(sum + i) + e);
  }
  for (; i < n; ++i) {
    out[i] = exp_approx(in[i] - shift[i]);
    sum[i] += out[i];
  }
}

inline void exp_shift_accumulate(const double* in, const double* shift, double* out, double* sum, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    out[i] = exp_approx(in[i] - shift[i]);
    sum[i] += out[i];
  }
}

}  // namespace cpu
}  // namespace knet
