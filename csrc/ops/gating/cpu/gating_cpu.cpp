// CPU fused adaptive gate: one pass per row for the forward (four LayerNorm statistics, the two
// sigmoid gates and the gated sum), one pass per row for the backward (the four LayerNorm input
// gradients), with the eight parameter gradients reduced from per-chunk partial sums. Rows are
// split over threads with at::parallel_for; every inner loop runs along Cf and vectorises
// (the sigmoid uses the polynomial exp of knet/fast_math.h).
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "knet/gating_math.h"
#include "ops/gating/gating.h"

namespace knet {
namespace {

constexpr int kLanes = 16;

// sum of x[0..n) with kLanes partial sums (vectorises without -ffast-math)
template <typename T>
inline T row_sum(const T* x, int64_t n) {
  T acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) acc[j] += x[i + j];
  T s = T(0);
  for (int j = 0; j < kLanes; ++j) s += acc[j];
  for (; i < n; ++i) s += x[i];
  return s;
}

template <typename T>
inline T row_sum_sq_dev(const T* x, T mean, int64_t n) {
  T acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) {
      const T d = x[i + j] - mean;
      acc[j] += d * d;
    }
  T s = T(0);
  for (int j = 0; j < kLanes; ++j) s += acc[j];
  for (; i < n; ++i) s += (x[i] - mean) * (x[i] - mean);
  return s;
}

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

template <typename T>
void forward_rows(const Rows<T>& r, int64_t m, int64_t cf, T eps, T* out, T* stats) {
  at::parallel_for(0, m, 8, [&](int64_t r0, int64_t r1) {
    std::vector<T> y(4 * cf);
    for (int64_t row = r0; row < r1; ++row) {
      for (int j = 0; j < 4; ++j) {
        const T* x = r.x[j] + row * r.stride[j];
        const T mean = row_sum(x, cf) / T(cf);
        const T rstd = T(1) / std::sqrt(row_sum_sq_dev(x, mean, cf) / T(cf) + eps);
        stats[(j * m + row) * 2] = mean;
        stats[(j * m + row) * 2 + 1] = rstd;
        T* yj = y.data() + j * cf;
        const T* w = r.w[j];
        const T* b = r.b[j];
        for (int64_t c = 0; c < cf; ++c) yj[c] = (x[c] - mean) * rstd * w[c] + b[c];
      }
      const T* y0 = y.data();
      const T* y1 = y0 + cf;
      const T* y2 = y1 + cf;
      const T* y3 = y2 + cf;
      T* o = out + row * cf;
      for (int64_t c = 0; c < cf; ++c) o[c] = adaptive_gate_elem(y0[c], y1[c], y2[c], y3[c]);
    }
  });
}

template <typename T>
void backward_rows(const Rows<T>& r, const T* grad, const T* stats, int64_t m, int64_t cf, T* const* dx, T* dparams) {
  // fixed row chunks with their own parameter-gradient partial sums (deterministic reduction)
  const int64_t chunk = std::max<int64_t>(16, (m + 4 * at::get_num_threads() - 1) / (4 * at::get_num_threads()));
  const int64_t chunks = (m + chunk - 1) / chunk;
  std::vector<T> partial(chunks * 8 * cf, T(0));
  at::parallel_for(0, chunks, 1, [&](int64_t k0, int64_t k1) {
    std::vector<T> xhat(4 * cf), dy(4 * cf);
    for (int64_t k = k0; k < k1; ++k) {
      T* pk = partial.data() + k * 8 * cf;
      for (int64_t row = k * chunk; row < std::min(m, (k + 1) * chunk); ++row) {
        for (int j = 0; j < 4; ++j) {
          const T* x = r.x[j] + row * r.stride[j];
          const T mean = stats[(j * m + row) * 2], rstd = stats[(j * m + row) * 2 + 1];
          T* xh = xhat.data() + j * cf;
          for (int64_t c = 0; c < cf; ++c) xh[c] = (x[c] - mean) * rstd;
        }
        const T* g = grad + row * cf;
        {
          const T *xh0 = xhat.data(), *xh1 = xh0 + cf, *xh2 = xh1 + cf, *xh3 = xh2 + cf;
          T *d0 = dy.data(), *d1 = d0 + cf, *d2 = d1 + cf, *d3 = d2 + cf;
          const T *w0 = r.w[0], *w1 = r.w[1], *w2 = r.w[2], *w3 = r.w[3];
          const T *b0 = r.b[0], *b1 = r.b[1], *b2 = r.b[2], *b3 = r.b[3];
          for (int64_t c = 0; c < cf; ++c) {
            adaptive_gate_elem_backward(g[c], xh0[c] * w0[c] + b0[c], xh1[c] * w1[c] + b1[c], xh2[c] * w2[c] + b2[c],
                                        xh3[c] * w3[c] + b3[c], d0[c], d1[c], d2[c], d3[c]);
          }
        }
        for (int j = 0; j < 4; ++j) {
          const T* xh = xhat.data() + j * cf;
          T* d = dy.data() + j * cf;
          const T* w = r.w[j];
          T* dw = pk + (2 * j) * cf;
          T* db = pk + (2 * j + 1) * cf;
          for (int64_t c = 0; c < cf; ++c) {
            dw[c] += d[c] * xh[c];
            db[c] += d[c];
            d[c] *= w[c];  // dL/dxhat
          }
          T acc1[kLanes] = {}, acc2[kLanes] = {};
          int64_t c = 0;
          for (; c + kLanes <= cf; c += kLanes)
            for (int l = 0; l < kLanes; ++l) {
              acc1[l] += d[c + l];
              acc2[l] += d[c + l] * xh[c + l];
            }
          T s1 = T(0), s2 = T(0);
          for (int l = 0; l < kLanes; ++l) s1 += acc1[l], s2 += acc2[l];
          for (; c < cf; ++c) s1 += d[c], s2 += d[c] * xh[c];
          const T mean1 = s1 / T(cf), mean2 = s2 / T(cf);
          const T rstd = stats[(j * m + row) * 2 + 1];
          T* o = dx[j] + row * cf;
          for (int64_t c2 = 0; c2 < cf; ++c2) o[c2] = layer_norm_dx(d[c2], xh[c2], rstd, mean1, mean2);
        }
      }
    }
  });
  for (int64_t k = 0; k < chunks; ++k) {
    const T* pk = partial.data() + k * 8 * cf;
    for (int64_t i = 0; i < 8 * cf; ++i) dparams[i] += pk[i];
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
  at::Tensor dparams = at::zeros({8, cf}, acts[0].options());
  if (m > 0) {
    AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "adaptive_gate_backward_cpu", [&] {
      scalar_t* dx[4];
      for (int j = 0; j < 4; ++j) dx[j] = grads[j].data_ptr<scalar_t>();
      backward_rows(rows_of<scalar_t>(acts, params), grad.data_ptr<scalar_t>(), stats.data_ptr<scalar_t>(), m, cf, dx,
                    dparams.data_ptr<scalar_t>());
    });
  }
  for (int i = 0; i < 8; ++i) grads.push_back(dparams[i].clone());  // separate tensors (no aliasing)
  return grads;
}

}  // namespace knet
