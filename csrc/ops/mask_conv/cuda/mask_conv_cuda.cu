// CUDA mask_conv: the batched GEMM of knet/cuda_gemm.cuh with strided operands (the
// transposes of the backward pass are strides, no copies).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>

#include "knet/cuda_gemm.cuh"
#include "ops/mask_conv/mask_conv.h"

namespace knet {

at::Tensor mask_conv_forward_cuda(const at::Tensor& feats, const at::Tensor& kernels) {
  const int64_t b = feats.size(0), c = feats.size(1), hw = feats.size(2) * feats.size(3);
  const int64_t n = kernels.size(1);
  at::Tensor out = at::empty({b, n, feats.size(2), feats.size(3)}, feats.options());
  AT_DISPATCH_FLOATING_TYPES(feats.scalar_type(), "mask_conv_forward_cuda", [&] {
    // out[b, n, p] = sum_c K[b, n, c] X[b, c, p]
    cuda::StridedLoad<scalar_t> a{kernels.data_ptr<scalar_t>(), n * c, c, 1};
    cuda::StridedLoad<scalar_t> x{feats.data_ptr<scalar_t>(), c * hw, hw, 1};
    cuda::batched_gemm<scalar_t>(b, n, hw, c, a, x, out.data_ptr<scalar_t>());
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> mask_conv_backward_cuda(const at::Tensor& grad, const at::Tensor& feats,
                                                           const at::Tensor& kernels) {
  const int64_t b = feats.size(0), c = feats.size(1), hw = feats.size(2) * feats.size(3);
  const int64_t n = kernels.size(1);
  at::Tensor grad_feats = at::empty_like(feats);
  at::Tensor grad_kernels = at::empty_like(kernels);
  AT_DISPATCH_FLOATING_TYPES(feats.scalar_type(), "mask_conv_backward_cuda", [&] {
    const scalar_t* g = grad.data_ptr<scalar_t>();
    // dX[b, c, p] = sum_n K[b, n, c] G[b, n, p]   (A = K^T: element (c, n) at n * C + c)
    cuda::StridedLoad<scalar_t> kt{kernels.data_ptr<scalar_t>(), n * c, 1, c};
    cuda::StridedLoad<scalar_t> gl{g, n * hw, hw, 1};
    cuda::batched_gemm<scalar_t>(b, c, hw, n, kt, gl, grad_feats.data_ptr<scalar_t>());
    // dK[b, n, c] = sum_p G[b, n, p] X[b, c, p]   (B = X^T: element (p, c) at c * HW + p)
    cuda::StridedLoad<scalar_t> xt{feats.data_ptr<scalar_t>(), c * hw, 1, hw};
    cuda::batched_gemm<scalar_t>(b, n, c, hw, gl, xt, grad_kernels.data_ptr<scalar_t>());
  });
  if (n == 0 || hw == 0) {
    grad_feats.zero_();
    grad_kernels.zero_();
  }
  return {grad_feats, grad_kernels};
}

}  // namespace knet
