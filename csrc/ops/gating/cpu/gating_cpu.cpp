// CPU fused adaptive gate (K-Net Eqs. (5)-(6)). Per row: the forward is one statistics pass
// and one element pass (four LayerNorms, two sigmoid gates, gated sum; the gates are saved);
// the backward is one element pass (the four dL/dxhat from the saved gates, the
// parameter-gradient sums, the LayerNorm-backward means) and one output pass. The row kernels
// (gating_rows.inc) run on SIMD vectors with the per-element functions shared with the CUDA
// kernel (knet/gating_math.h) and a scalar tail for odd Cf; they are compiled here for
// knet/cpu_vec.h's vectors (AVX2) and in gating_cpu_avx512.cpp for 16-float vectors, used for
// float32 on CPUs with AVX-512 (chosen explicitly at run time, see gating_cpu.h).
//
// Threads: rows are split over at::parallel_for only when a task gets at least ~16K elements
// (16 rows at Cf = 256: the 153-row panoptic and the 600-row semantic problems both use two
// threads). The
// backward gives each task its own parameter-gradient partial sums, reduced in task order
// (deterministic for a given thread count).
#include <ATen/EmptyTensor.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "knet/cpu_vec.h"
#include "knet/gating_math.h"
#include "ops/gating/cpu/gating_cpu.h"
#include "ops/gating/gating.h"

namespace knet {
namespace {

using gating_cpu::Ptrs;

// ---- the row kernels on knet/cpu_vec.h's 32-byte vectors (AVX2 with -mavx2) ----------------
template <typename T>
using Vec = cpu::Vec<T>;
template <typename T>
constexpr int64_t kLanes = cpu::kLanes<T>;

template <typename T>
inline Vec<T> vload(const T* p) {
  return cpu::load(p);
}
template <typename T>
inline void vstore(T* p, Vec<T> v) {
  cpu::store(p, v);
}

inline float sig(float x) { return sigmoid(x); }
inline double sig(double x) { return sigmoid(x); }
inline Vec<float> sig(Vec<float> x) { return cpu::sigmoid_v(x); }
inline Vec<double> sig(Vec<double> x) {
  for (int i = 0; i < cpu::kLanes<double>; ++i) x[i] = sigmoid(x[i]);
  return x;
}

// the sum of the lanes, pairwise (upper half onto lower half)
template <typename T>
inline T hsum_lanes(Vec<T> v) {
  T s[kLanes<T>];
  std::memcpy(s, &v, sizeof v);
  for (int h = kLanes<T> / 2; h > 0; h /= 2)
    for (int i = 0; i < h; ++i) s[i] += s[i + h];
  return s[0];
}
inline float hsum(Vec<float> v) { return hsum_lanes<float>(v); }
inline double hsum(Vec<double> v) { return hsum_lanes<double>(v); }

#include "ops/gating/cpu/gating_rows.inc"

// ---- dispatch: the AVX-512 build (gating_cpu_avx512.cpp) for float where the CPU has it ------
template <typename T>
void forward_range(const Ptrs<T>& p, int64_t m, int64_t cf, T eps, T* out, T* stats, T* gates, int64_t r0,
                   int64_t r1) {
  if constexpr (std::is_same_v<T, float>) {
    if (gating_cpu::avx512_enabled()) return gating_cpu::forward_rows_avx512(p, m, cf, eps, out, stats, gates, r0, r1);
  }
  forward_rows(p, m, cf, eps, out, stats, gates, r0, r1);
}

template <typename T>
void backward_range(const Ptrs<T>& p, const T* grad, const T* stats, const T* gates, int64_t m, int64_t cf,
                    T* const* dx, T* const* dparams, T* scratch, int64_t r0, int64_t r1) {
  if constexpr (std::is_same_v<T, float>) {
    if (gating_cpu::avx512_enabled())
      return gating_cpu::backward_rows_avx512(p, grad, stats, gates, m, cf, dx, dparams, scratch, r0, r1);
  }
  backward_rows(p, grad, stats, gates, m, cf, dx, dparams, scratch, r0, r1);
}

// a new CPU tensor straight from ATen's CPU allocator function (at::empty goes through the
// dispatcher: about twice the cost, and this op allocates 15 tensors per forward + backward)
inline at::Tensor empty_cpu(at::IntArrayRef sizes, const at::Tensor& like) {
  return at::detail::empty_cpu(sizes, like.scalar_type(), /*pin_memory=*/false);
}

constexpr int64_t kTaskElems = int64_t{1} << 14;  // elements (rows x Cf x 4 inputs) per task

inline int64_t row_grain(int64_t cf) { return std::max<int64_t>(1, kTaskElems / std::max<int64_t>(4 * cf, 1)); }

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor> adaptive_gate_forward_cpu(const GateActs& acts,
                                                                         const GateParams& params, double eps) {
  const int64_t m = acts[0].size(0), cf = acts[0].size(1);
  at::Tensor out = empty_cpu({m, cf}, acts[0]);
  at::Tensor stats = empty_cpu({4, m, 2}, acts[0]);
  at::Tensor gates = empty_cpu({2, m, cf}, acts[0]);
  if (m == 0) return {out, stats, gates};
  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "adaptive_gate_forward_cpu", [&] {
    const Ptrs<scalar_t> p = gate_rows<scalar_t>(acts, params);
    scalar_t* o = out.data_ptr<scalar_t>();
    scalar_t* s = stats.data_ptr<scalar_t>();
    scalar_t* gt = gates.data_ptr<scalar_t>();
    const scalar_t e = static_cast<scalar_t>(eps);
    const int64_t grain = row_grain(cf);
    if (m <= grain) {  // one task: no thread-pool call at all
      forward_range(p, m, cf, e, o, s, gt, 0, m);
    } else {
      at::parallel_for(0, m, grain, [&](int64_t r0, int64_t r1) { forward_range(p, m, cf, e, o, s, gt, r0, r1); });
    }
  });
  return {out, stats, gates};
}

std::vector<at::Tensor> adaptive_gate_backward_cpu(const at::Tensor& grad, const GateActs& acts,
                                                   const GateParams& params, const at::Tensor& stats,
                                                   const at::Tensor& gates) {
  const int64_t m = acts[0].size(0), cf = acts[0].size(1);
  // twelve separate tensors: the torch.library op (torch.compile) may not return aliasing outputs
  std::vector<at::Tensor> grads;
  grads.reserve(12);
  for (int j = 0; j < 4; ++j) grads.push_back(empty_cpu({m, cf}, acts[0]));
  for (int i = 0; i < 8; ++i) grads.push_back(empty_cpu({cf}, acts[0]));  // written by the kernels
  if (m == 0) {
    for (int i = 0; i < 8; ++i) grads[4 + i].zero_();
    return grads;
  }
  AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "adaptive_gate_backward_cpu", [&] {
    using T = scalar_t;
    const Ptrs<T> p = gate_rows<T>(acts, params);
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
    // per chunk: a blocked [Cf / L][4][L] dL/dxhat scratch row (L <= 16 lanes), and for every
    // chunk but the first eight [Cf] parameter-gradient partial sums (the first chunk's are
    // written into the outputs, the others added to them in chunk order)
    const int64_t scratch_size = 4 * (cf + 16);
    std::vector<T> work(static_cast<size_t>(chunks * scratch_size + (chunks - 1) * 8 * cf));
    T* partials = work.data() + chunks * scratch_size;
    auto run = [&](int64_t k) {
      T* scratch = work.data() + k * scratch_size;
      T* own[8];
      for (int i = 0; i < 8; ++i) own[i] = k == 0 ? dparams[i] : partials + (k - 1) * 8 * cf + i * cf;
      backward_range(p, g, s, gt, m, cf, dx, own, scratch, k * chunk, std::min(m, (k + 1) * chunk));
    };
    if (chunks == 1) {
      run(0);
    } else {
      at::parallel_for(0, chunks, 1, [&](int64_t k0, int64_t k1) {
        for (int64_t k = k0; k < k1; ++k) run(k);
      });
      for (int64_t k = 1; k < chunks; ++k) {
        const T* pk = partials + (k - 1) * 8 * cf;
        for (int i = 0; i < 8; ++i)
          for (int64_t c = 0; c < cf; ++c) dparams[i][c] += pk[i * cf + c];
      }
    }
  });
  return grads;
}

}  // namespace knet
