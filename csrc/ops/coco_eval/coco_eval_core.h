// COCO instance evaluation core (torch-free): per-(image, category) IoU, greedy matching and
// precision/recall accumulation exactly as pycocotools' COCOeval.evaluate() + accumulate().
//
// Reproduced quirks (see docs in knet/evaluation/coco.py): stable score sorts (ties keep file
// order, then image order), maxDets applied per (image, category), inclusive area ranges,
// numpy-linspace thresholds, np.spacing(1) in the precision denominator, crowd GTs absorbing any
// number of detections, ignored GTs used only when no regular GT qualifies, -1 for cells without
// ground truth, and a GT id of 0 behaving as "unmatched" in accumulate (dtMatches stores ids).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "ops/rle/rle_core.h"

namespace knet {
namespace coco {

struct GtObj {
  int32_t img = 0;  // index into the sorted unique image ids
  int32_t cat = 0;  // index into the sorted unique category ids
  double area = 0;  // the JSON "area" field
  bool crowd = false;
  int64_t id = 0;   // annotation id (0 never counts as a match in accumulate, like pycocotools)
  double box[4] = {0, 0, 0, 0};
  rle::Rle rle;
};

struct DtObj {
  int32_t img = 0;
  int32_t cat = 0;
  double score = 0;
  double area = 0;  // mask area (knet) or box area (pycocotools-compat first-entry rule)
  double box[4] = {0, 0, 0, 0};
  rle::Rle rle;
  // Lazy RLE: when rle.cnts is empty and lazy_str is set, the compressed string (owned by the
  // caller, alive until evaluation ends) is decoded when the detection's cell is evaluated, so
  // 500k decoded masks never sit in memory at once.
  const char* lazy_str = nullptr;
  uint32_t lazy_len = 0;
};

struct Params {
  std::vector<double> iou_thrs;              // T
  std::vector<double> rec_thrs;              // R
  std::vector<double> area_lo, area_hi;      // A
  std::vector<int> max_dets;                 // M, ascending; the last one truncates per (img, cat)
  bool use_segm = true;                      // false: box IoU on `box`
};
// Thresholds are passed in from numpy (np.linspace) so that every double is numpy's.

// Per (category, image) cell: what evaluateImg produced for every area range.
struct Cell {
  bool present = false;                 // pycocotools' evalImgs entry is not None
  std::vector<double> scores;           // [D] detections in score order (stable), D <= maxDets[-1]
  std::vector<uint8_t> flags;           // [A][T][D]: 0 ignored, 1 true positive, 2 false positive
  std::vector<int32_t> num_regular_gt;  // [A]: non-ignored ground truths
};

struct Dataset {
  int32_t num_images = 0;
  int32_t num_cats = 0;
  std::vector<GtObj> gts;  // file order
  std::vector<DtObj> dts;  // file order
};

// Group objects by (category, image), keeping file order inside each group.
struct Groups {
  std::vector<int64_t> gt_start, dt_start;  // [K*I + 1] offsets into gt_index / dt_index
  std::vector<int32_t> gt_index, dt_index;
};
Groups group(const Dataset& ds);

// evaluate() for categories [cat_begin, cat_end): fills cells[k * I + i].
void evaluate_cats(const Dataset& ds, const Groups& g, const Params& p, std::vector<Cell>& cells, int32_t cat_begin,
                   int32_t cat_end);

// accumulate() for categories [cat_begin, cat_end). Arrays are pycocotools' layouts, C order,
// pre-filled with -1 by the caller: precision/scores [T, R, K, A, M], recall [T, K, A, M].
void accumulate_cats(const Params& p, int32_t num_images, int32_t num_cats, const std::vector<Cell>& cells,
                     double* precision, double* recall, double* scores, int32_t cat_begin, int32_t cat_end);

}  // namespace coco
}  // namespace knet
