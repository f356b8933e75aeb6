// CUDA kernels of the mask IoU op: bit packing and popcount IoU over packed masks.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "ops/mask_iou/cuda/mask_iou_cuda.h"

namespace knet {
namespace mask_iou {

namespace {

__global__ void pack_kernel(const uint8_t* __restrict__ masks, int64_t n, int64_t npix, int64_t nwords,
                            unsigned long long* __restrict__ out) {
  const int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (idx >= n * nwords) return;
  const int64_t i = idx / nwords, k = idx % nwords;
  const uint8_t* p = masks + i * npix + k * 64;
  const int64_t lim = min(static_cast<int64_t>(64), npix - k * 64);
  unsigned long long w = 0;
  for (int64_t b = 0; b < lim; ++b) w |= static_cast<unsigned long long>(p[b] != 0) << b;
  out[idx] = w;
}

__global__ void area_kernel(const unsigned long long* __restrict__ bits, int64_t n, int64_t nwords,
                            long long* __restrict__ area) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  long long a = 0;
  for (int64_t k = 0; k < nwords; ++k) a += __popcll(bits[i * nwords + k]);
  area[i] = a;
}

// One warp per (dt, gt) pair: lanes stride over the words, then a warp reduction.
__global__ void iou_kernel(const unsigned long long* __restrict__ dt, const unsigned long long* __restrict__ gt,
                           const long long* __restrict__ dt_area, const long long* __restrict__ gt_area,
                           const uint8_t* __restrict__ iscrowd, int64_t m, int64_t n, int64_t nwords,
                           double* __restrict__ out) {
  const int64_t warp = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (warp >= m * n) return;
  const int64_t d = warp / n, g = warp % n;
  long long inter = 0;
  for (int64_t k = lane; k < nwords; k += 32) inter += __popcll(dt[d * nwords + k] & gt[g * nwords + k]);
  for (int off = 16; off > 0; off /= 2) inter += __shfl_down_sync(0xffffffffu, inter, off);
  if (lane == 0) {
    double v = 0.0;
    if (inter != 0) {
      const long long uni = iscrowd[g] ? dt_area[d] : dt_area[d] + gt_area[g] - inter;
      v = static_cast<double>(inter) / static_cast<double>(uni);
    }
    out[d * n + g] = v;
  }
}

}  // namespace

at::Tensor pack_cuda(const at::Tensor& masks_in) {
  const c10::cuda::CUDAGuard guard(masks_in.device());
  at::Tensor masks = masks_in.to(at::kByte).contiguous();
  const int64_t n = masks.size(0), npix = masks.size(1) * masks.size(2);
  const int64_t nwords = (npix + 63) / 64;
  at::Tensor out = at::zeros({n, nwords}, masks.options().dtype(at::kLong));
  const int64_t total = n * nwords;
  if (total == 0) return out;
  const int threads = 256;
  const int64_t blocks = (total + threads - 1) / threads;
  pack_kernel<<<blocks, threads, 0, at::cuda::getCurrentCUDAStream()>>>(
      masks.data_ptr<uint8_t>(), n, npix, nwords, reinterpret_cast<unsigned long long*>(out.data_ptr<int64_t>()));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

at::Tensor packed_iou_cuda(const at::Tensor& dt_in, const at::Tensor& gt_in, const at::Tensor& crowd_in) {
  const c10::cuda::CUDAGuard guard(dt_in.device());
  at::Tensor dt = dt_in.contiguous(), gt = gt_in.contiguous();
  at::Tensor crowd = crowd_in.to(at::kByte).contiguous();
  const int64_t m = dt.size(0), n = gt.size(0), nwords = dt.size(1);
  at::Tensor out = at::zeros({m, n}, dt.options().dtype(at::kDouble));
  if (m == 0 || n == 0) return out;
  at::Tensor dt_area = at::empty({m}, dt.options());
  at::Tensor gt_area = at::empty({n}, dt.options());
  auto stream = at::cuda::getCurrentCUDAStream();
  const auto* dp = reinterpret_cast<const unsigned long long*>(dt.data_ptr<int64_t>());
  const auto* gp = reinterpret_cast<const unsigned long long*>(gt.data_ptr<int64_t>());
  area_kernel<<<(m + 255) / 256, 256, 0, stream>>>(dp, m, nwords, reinterpret_cast<long long*>(dt_area.data_ptr<int64_t>()));
  area_kernel<<<(n + 255) / 256, 256, 0, stream>>>(gp, n, nwords, reinterpret_cast<long long*>(gt_area.data_ptr<int64_t>()));
  const int64_t threads = 256, total = m * n * 32;
  iou_kernel<<<(total + threads - 1) / threads, threads, 0, stream>>>(
      dp, gp, reinterpret_cast<const long long*>(dt_area.data_ptr<int64_t>()),
      reinterpret_cast<const long long*>(gt_area.data_ptr<int64_t>()), crowd.data_ptr<uint8_t>(), m, n, nwords,
      out.data_ptr<double>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

}  // namespace mask_iou
}  // namespace knet
