// CPU mask_conv: the dynamic 1x1 convolution is a batched GEMM, [N, C] x [C, H*W] per image.
// No hand-written loop beats the BLAS that ATen links (multi-threaded, cache-blocked); the
// kernel writes straight into the output (no einsum permutes / copies) so it is never slower
// than the twin.
#include "ops/mask_conv/mask_conv.h"

namespace knet {

at::Tensor mask_conv_forward_cpu(const at::Tensor& feats, const at::Tensor& kernels) {
  const int64_t b = feats.size(0), c = feats.size(1), h = feats.size(2), w = feats.size(3);
  const int64_t n = kernels.size(1);
  at::Tensor out = at::empty({b, n, h, w}, feats.options());
  if (out.numel() == 0) return out;
  if (c == 0) return out.zero_();
  at::Tensor out3 = out.view({b, n, h * w});
  at::bmm_out(out3, kernels, feats.view({b, c, h * w}));  // [B,N,C] x [B,C,HW]
  return out;
}

std::tuple<at::Tensor, at::Tensor> mask_conv_backward_cpu(const at::Tensor& grad, const at::Tensor& feats,
                                                          const at::Tensor& kernels) {
  const int64_t b = feats.size(0), c = feats.size(1), h = feats.size(2), w = feats.size(3);
  const int64_t n = kernels.size(1);
  at::Tensor grad_feats = at::zeros({b, c, h, w}, feats.options());
  at::Tensor grad_kernels = at::zeros({b, n, c}, kernels.options());
  if (n == 0 || c == 0 || h * w == 0 || b == 0) return {grad_feats, grad_kernels};
  const at::Tensor g = grad.view({b, n, h * w});
  // dX[b] = K[b]^T G[b]: [C, N] x [N, HW]
  at::Tensor grad_feats3 = grad_feats.view({b, c, h * w});
  at::bmm_out(grad_feats3, kernels.transpose(1, 2), g);
  // dK[b] = G[b] X[b]^T: [N, HW] x [HW, C]
  at::bmm_out(grad_kernels, g, feats.view({b, c, h * w}).transpose(1, 2));
  return {grad_feats, grad_kernels};
}

}  // namespace knet
