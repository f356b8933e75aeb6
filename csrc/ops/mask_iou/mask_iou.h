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

// Foreground runs of one RLE as half-open [start, end) column-major pixel intervals, written to
// iv as start/end pairs (iv needs cnts_len + 1 entries); zero-length runs are dropped. Returns the
// number of intervals. uint32 cumulative sums, as maskApi.
size_t counts_to_intervals(const uint32_t* cnts, size_t cnts_len, uint32_t* iv);

// (|A & B| of two interval lists: rle::intervals_intersection in ops/rle/rle_core.h)

// One decoded RLE for the interval path: size, rleToBbox box, area and its intervals.
struct RunMask {
  uint32_t h = 0, w = 0;
  double box[4] = {0, 0, 0, 0};
  uint32_t area = 0;
  const uint32_t* iv = nullptr;  // start/end pairs
  size_t n = 0;                  // intervals
  // Column profile, when every column holds at most one foreground interval (convex-ish masks):
  // rows [col_start[x], col_end[x]) of column x are foreground (end 0 = empty column). Then a
  // pair's intersection is a branch-free (vectorised) sum over the boxes' common columns.
  int32_t* col_start = nullptr;  // [w], set by the caller (nullptr: no profile)
  int32_t* col_end = nullptr;    // [w]
  bool simple = false;           // profile valid
  // A zero-length run after the first count can end pycocotools' run walk early (its loop stops
  // when both masks sit on a run boundary with empty runs): such masks keep their counts and
  // their pairs use that literal walk (knet::rle::inter_union). Set by runs_from_*; the caller
  // fills `exact` for them.
  bool zero_run = false;
  const rle::Rle* exact = nullptr;
};

// One pass over the counts of an RLE (a compressed string, parsed exactly like rleFrString, or
// an array of counts) that fills a RunMask: rleToBbox's box, the uint32 area and the intervals
// (iv needs counts + 2 entries; a string of len characters has at most len counts). If
// out.col_start/col_end point at w zeroed entries each, the column profile is filled too.
void runs_from_string(const char* s, size_t len, uint32_t h, uint32_t w, uint32_t* iv, RunMask& out);
void runs_from_counts(const uint32_t* cnts, size_t k, uint32_t h, uint32_t w, uint32_t* iv, RunMask& out);

// IoU rows [row_begin, row_end) of RunMasks, exactly pycocotools rleIou (box prefilter, -1 on
// size mismatch, crowd -> intersection / dt area). out is [m, n] dt-major.
void run_iou_rows(const RunMask* dt, const RunMask* gt, size_t n, const uint8_t* iscrowd, double* out,
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
