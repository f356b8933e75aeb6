// CUDA entry points of the mask IoU op (compiled only in CUDA builds).
#pragma once

#include <ATen/ATen.h>

namespace knet {
namespace mask_iou {

// masks: [N, H, W] uint8/bool CUDA tensor -> [N, ceil(H*W/64)] int64 bit-packed words.
at::Tensor pack_cuda(const at::Tensor& masks);
// dt_bits [M, K], gt_bits [N, K] int64 packed words; iscrowd [N] uint8 -> [M, N] float64 IoU.
at::Tensor packed_iou_cuda(const at::Tensor& dt_bits, const at::Tensor& gt_bits, const at::Tensor& iscrowd);

}  // namespace mask_iou
}  // namespace knet
