// knet/cuda_gemm.cuh: one small batched GEMM for the CUDA kernels of mask_conv and assemble.
//
//   out[b, i, j] = sum_k A(b, i, k) * B(b, k, j)        out contiguous [batch, M, N]
//
// A and B are "loaders": functors returning one element, so an operand can be a strided view
// (a transpose costs nothing) or be computed on the fly (the assemble gate of a mask logit), and
// no gate tensor is ever materialised. 16x16 shared-memory tiles, accumulation in T.
#pragma once

#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace knet {
namespace cuda {

constexpr int kTile = 16;

template <typename T>
struct StridedLoad {
  const T* p;
  int64_t sb, si, sk;
  __device__ __forceinline__ T operator()(int64_t b, int64_t i, int64_t k) const { return p[b * sb + i * si + k * sk]; }
};

template <typename T, typename LoadA, typename LoadB>
__global__ void batched_gemm_kernel(int64_t m, int64_t n, int64_t k, LoadA load_a, LoadB load_b, T* __restrict__ out) {
  __shared__ T as[kTile][kTile + 1];
  __shared__ T bs[kTile][kTile + 1];
  const int64_t b = blockIdx.z;
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t row = static_cast<int64_t>(blockIdx.y) * kTile + ty;
  const int64_t col = static_cast<int64_t>(blockIdx.x) * kTile + tx;
  T acc = T(0);
  for (int64_t k0 = 0; k0 < k; k0 += kTile) {
    const int64_t ka = k0 + tx, kb = k0 + ty;
    as[ty][tx] = (row < m && ka < k) ? load_a(b, row, ka) : T(0);
    bs[ty][tx] = (kb < k && col < n) ? load_b(b, kb, col) : T(0);
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kTile; ++kk) acc += as[ty][kk] * bs[kk][tx];
    __syncthreads();
  }
  if (row < m && col < n) out[(b * m + row) * n + col] = acc;
}

template <typename T, typename LoadA, typename LoadB>
void batched_gemm(int64_t batch, int64_t m, int64_t n, int64_t k, LoadA load_a, LoadB load_b, T* out) {
  if (batch == 0 || m == 0 || n == 0) return;
  const dim3 block(kTile, kTile);
  const dim3 grid(static_cast<unsigned>((n + kTile - 1) / kTile), static_cast<unsigned>((m + kTile - 1) / kTile),
                  static_cast<unsigned>(batch));
  batched_gemm_kernel<T><<<grid, block, 0, c10::cuda::getCurrentCUDAStream()>>>(m, n, k, load_a, load_b, out);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace cuda
}  // namespace knet
