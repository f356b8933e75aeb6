// CUDA fused adaptive gate. Forward and input gradients: one block per row, block reductions
// for the LayerNorm statistics and the two LayerNorm-backward means. Parameter gradients: one
// thread per column over a slice of rows, atomically added (float / double atomics, sm_60+).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>

#include "knet/gating_math.h"
#include "ops/gating/gating.h"

namespace knet {
namespace {

constexpr int kThreads = 256;
constexpr int kRowsPerSlice = 64;

// sum over the block; every thread gets the result
template <typename T>
__device__ T block_sum(T v, T* smem) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  T s = T(0);
  for (int i = 0; i < (blockDim.x + 31) / 32; ++i) s += smem[i];
  return s;
}

template <typename T>
__global__ void forward_kernel(GateRows<T> r, int64_t m, int64_t cf, T eps, T* __restrict__ out, T* __restrict__ stats) {
  __shared__ T smem[32];
  __shared__ T mean_s[4], rstd_s[4];
  const int64_t row = blockIdx.x;
  for (int j = 0; j < 4; ++j) {
    const T* x = r.x[j] + row * r.stride[j];
    T s = T(0);
    for (int64_t c = threadIdx.x; c < cf; c += blockDim.x) s += x[c];
    const T mean = block_sum(s, smem) / T(cf);
    T q = T(0);
    for (int64_t c = threadIdx.x; c < cf; c += blockDim.x) q += (x[c] - mean) * (x[c] - mean);
    const T var = block_sum(q, smem) / T(cf);
    if (threadIdx.x == 0) {
      mean_s[j] = mean;
      rstd_s[j] = T(1) / sqrt(var + eps);
      stats[(j * m + row) * 2] = mean;
      stats[(j * m + row) * 2 + 1] = rstd_s[j];
    }
  }
  __syncthreads();
  for (int64_t c = threadIdx.x; c < cf; c += blockDim.x) {
    T y[4];
    for (int j = 0; j < 4; ++j) y[j] = (r.x[j][row * r.stride[j] + c] - mean_s[j]) * rstd_s[j] * r.w[j][c] + r.b[j][c];
    out[row * cf + c] = adaptive_gate_elem(y[0], y[1], y[2], y[3]);
  }
}

// per element: xhat[j] and dL/dy[j]
template <typename T>
__device__ __forceinline__ void element_grads(const GateRows<T>& r, const T* stats, int64_t m, int64_t row, int64_t c,
                                              T g, T* xhat, T* dy) {
  T y[4];
  for (int j = 0; j < 4; ++j) {
    xhat[j] = (r.x[j][row * r.stride[j] + c] - stats[(j * m + row) * 2]) * stats[(j * m + row) * 2 + 1];
    y[j] = xhat[j] * r.w[j][c] + r.b[j][c];
  }
  adaptive_gate_elem_backward(g, y[0], y[1], y[2], y[3], dy[0], dy[1], dy[2], dy[3]);
}

template <typename T>
__global__ void backward_input_kernel(GateRows<T> r, const T* __restrict__ grad, const T* __restrict__ stats, int64_t m,
                                      int64_t cf, T* dx0, T* dx1, T* dx2, T* dx3) {
  __shared__ T smem[32];
  const int64_t row = blockIdx.x;
  T s1[4] = {}, s2[4] = {};
  for (int64_t c = threadIdx.x; c < cf; c += blockDim.x) {
    T xhat[4], dy[4];
    element_grads(r, stats, m, row, c, grad[row * cf + c], xhat, dy);
    for (int j = 0; j < 4; ++j) {
      const T dxh = dy[j] * r.w[j][c];
      s1[j] += dxh;
      s2[j] += dxh * xhat[j];
    }
  }
  T mean1[4], mean2[4];
  for (int j = 0; j < 4; ++j) {
    mean1[j] = block_sum(s1[j], smem) / T(cf);
    mean2[j] = block_sum(s2[j], smem) / T(cf);
  }
  T* dx[4] = {dx0, dx1, dx2, dx3};
  for (int64_t c = threadIdx.x; c < cf; c += blockDim.x) {
    T xhat[4], dy[4];
    element_grads(r, stats, m, row, c, grad[row * cf + c], xhat, dy);
    for (int j = 0; j < 4; ++j)
      dx[j][row * cf + c] = layer_norm_dx(dy[j] * r.w[j][c], xhat[j], stats[(j * m + row) * 2 + 1], mean1[j], mean2[j]);
  }
}

template <typename T>
__global__ void backward_param_kernel(GateRows<T> r, const T* __restrict__ grad, const T* __restrict__ stats, int64_t m,
                                      int64_t cf, T* __restrict__ dparams) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= cf) return;
  const int64_t r0 = static_cast<int64_t>(blockIdx.y) * kRowsPerSlice;
  const int64_t r1 = r0 + kRowsPerSlice < m ? r0 + kRowsPerSlice : m;
  T dw[4] = {}, db[4] = {};
  for (int64_t row = r0; row < r1; ++row) {
    T xhat[4], dy[4];
    element_grads(r, stats, m, row, c, grad[row * cf + c], xhat, dy);
    for (int j = 0; j < 4; ++j) {
      dw[j] += dy[j] * xhat[j];
      db[j] += dy[j];
    }
  }
  for (int j = 0; j < 4; ++j) {
    atomicAdd(dparams + (2 * j) * cf + c, dw[j]);
    atomicAdd(dparams + (2 * j + 1) * cf + c, db[j]);
  }
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> adaptive_gate_forward_cuda(const GateActs& acts, const GateParams& params,
                                                              double eps) {
  const int64_t m = acts[0].size(0), cf = acts[0].size(1);
  at::Tensor out = at::empty({m, cf}, acts[0].options());
  at::Tensor stats = at::empty({4, m, 2}, acts[0].options());
  if (m == 0) return {out, stats};
  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "adaptive_gate_forward_cuda", [&] {
    forward_kernel<scalar_t><<<static_cast<unsigned>(m), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        gate_rows<scalar_t>(acts, params), m, cf, static_cast<scalar_t>(eps), out.data_ptr<scalar_t>(),
        stats.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {out, stats};
}

std::vector<at::Tensor> adaptive_gate_backward_cuda(const at::Tensor& grad, const GateActs& acts,
                                                    const GateParams& params, const at::Tensor& stats) {
  const int64_t m = acts[0].size(0), cf = acts[0].size(1);
  std::vector<at::Tensor> grads;
  for (int j = 0; j < 4; ++j) grads.push_back(at::empty({m, cf}, acts[0].options()));
  at::Tensor dparams = at::zeros({8, cf}, acts[0].options());
  if (m > 0 && cf > 0) {
    AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "adaptive_gate_backward_cuda", [&] {
      const auto rows = gate_rows<scalar_t>(acts, params);
      const auto stream = c10::cuda::getCurrentCUDAStream();
      backward_input_kernel<scalar_t><<<static_cast<unsigned>(m), kThreads, 0, stream>>>(
          rows, grad.data_ptr<scalar_t>(), stats.data_ptr<scalar_t>(), m, cf, grads[0].data_ptr<scalar_t>(),
          grads[1].data_ptr<scalar_t>(), grads[2].data_ptr<scalar_t>(), grads[3].data_ptr<scalar_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      const dim3 grid(static_cast<unsigned>((cf + kThreads - 1) / kThreads),
                      static_cast<unsigned>((m + kRowsPerSlice - 1) / kRowsPerSlice));
      backward_param_kernel<scalar_t><<<grid, kThreads, 0, stream>>>(rows, grad.data_ptr<scalar_t>(),
                                                                       stats.data_ptr<scalar_t>(), m, cf,
                                                                       dparams.data_ptr<scalar_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
  for (int i = 0; i < 8; ++i) grads.push_back(dparams[i].clone());  // separate tensors (no aliasing)
  return grads;
}

}  // namespace knet
