// assemble: group feature assembling (K-Net Eq. (3)), F[b,n,c] = sum_p gate(M)[b,n,p] X[b,c,p].
// All entry points take contiguous tensors in float32 / float64 (the binding prepares them).
#pragma once

#include <ATen/ATen.h>

#include "knet/assemble_math.h"

namespace knet {

// mask_logits [B, N, H, W], feats [B, C, H, W] -> [B, N, C]
at::Tensor assemble_forward_cpu(const at::Tensor& mask_logits, const at::Tensor& feats, GateMode mode);
// grad [B, N, C] -> dL/dfeats [B, C, H, W]
at::Tensor assemble_grad_feats_cpu(const at::Tensor& grad, const at::Tensor& mask_logits, const at::Tensor& feats,
                                   GateMode mode);
// grad [B, N, C] -> dL/dmask_logits [B, N, H, W] (softmax / sigmoid only)
at::Tensor assemble_grad_masks_cpu(const at::Tensor& grad, const at::Tensor& mask_logits, const at::Tensor& feats,
                                   GateMode mode);

#ifdef WITH_CUDA
at::Tensor assemble_forward_cuda(const at::Tensor& mask_logits, const at::Tensor& feats, GateMode mode);
at::Tensor assemble_grad_feats_cuda(const at::Tensor& grad, const at::Tensor& mask_logits, const at::Tensor& feats,
                                    GateMode mode);
at::Tensor assemble_grad_masks_cuda(const at::Tensor& grad, const at::Tensor& mask_logits, const at::Tensor& feats,
                                    GateMode mode);
#endif

}  // namespace knet
