// Mask IoU cores: COCO RLEs (pycocotools rleIou semantics) and bit-packed binary masks.
// The torch-free part (mask_iou_core.cpp) is shared with the knet_core_tests executable.
//
// Bit-packed layout: one row of ceil(H*W / 64) uint64 words per mask; bit b of word k is the
// pixel k*64 + b of the row-major (C-order) flattened mask; padding bits are zero.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ops/rle/rle_core.h"

namespace knet {
namespace mask_iou {

// IoU matrix [m, n] (row = detection) of RLEs, exactly pycocotools maskUtils.iou(dt, gt, iscrowd)
// (transposed to dt-major). iscrowd may be null (no crowd). Rows [row_begin, row_end) only.
void rle_iou_matrix(const rle::Rle* const* dt, size_t m, const rle::Rle* const* gt, size_t n,
                    const uint8_t* iscrowd, const double* dt_boxes, const double* gt_boxes, double* out,
                    size_t row_begin, size_t row_end);

// Pack one row-major mask of npix bytes (non-zero = foreground) into words (ceil(npix/64)).
void pack_bits(const uint8_t* mask, int64_t npix, uint64_t* words);

// Popcount of a packed mask.
int64_t packed_area(const uint64_t* words, int64_t nwords);

// IoU rows [row_begin, row_end) of packed masks: inter / union, crowd -> inter / area(dt),
// 0 when the intersection is empty (pycocotools' convention).
void packed_iou_rows(const uint64_t* dt, const uint64_t* gt, int64_t n, int64_t nwords, const int64_t* dt_area,
                     const int64_t* gt_area, const uint8_t* iscrowd, double* out, int64_t row_begin,
                     int64_t row_end);

// The per-pair formula shared by the CPU, CUDA and test code.
inline double iou_from_counts(int64_t inter, int64_t dt_area, int64_t gt_area, bool crowd) {
  if (inter == 0) return 0.0;
  const int64_t uni = crowd ? dt_area : dt_area + gt_area - inter;
  return static_cast<double>(inter) / static_cast<double>(uni);
}

}  // namespace mask_iou
}  // namespace knet
