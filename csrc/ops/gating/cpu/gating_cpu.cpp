// CPU fused adaptive gate. Per row: the forward is one statistics pass and one element pass
// (four LayerNorms, two sigmoid gates, gated sum); the backward is one element pass (gates,
// the four dL/dxhat, the parameter-gradient partial sums, the LayerNorm-backward means) and
// one output pass. Rows are split over threads with at::parallel_for; every element pass runs
// on SIMD vectors (knet/cpu_vec.h) with the same per-element functions as the CUDA kernel
// (knet/gating_math.h) instantiated for vectors, and a scalar tail for odd Cf.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "knet/cpu_vec.h"
#include "knet/gating_math.h"
#include "ops/gating/gating.h"

namespace knet {
namespace {

using cpu::Vec;

// Rows per task: a thread wake-up costs tens of microseconds while a row of Cf elements costs
// well under one, so only split problems with at least ~64K elements per task (M=153 x 256
// runs inline on the calling thread; M=600 x 256 is split in two).
inline int64_t row_grain(int64_t cf) { return std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(cf, 1)); }

template <typename T>
struct Rows {
  const T* x[4];
  int64_t stride[4];
  const T* w[4];
  const T* b[4];
};

template <typename T>
Rows<T> rows_of(const GateActs& acts, const GateParams& params) {
  Rows<T> r;
  for (int j = 0; j < 4; ++j) {
    r.x[j] = acts[j].data_ptr<T>();
    r.stride[j] = acts[j].stride(0);
    r.w[j] = params[2 * j].data_ptr<T>();
    r.b[j] = params[2 * j + 1].data_ptr<T>();
  }
  return r;
}

// element access for a scalar T or a SIMD vector V of T
template <typename V, typename T>
inline V ld(const T* p) {
  if constexpr (std::is_same_v<V, T>) {
    return *p;
  } else {
    return cpu::load(p);
  }
}

template <typename V, typename T>
inline void st(T* p, V v) {
  if constexpr (std::is_same_v<V, T>) {
    *p = v;
  } else {
    cpu::store(p, v);
  }
}

template <typename V, typename T>
inline V splat(T v) {
  return V{} + v;
}

inline float sig(float x) { return sigmoid(x); }
inline double sig(double x) { return sigmoid(x); }
inline Vec<float> sig(Vec<float> x) { return 1.0f / (1.0f + cpu::exp_v(-x)); }
inline Vec<double> sig(Vec<double> x) {
  for (int i = 0; i < cpu::kLanes<double>; ++i) x[i] = sigmoid(x[i]);
  return x;
}

template <typename T>
inline T hsum(Vec<T> v) {
  T s = T(0);
  for (int i = 0; i < cpu::kLanes<T>; ++i) s += v[i];
  return s;
}

// runs body.template operator()<V>(c) over c in SIMD steps, then body<T>(c) for the tail
template <typename T, typename Body>
inline void for_lanes(int64_t n, Body&& body) {
  constexpr int64_t l = cpu::kLanes<T>;
  int64_t c = 0;
  for (; c + l <= n; c += l) body(Vec<T>{}, c);
  for (; c < n; ++c) body(T{}, c);
}

// (mean, rstd) of one row, two passes, two SIMD accumulators each (hides the add latency)
template <typename T>
inline void row_stats(const T* x, int64_t n, T eps, T& mean, T& rstd) {
  constexpr int64_t l = cpu::kLanes<T>;
  Vec<T> a0{}, a1{}, q0{}, q1{};
  int64_t c = 0;
  for (; c + 2 * l <= n; c += 2 * l) {
    a0 += cpu::load(x + c);
    a1 += cpu::load(x + c + l);
  }
  T as = T(0);
  for (; c < n; ++c) as += x[c];
  mean = (hsum<T>(a0 + a1) + as) / T(n);
  T qs = T(0);
  for (c = 0; c + 2 * l <= n; c += 2 * l) {
    const Vec<T> d0 = cpu::load(x + c) - mean, d1 = cpu::load(x + c + l) - mean;
    q0 += d0 * d0;
    q1 += d1 * d1;
  }
  for (; c < n; ++c) qs += (x[c] - mean) * (x[c] - mean);
  rstd = T(1) / std::sqrt((hsum<T>(q0 + q1) + qs) / T(n) + eps);
}

template <typename T>
void forward_rows(const Rows<T>& r, int64_t m, int64_t cf, T eps, T* out, T* stats) {
  at::parallel_for(0, m, row_grain(cf), [&](int64_t r0, int64_t r1) {
    for (int64_t row = r0; row < r1; ++row) {
      const T* x[4];
      T mean[4], rstd[4];
      for (int j = 0; j < 4; ++j) {
        x[j] = r.x[j] + row * r.stride[j];
        row_stats(x[j], cf, eps, mean[j], rstd[j]);
        stats[(j * m + row) * 2] = mean[j];
        stats[(j * m + row) * 2 + 1] = rstd[j];
      }
      T* o = out + row * cf;
      for_lanes<T>(cf, [&](auto tag, int64_t c) {
        using V = decltype(tag);
        V y[4];
        for (int j = 0; j < 4; ++j) y[j] = (ld<V>(x[j] + c) - mean[j]) * rstd[j] * ld<V>(r.w[j] + c) + ld<V>(r.b[j] + c);
        // Eqs. (5)-(6): G_K = sigmoid(LN(gate_in)), G_F = sigmoid(LN(gate_up))
        st<V>(o + c, adaptive_gate_mix(sig(y[kGateIn]), sig(y[kGateUp]), y[kFeatOut], y[kKernelOut]));
      });
    }
  });
}

template <typename T>
void backward_rows(const Rows<T>& r, const T* grad, const T* stats, int64_t m, int64_t cf, T* const* dx,
                   T* const* dparams) {
  // fixed row chunks with their own parameter-gradient partial sums (deterministic reduction);
  // a single chunk accumulates straight into dparams (zeroed by the caller)
  const int64_t threads = at::get_num_threads();
  const int64_t grain = row_grain(cf);
  const int64_t chunk = std::max<int64_t>(grain, (m + threads - 1) / threads);
  const int64_t chunks = (m + chunk - 1) / chunk;
  std::vector<T> partial(chunks > 1 ? chunks * 8 * cf : 0, T(0));
  at::parallel_for(0, chunks, 1, [&](int64_t k0, int64_t k1) {
    std::vector<T> buf(8 * cf);  // dL/dxhat (4 rows) and xhat (4 rows) of the current row
    for (int64_t k = k0; k < k1; ++k) {
      T* pk[8];  // [dw0, db0, dw1, db1, ...]
      for (int i = 0; i < 8; ++i) pk[i] = chunks > 1 ? partial.data() + (k * 8 + i) * cf : dparams[i];
      for (int64_t row = k * chunk; row < std::min(m, (k + 1) * chunk); ++row) {
        const T* x[4];
        T mean[4], rstd[4];
        for (int j = 0; j < 4; ++j) {
          x[j] = r.x[j] + row * r.stride[j];
          mean[j] = stats[(j * m + row) * 2];
          rstd[j] = stats[(j * m + row) * 2 + 1];
        }
        const T* g = grad + row * cf;
        Vec<T> s1v[4] = {}, s2v[4] = {};
        T s1s[4] = {}, s2s[4] = {};
        for_lanes<T>(cf, [&](auto tag, int64_t c) {
          using V = decltype(tag);
          V xh[4], y[4], d[4];
          for (int j = 0; j < 4; ++j) {
            xh[j] = (ld<V>(x[j] + c) - mean[j]) * rstd[j];
            y[j] = xh[j] * ld<V>(r.w[j] + c) + ld<V>(r.b[j] + c);
          }
          adaptive_gate_mix_backward(ld<V>(g + c), sig(y[kGateIn]), sig(y[kGateUp]), y[kFeatOut], y[kKernelOut],
                                     d[kGateIn], d[kGateUp], d[kFeatOut], d[kKernelOut]);
          for (int j = 0; j < 4; ++j) {
            T* dw = pk[2 * j] + c;
            T* db = pk[2 * j + 1] + c;
            st<V>(dw, ld<V>(dw) + d[j] * xh[j]);
            st<V>(db, ld<V>(db) + d[j]);
            const V dxh = d[j] * ld<V>(r.w[j] + c);  // dL/dxhat
            st<V>(buf.data() + j * cf + c, dxh);
            st<V>(buf.data() + (4 + j) * cf + c, xh[j]);
            if constexpr (std::is_same_v<V, T>) {
              s1s[j] += dxh;
              s2s[j] += dxh * xh[j];
            } else {
              s1v[j] += dxh;
              s2v[j] += dxh * xh[j];
            }
          }
        });
        T mean1[4], mean2[4];
        for (int j = 0; j < 4; ++j) {
          mean1[j] = (hsum<T>(s1v[j]) + s1s[j]) / T(cf);
          mean2[j] = (hsum<T>(s2v[j]) + s2s[j]) / T(cf);
        }
        for (int j = 0; j < 4; ++j) {
          T* o = dx[j] + row * cf;
          const T* dxh = buf.data() + j * cf;
          const T* xh = buf.data() + (4 + j) * cf;
          for_lanes<T>(cf, [&](auto tag, int64_t c) {
            using V = decltype(tag);
            st<V>(o + c, layer_norm_dx(ld<V>(dxh + c), ld<V>(xh + c), splat<V>(rstd[j]), splat<V>(mean1[j]),
                                       splat<V>(mean2[j])));
          });
        }
      }
    }
  });
  for (int64_t k = 0; k < (chunks > 1 ? chunks : 0); ++k) {
    const T* pk = partial.data() + k * 8 * cf;
    for (int i = 0; i < 8; ++i)
      for (int64_t c = 0; c < cf; ++c) dparams[i][c] += pk[i * cf + c];
  }
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> adaptive_gate_forward_cpu(const GateActs& acts, const GateParams& params,
                                                             double eps) {
  const int64_t m = acts[0].size(0), cf = acts[0].size(1);
  at::Tensor out = at::empty({m, cf}, acts[0].options());
  at::Tensor stats = at::empty({4, m, 2}, acts[0].options());
  if (m == 0) return {out, stats};
  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "adaptive_gate_forward_cpu", [&] {
    forward_rows(rows_of<scalar_t>(acts, params), m, cf, static_cast<scalar_t>(eps), out.data_ptr<scalar_t>(),
                 stats.data_ptr<scalar_t>());
  });
  return {out, stats};
}

std::vector<at::Tensor> adaptive_gate_backward_cpu(const at::Tensor& grad, const GateActs& acts,
                                                   const GateParams& params, const at::Tensor& stats) {
  const int64_t m = acts[0].size(0), cf = acts[0].size(1);
  std::vector<at::Tensor> grads;
  for (int j = 0; j < 4; ++j) grads.push_back(at::empty({m, cf}, acts[0].options()));
  for (int i = 0; i < 8; ++i) grads.push_back(at::zeros({cf}, acts[0].options()));  // separate (no aliasing)
  if (m > 0) {
    AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "adaptive_gate_backward_cpu", [&] {
      scalar_t* dx[4];
      scalar_t* dparams[8];
      for (int j = 0; j < 4; ++j) dx[j] = grads[j].data_ptr<scalar_t>();
      for (int i = 0; i < 8; ++i) dparams[i] = grads[4 + i].data_ptr<scalar_t>();
      backward_rows(rows_of<scalar_t>(acts, params), grad.data_ptr<scalar_t>(), stats.data_ptr<scalar_t>(), m, cf, dx,
                    dparams);
    });
  }
  return grads;
}

}  // namespace knet
