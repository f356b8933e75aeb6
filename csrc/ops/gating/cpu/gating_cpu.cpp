// CPU fused adaptive gate (K-Net Eqs. (5)-(6)). Per row: the forward is one statistics pass
// and one element pass (four LayerNorms, two sigmoid gates, gated sum; the gates are saved);
// the backward is one element pass (the four dL/dxhat from the saved gates, the
// parameter-gradient sums, the LayerNorm-backward means) and one output pass. Every element pass runs on SIMD vectors (knet/cpu_vec.h) with the
// per-element functions shared with the CUDA kernel (knet/gating_math.h) and a scalar tail for
// odd Cf. The loops keep everything in named locals (no arrays of vectors, no captured state),
// so the compiler holds them in registers.
//
// Threads: rows are split over at::parallel_for only when a task gets at least ~16K elements
// (the 153-row panoptic problem runs on one thread, the 600-row semantic one on two). The
// backward gives each task its own parameter-gradient partial sums, reduced in task order
// (deterministic for a given thread count).
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

constexpr int64_t kTaskElems = int64_t{1} << 14;  // elements (rows x Cf x 4 inputs) per task

inline int64_t row_grain(int64_t cf) { return std::max<int64_t>(1, kTaskElems / std::max<int64_t>(4 * cf, 1)); }

template <typename T>
struct Ptrs {
  const T* x[4];
  int64_t stride[4];
  const T* w[4];
  const T* b[4];
};

template <typename T>
Ptrs<T> ptrs_of(const GateActs& acts, const GateParams& params) {
  Ptrs<T> r;
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

inline float sig(float x) { return sigmoid(x); }
inline double sig(double x) { return sigmoid(x); }
inline Vec<float> sig(Vec<float> x) { return cpu::sigmoid_v(x); }
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

// (mean, rstd) of the four rows of one element row: two passes over L1-resident data, the
// four rows interleaved so that the eight accumulator chains run in parallel (one row at a
// time is bound by the latency of its adds)
template <typename T>
inline void row_stats4(const T* __restrict x0, const T* __restrict x1, const T* __restrict x2,
                       const T* __restrict x3, int64_t n, T eps, T* mean, T* rstd) {
  constexpr int64_t l = cpu::kLanes<T>;
  Vec<T> a0{}, a1{}, a2{}, a3{};
  int64_t c = 0;
  for (; c + l <= n; c += l) {
    a0 += cpu::load(x0 + c);
    a1 += cpu::load(x1 + c);
    a2 += cpu::load(x2 + c);
    a3 += cpu::load(x3 + c);
  }
  T s0 = hsum<T>(a0), s1 = hsum<T>(a1), s2 = hsum<T>(a2), s3 = hsum<T>(a3);
  for (int64_t t = c; t < n; ++t) {
    s0 += x0[t];
    s1 += x1[t];
    s2 += x2[t];
    s3 += x3[t];
  }
  const T m0 = s0 / T(n), m1 = s1 / T(n), m2 = s2 / T(n), m3 = s3 / T(n);
  Vec<T> q0{}, q1{}, q2{}, q3{};
  for (c = 0; c + l <= n; c += l) {
    const Vec<T> d0 = cpu::load(x0 + c) - m0, d1 = cpu::load(x1 + c) - m1;
    const Vec<T> d2 = cpu::load(x2 + c) - m2, d3 = cpu::load(x3 + c) - m3;
    q0 += d0 * d0;
    q1 += d1 * d1;
    q2 += d2 * d2;
    q3 += d3 * d3;
  }
  T v0 = hsum<T>(q0), v1 = hsum<T>(q1), v2 = hsum<T>(q2), v3 = hsum<T>(q3);
  for (int64_t t = c; t < n; ++t) {
    v0 += (x0[t] - m0) * (x0[t] - m0);
    v1 += (x1[t] - m1) * (x1[t] - m1);
    v2 += (x2[t] - m2) * (x2[t] - m2);
    v3 += (x3[t] - m3) * (x3[t] - m3);
  }
  mean[0] = m0;
  mean[1] = m1;
  mean[2] = m2;
  mean[3] = m3;
  rstd[0] = T(1) / std::sqrt(v0 / T(n) + eps);
  rstd[1] = T(1) / std::sqrt(v1 / T(n) + eps);
  rstd[2] = T(1) / std::sqrt(v2 / T(n) + eps);
  rstd[3] = T(1) / std::sqrt(v3 / T(n) + eps);
}

// ---- forward -------------------------------------------------------------------------------

template <typename T>
struct FwdRow {
  const T* __restrict x0;
  const T* __restrict x1;
  const T* __restrict x2;
  const T* __restrict x3;
  T m0, m1, m2, m3, r0, r1, r2, r3;  // mean, rstd of the four LayerNorms
};

// out[c] for c in one SIMD step (V = Vec<T>) or one element (V = T); the two gates go to
// gk[c] and gf[c] (saved for the backward, which then needs no exp)
template <typename V, typename T>
inline V forward_elem(const FwdRow<T>& q, const Ptrs<T>& p, int64_t c, T* __restrict gk, T* __restrict gf) {
  const V y0 = (ld<V>(q.x0 + c) - q.m0) * q.r0 * ld<V>(p.w[0] + c) + ld<V>(p.b[0] + c);
  const V y1 = (ld<V>(q.x1 + c) - q.m1) * q.r1 * ld<V>(p.w[1] + c) + ld<V>(p.b[1] + c);
  const V y2 = (ld<V>(q.x2 + c) - q.m2) * q.r2 * ld<V>(p.w[2] + c) + ld<V>(p.b[2] + c);
  const V y3 = (ld<V>(q.x3 + c) - q.m3) * q.r3 * ld<V>(p.w[3] + c) + ld<V>(p.b[3] + c);
  // Eqs. (5)-(6): G_K = sigmoid(LN(gate_in)), G_F = sigmoid(LN(gate_up))
  const V s0 = sig(y0), s1 = sig(y1);
  st<V>(gk + c, s0);
  st<V>(gf + c, s1);
  return adaptive_gate_mix(s0, s1, y2, y3);
}

template <typename T>
void forward_rows(const Ptrs<T>& p, int64_t m, int64_t cf, T eps, T* out, T* stats, T* gates, int64_t row0,
                  int64_t row1) {
  constexpr int64_t l = cpu::kLanes<T>;
  for (int64_t row = row0; row < row1; ++row) {
    FwdRow<T> q{p.x[0] + row * p.stride[0], p.x[1] + row * p.stride[1], p.x[2] + row * p.stride[2],
                p.x[3] + row * p.stride[3]};
    T mean[4], rstd[4];
    row_stats4(q.x0, q.x1, q.x2, q.x3, cf, eps, mean, rstd);
    q.m0 = mean[0], q.m1 = mean[1], q.m2 = mean[2], q.m3 = mean[3];
    q.r0 = rstd[0], q.r1 = rstd[1], q.r2 = rstd[2], q.r3 = rstd[3];
    for (int j = 0; j < 4; ++j) {
      stats[(j * m + row) * 2] = mean[j];
      stats[(j * m + row) * 2 + 1] = rstd[j];
    }
    T* __restrict o = out + row * cf;
    T* gk = gates + row * cf;
    T* gf = gates + (m + row) * cf;
    int64_t c = 0;
    for (; c + l <= cf; c += l) cpu::store(o + c, forward_elem<Vec<T>>(q, p, c, gk, gf));
    for (; c < cf; ++c) o[c] = forward_elem<T>(q, p, c, gk, gf);
  }
}

// ---- backward ------------------------------------------------------------------------------

template <typename T>
struct BwdRow {
  FwdRow<T> f;
  const T* __restrict g;   // dL/dout row
  const T* __restrict gk;  // the forward's gates of this row: G_K = sigmoid(LN(gate_in))
  const T* __restrict gf;  //   G_F = sigmoid(LN(gate_up))
  T* __restrict dw[4];    // this task's parameter-gradient sums (weights)
  T* __restrict db[4];    //   (biases)
  T* __restrict dxh;      // [4, Cf] scratch: dL/dxhat
  T* __restrict xh;       // [4, Cf] scratch: xhat
};

// accumulator of the two LayerNorm-backward sums: a SIMD vector or a scalar
template <typename V>
struct Sums {
  V s1[4];  // sum of dL/dxhat
  V s2[4];  // sum of dL/dxhat * xhat
};

template <typename V, typename T>
inline void backward_elem(const BwdRow<T>& q, const Ptrs<T>& p, int64_t cf, int64_t c, V& a0, V& a1, V& a2, V& a3,
                          V& b0, V& b1, V& b2, V& b3) {
  const V xh0 = (ld<V>(q.f.x0 + c) - q.f.m0) * q.f.r0;
  const V xh1 = (ld<V>(q.f.x1 + c) - q.f.m1) * q.f.r1;
  const V xh2 = (ld<V>(q.f.x2 + c) - q.f.m2) * q.f.r2;
  const V xh3 = (ld<V>(q.f.x3 + c) - q.f.m3) * q.f.r3;
  const V w0 = ld<V>(p.w[0] + c), w1 = ld<V>(p.w[1] + c), w2 = ld<V>(p.w[2] + c), w3 = ld<V>(p.w[3] + c);
  const V y2 = xh2 * w2 + ld<V>(p.b[2] + c);
  const V y3 = xh3 * w3 + ld<V>(p.b[3] + c);
  V d0, d1, d2, d3;  // dL/dy of the four LayerNorm outputs
  adaptive_gate_mix_backward(ld<V>(q.g + c), ld<V>(q.gk + c), ld<V>(q.gf + c), y2, y3, d0, d1, d2, d3);
  st<V>(q.dw[0] + c, ld<V>(q.dw[0] + c) + d0 * xh0);
  st<V>(q.dw[1] + c, ld<V>(q.dw[1] + c) + d1 * xh1);
  st<V>(q.dw[2] + c, ld<V>(q.dw[2] + c) + d2 * xh2);
  st<V>(q.dw[3] + c, ld<V>(q.dw[3] + c) + d3 * xh3);
  st<V>(q.db[0] + c, ld<V>(q.db[0] + c) + d0);
  st<V>(q.db[1] + c, ld<V>(q.db[1] + c) + d1);
  st<V>(q.db[2] + c, ld<V>(q.db[2] + c) + d2);
  st<V>(q.db[3] + c, ld<V>(q.db[3] + c) + d3);
  const V e0 = d0 * w0, e1 = d1 * w1, e2 = d2 * w2, e3 = d3 * w3;  // dL/dxhat
  st<V>(q.dxh + c, e0);
  st<V>(q.dxh + cf + c, e1);
  st<V>(q.dxh + 2 * cf + c, e2);
  st<V>(q.dxh + 3 * cf + c, e3);
  st<V>(q.xh + c, xh0);
  st<V>(q.xh + cf + c, xh1);
  st<V>(q.xh + 2 * cf + c, xh2);
  st<V>(q.xh + 3 * cf + c, xh3);
  a0 += e0;
  a1 += e1;
  a2 += e2;
  a3 += e3;
  b0 += e0 * xh0;
  b1 += e1 * xh1;
  b2 += e2 * xh2;
  b3 += e3 * xh3;
}

// dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) over one row of one input
template <typename T>
inline void input_grad_row(const T* __restrict dxh, const T* __restrict xh, T rstd, T mean1, T mean2, int64_t cf,
                           T* __restrict dx) {
  constexpr int64_t l = cpu::kLanes<T>;
  int64_t c = 0;
  const Vec<T> vr = Vec<T>{} + rstd, v1 = Vec<T>{} + mean1, v2 = Vec<T>{} + mean2;
  for (; c + l <= cf; c += l) cpu::store(dx + c, layer_norm_dx(cpu::load(dxh + c), cpu::load(xh + c), vr, v1, v2));
  for (; c < cf; ++c) dx[c] = layer_norm_dx(dxh[c], xh[c], rstd, mean1, mean2);
}

template <typename T>
void backward_rows(const Ptrs<T>& p, const T* grad, const T* stats, const T* gates, int64_t m, int64_t cf,
                   T* const* dx, T* const* dparams, T* scratch, int64_t row0, int64_t row1) {
  constexpr int64_t l = cpu::kLanes<T>;
  BwdRow<T> q;
  for (int j = 0; j < 4; ++j) {
    q.dw[j] = dparams[2 * j];
    q.db[j] = dparams[2 * j + 1];
  }
  q.dxh = scratch;
  q.xh = scratch + 4 * cf;
  for (int64_t row = row0; row < row1; ++row) {
    T mr[8];
    for (int j = 0; j < 4; ++j) {
      mr[2 * j] = stats[(j * m + row) * 2];
      mr[2 * j + 1] = stats[(j * m + row) * 2 + 1];
    }
    q.f = FwdRow<T>{p.x[0] + row * p.stride[0], p.x[1] + row * p.stride[1], p.x[2] + row * p.stride[2],
                    p.x[3] + row * p.stride[3], mr[0], mr[2], mr[4], mr[6], mr[1], mr[3], mr[5], mr[7]};
    q.g = grad + row * cf;
    q.gk = gates + row * cf;
    q.gf = gates + (m + row) * cf;
    Vec<T> a0{}, a1{}, a2{}, a3{}, b0{}, b1{}, b2{}, b3{};
    int64_t c = 0;
    for (; c + l <= cf; c += l) backward_elem<Vec<T>>(q, p, cf, c, a0, a1, a2, a3, b0, b1, b2, b3);
    T s0 = 0, s1 = 0, s2 = 0, s3 = 0, t0 = 0, t1 = 0, t2 = 0, t3 = 0;
    for (; c < cf; ++c) backward_elem<T>(q, p, cf, c, s0, s1, s2, s3, t0, t1, t2, t3);
    const T n = T(cf);
    const T mean1[4] = {(hsum<T>(a0) + s0) / n, (hsum<T>(a1) + s1) / n, (hsum<T>(a2) + s2) / n,
                        (hsum<T>(a3) + s3) / n};
    const T mean2[4] = {(hsum<T>(b0) + t0) / n, (hsum<T>(b1) + t1) / n, (hsum<T>(b2) + t2) / n,
                        (hsum<T>(b3) + t3) / n};
    for (int j = 0; j < 4; ++j)
      input_grad_row(q.dxh + j * cf, q.xh + j * cf, mr[2 * j + 1], mean1[j], mean2[j], cf, dx[j] + row * cf);
  }
}

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor> adaptive_gate_forward_cpu(const GateActs& acts,
                                                                         const GateParams& params, double eps) {
  const int64_t m = acts[0].size(0), cf = acts[0].size(1);
  at::Tensor out = at::empty({m, cf}, acts[0].options());
  at::Tensor stats = at::empty({4, m, 2}, acts[0].options());
  at::Tensor gates = at::empty({2, m, cf}, acts[0].options());
  if (m == 0) return {out, stats, gates};
  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "adaptive_gate_forward_cpu", [&] {
    const Ptrs<scalar_t> p = ptrs_of<scalar_t>(acts, params);
    scalar_t* o = out.data_ptr<scalar_t>();
    scalar_t* s = stats.data_ptr<scalar_t>();
    scalar_t* gt = gates.data_ptr<scalar_t>();
    const scalar_t e = static_cast<scalar_t>(eps);
    const int64_t grain = row_grain(cf);
    if (m <= grain) {  // one task: no thread-pool call at all
      forward_rows(p, m, cf, e, o, s, gt, 0, m);
    } else {
      at::parallel_for(0, m, grain, [&](int64_t r0, int64_t r1) { forward_rows(p, m, cf, e, o, s, gt, r0, r1); });
    }
  });
  return {out, stats, gates};
}

std::vector<at::Tensor> adaptive_gate_backward_cpu(const at::Tensor& grad, const GateActs& acts,
                                                   const GateParams& params, const at::Tensor& stats,
                                                   const at::Tensor& gates) {
  const int64_t m = acts[0].size(0), cf = acts[0].size(1);
  std::vector<at::Tensor> grads;
  grads.reserve(12);
  for (int j = 0; j < 4; ++j) grads.push_back(at::empty({m, cf}, acts[0].options()));
  for (int i = 0; i < 8; ++i) grads.push_back(at::zeros({cf}, acts[0].options()));  // separate (no aliasing)
  if (m == 0) return grads;
  AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "adaptive_gate_backward_cpu", [&] {
    using T = scalar_t;
    const Ptrs<T> p = ptrs_of<T>(acts, params);
    const T* g = grad.data_ptr<T>();
    const T* s = stats.data_ptr<T>();
    const T* gt = gates.data_ptr<T>();
    T* dx[4];
    T* dparams[8];
    for (int j = 0; j < 4; ++j) dx[j] = grads[j].data_ptr<T>();
    for (int i = 0; i < 8; ++i) dparams[i] = grads[4 + i].data_ptr<T>();
    // fixed row chunks, each with its own parameter-gradient sums; the first chunk writes into
    // the outputs directly, the others into partial buffers added in chunk order
    const int64_t grain = row_grain(cf);
    const int64_t threads = m > grain ? at::get_num_threads() : 1;
    const int64_t chunk = std::max<int64_t>(grain, (m + threads - 1) / threads);
    const int64_t chunks = (m + chunk - 1) / chunk;
    std::vector<T> work(static_cast<size_t>(chunks * 8 * cf + (chunks - 1) * 8 * cf), T(0));
    auto run = [&](int64_t k) {
      T* scratch = work.data() + k * 8 * cf;
      T* own[8];
      for (int i = 0; i < 8; ++i) own[i] = k == 0 ? dparams[i] : work.data() + (chunks + (k - 1)) * 8 * cf + i * cf;
      backward_rows(p, g, s, gt, m, cf, dx, own, scratch, k * chunk, std::min(m, (k + 1) * chunk));
    };
    if (chunks == 1) {
      run(0);
    } else {
      at::parallel_for(0, chunks, 1, [&](int64_t k0, int64_t k1) {
        for (int64_t k = k0; k < k1; ++k) run(k);
      });
      for (int64_t k = 1; k < chunks; ++k) {
        const T* pk = work.data() + (chunks + (k - 1)) * 8 * cf;
        for (int i = 0; i < 8; ++i)
          for (int64_t c = 0; c < cf; ++c) dparams[i][c] += pk[i * cf + c];
      }
    }
  });
  return grads;
}

}  // namespace knet
