// CUDA group feature assembling: the batched GEMM of knet/cuda_gemm.cuh with the gate applied
// while loading the mask operand (binary / sigmoid / softmax with per-pixel max and 1/sum), so
// no gate tensor is materialised. The mask gradient of the soft modes is one GEMM (G X) and a
// per-pixel pass through the sigmoid / softmax derivative.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>

#include "knet/assemble_math.h"
#include "knet/cuda_gemm.cuh"
#include "ops/assemble/assemble.h"

namespace knet {
namespace {

// gate(M)[b, n, p]; kNFirst selects the operand orientation: (n, p) or (p, n) indices
template <typename T, bool kNFirst>
struct GateLoad {
  const T* m;      // [B, N, HW]
  const T* stats;  // softmax: [B, 2, HW] = (max, 1 / sum)
  int64_t n, hw;
  GateMode mode;
  __device__ __forceinline__ T operator()(int64_t b, int64_t x, int64_t y) const {
    const int64_t k = kNFirst ? x : y, p = kNFirst ? y : x;
    const T v = m[(b * n + k) * hw + p];
    if (mode == GateMode::kBinary) return binary_gate(v) ? T(1) : T(0);
    if (mode == GateMode::kSigmoid) return sigmoid(v);
    return softmax_gate(v, stats[b * 2 * hw + p], stats[b * 2 * hw + hw + p]);
  }
};

template <typename T>
__global__ void softmax_stats_kernel(const T* __restrict__ m, int64_t batch, int64_t n, int64_t hw, T* __restrict__ stats) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= batch * hw) return;
  const int64_t b = i / hw, p = i % hw;
  const T* mb = m + b * n * hw + p;
  T mx = mb[0];
  for (int64_t k = 1; k < n; ++k) mx = mb[k * hw] > mx ? mb[k * hw] : mx;
  T s = T(0);
  for (int64_t k = 0; k < n; ++k) s += exp_approx(mb[k * hw] - mx);
  stats[b * 2 * hw + p] = mx;
  stats[b * 2 * hw + hw + p] = T(1) / s;
}

// d[b, n, p] = dL/dgate -> dL/dmask_logit, in place
template <typename T>
__global__ void gate_backward_kernel(const T* __restrict__ m, const T* __restrict__ stats, int64_t batch, int64_t n,
                                     int64_t hw, GateMode mode, T* __restrict__ d) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= batch * hw) return;
  const int64_t b = i / hw, p = i % hw;
  const T* mb = m + b * n * hw + p;
  T* db = d + b * n * hw + p;
  if (mode == GateMode::kSigmoid) {
    for (int64_t k = 0; k < n; ++k) db[k * hw] = sigmoid_gate_backward(db[k * hw], sigmoid(mb[k * hw]));
    return;
  }
  const T mx = stats[b * 2 * hw + p], inv = stats[b * 2 * hw + hw + p];
  T dot = T(0);
  for (int64_t k = 0; k < n; ++k) dot += softmax_gate(mb[k * hw], mx, inv) * db[k * hw];
  for (int64_t k = 0; k < n; ++k) db[k * hw] = softmax_gate_backward(db[k * hw], softmax_gate(mb[k * hw], mx, inv), dot);
}

at::Tensor softmax_stats(const at::Tensor& m, GateMode mode) {
  const int64_t b = m.size(0), n = m.size(1), hw = m.size(2) * m.size(3);
  at::Tensor stats = at::empty({b, 2, hw}, m.options());
  if (mode != GateMode::kSoftmax || b * hw == 0 || n == 0) return stats;
  AT_DISPATCH_FLOATING_TYPES(m.scalar_type(), "assemble_softmax_stats", [&] {
    const int threads = 256;
    const auto blocks = static_cast<unsigned>((b * hw + threads - 1) / threads);
    softmax_stats_kernel<scalar_t><<<blocks, threads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        m.data_ptr<scalar_t>(), b, n, hw, stats.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return stats;
}

}  // namespace

at::Tensor assemble_forward_cuda(const at::Tensor& mask_logits, const at::Tensor& feats, GateMode mode) {
  const int64_t b = feats.size(0), c = feats.size(1), hw = feats.size(2) * feats.size(3);
  const int64_t n = mask_logits.size(1);
  at::Tensor out = at::empty({b, n, c}, feats.options());
  const at::Tensor stats = softmax_stats(mask_logits, mode);
  AT_DISPATCH_FLOATING_TYPES(feats.scalar_type(), "assemble_forward_cuda", [&] {
    GateLoad<scalar_t, true> gate{mask_logits.data_ptr<scalar_t>(), stats.data_ptr<scalar_t>(), n, hw, mode};
    cuda::StridedLoad<scalar_t> xt{feats.data_ptr<scalar_t>(), c * hw, 1, hw};  // (p, c) of X
    cuda::batched_gemm<scalar_t>(b, n, c, hw, gate, xt, out.data_ptr<scalar_t>());
  });
  return out;
}

at::Tensor assemble_grad_feats_cuda(const at::Tensor& grad, const at::Tensor& mask_logits, const at::Tensor& feats,
                                    GateMode mode) {
  const int64_t b = feats.size(0), c = feats.size(1), hw = feats.size(2) * feats.size(3);
  const int64_t n = mask_logits.size(1);
  at::Tensor grad_feats = at::empty_like(feats);
  const at::Tensor stats = softmax_stats(mask_logits, mode);
  AT_DISPATCH_FLOATING_TYPES(feats.scalar_type(), "assemble_grad_feats_cuda", [&] {
    // dX[b, c, p] = sum_n G[b, n, c] gate[b, n, p]   (A = G^T: element (c, n) at n * C + c)
    cuda::StridedLoad<scalar_t> gt{grad.data_ptr<scalar_t>(), n * c, 1, c};
    GateLoad<scalar_t, true> gate{mask_logits.data_ptr<scalar_t>(), stats.data_ptr<scalar_t>(), n, hw, mode};
    cuda::batched_gemm<scalar_t>(b, c, hw, n, gt, gate, grad_feats.data_ptr<scalar_t>());
  });
  return grad_feats;
}

at::Tensor assemble_grad_masks_cuda(const at::Tensor& grad, const at::Tensor& mask_logits, const at::Tensor& feats,
                                    GateMode mode) {
  TORCH_CHECK(mode != GateMode::kBinary, "assemble: the binary gate has no gradient");
  const int64_t b = feats.size(0), c = feats.size(1), hw = feats.size(2) * feats.size(3);
  const int64_t n = mask_logits.size(1);
  at::Tensor d = at::empty_like(mask_logits);
  const at::Tensor stats = softmax_stats(mask_logits, mode);
  AT_DISPATCH_FLOATING_TYPES(feats.scalar_type(), "assemble_grad_masks_cuda", [&] {
    // dL/dgate[b, n, p] = sum_c G[b, n, c] X[b, c, p]
    cuda::StridedLoad<scalar_t> g{grad.data_ptr<scalar_t>(), n * c, c, 1};
    cuda::StridedLoad<scalar_t> x{feats.data_ptr<scalar_t>(), c * hw, hw, 1};
    cuda::batched_gemm<scalar_t>(b, n, hw, c, g, x, d.data_ptr<scalar_t>());
    if (b * hw == 0 || n == 0) return;
    const int threads = 256;
    const auto blocks = static_cast<unsigned>((b * hw + threads - 1) / threads);
    gate_backward_kernel<scalar_t><<<blocks, threads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        mask_logits.data_ptr<scalar_t>(), stats.data_ptr<scalar_t>(), b, n, hw, mode, d.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return d;
}

}  // namespace knet
