// mask_conv: dynamic 1x1 mask convolution (K-Net Eq. (1)), masks[b,n,p] = sum_c K[b,n,c] X[b,c,p].
// All entry points take contiguous tensors in float32 / float64 (the binding prepares them).
#pragma once

#include <ATen/ATen.h>

#include <tuple>

namespace knet {

// feats [B, C, H, W], kernels [B, N, C] -> masks [B, N, H, W]
at::Tensor mask_conv_forward_cpu(const at::Tensor& feats, const at::Tensor& kernels);
// grad [B, N, H, W] -> (grad_feats [B, C, H, W], grad_kernels [B, N, C])
std::tuple<at::Tensor, at::Tensor> mask_conv_backward_cpu(const at::Tensor& grad, const at::Tensor& feats,
                                                          const at::Tensor& kernels);

#ifdef WITH_CUDA
at::Tensor mask_conv_forward_cuda(const at::Tensor& feats, const at::Tensor& kernels);
std::tuple<at::Tensor, at::Tensor> mask_conv_backward_cuda(const at::Tensor& grad, const at::Tensor& feats,
                                                           const at::Tensor& kernels);
#endif

}  // namespace knet
