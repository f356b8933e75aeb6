// COCO instance evaluation core (torch-free): per-(image, category) IoU, greedy matching and
// precision/recall accumulation exactly as pycocotools' COCOeval.evaluate() + accumulate().
//
// Reproduced quirks (see docs in knet/evaluation/coco.py): stable score sorts (ties keep file
// order, then image order), maxDets applied per (image, category), inclusive area ranges,
// numpy-linspace thresholds, np.spacing(1) in the precision denominator, crowd GTs absorbing any
// number of detections, ignored GTs used only when no regular GT qualifies, -1 for cells without
// ground truth, and a GT id of 0 behaving as "unmatched" in accumulate (dtMatches stores ids).
//
// Work is per category (evaluate + accumulate together, no [K x I] tables): objects are indexed
// by (category, image, file order); a detection's mask is decoded only when its cell has ground
// truth, once, into foreground intervals (coco_masks_core.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
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
  double box[4] = {0, 0, 0, 0};  // segm: rleToBbox of the mask; bbox: the JSON box
  rle::Rle rle;     // segm: the mask's counts
  // segm, filled by prepare_gt_masks: foreground intervals [iv_begin, iv_end) of Dataset::gt_iv,
  // rleArea, and whether a zero-length run forces pycocotools' literal run walk
  uint32_t mask_area = 0;
  bool zero_run = false;
  int64_t iv_begin = 0, iv_end = 0;
};

struct DtObj {
  int32_t img = 0;
  int32_t cat = 0;
  double score = 0;
  double area = 0;  // mask area (knet) or box area (pycocotools-compat first-entry rule)
  double box[4] = {0, 0, 0, 0};  // bbox IoU: the given box, else the mask's box
  // segm: a compressed counts string owned by the caller (alive until evaluation ends; JSON
  // escapes still in it if `escaped`), decoded when the detection's cell is evaluated ...
  const char* str = nullptr;
  uint32_t len = 0;
  bool escaped = false;
  uint32_t h = 0, w = 0;
  int32_t rle = -1;  // ... or the index of its decoded counts in Dataset::dt_rles
  // IoUs with its cell's ground truths (file order) at Dataset::dt_ious[iou_off], computed while
  // the results file was parsed (-1: computed when the cell is evaluated)
  int64_t iou_off = -1;
};

struct Params {
  std::vector<double> iou_thrs;              // T
  std::vector<double> rec_thrs;              // R
  std::vector<double> area_lo, area_hi;      // A
  std::vector<int> max_dets;                 // M, ascending; the last one truncates per (img, cat)
  bool use_segm = true;                      // false: box IoU on `box`
};
// Thresholds are passed in from numpy (np.linspace) so that every double is numpy's.

struct Dataset {
  int32_t num_images = 0;
  int32_t num_cats = 0;
  std::vector<GtObj> gts;  // file order
  std::vector<DtObj> dts;  // file order
  std::vector<rle::Rle> dt_rles;
  std::vector<double> dt_ious;
  std::vector<uint32_t> gt_iv;  // start/end pairs
  // ground truths by (image, category, file order): image i's are gt_by_img[gt_img_start[i] ..
  // gt_img_start[i + 1]) (filled by prepare_gt_masks, for cell lookups while results load)
  std::vector<int32_t> gt_by_img;
  std::vector<int64_t> gt_img_start;
  // ids of the ground truths of cell (img, cat) in file order: [begin, end) of gt_by_img
  void gt_cell(int32_t img, int32_t cat, int64_t& begin, int64_t& end) const {
    begin = end = 0;
    if (gt_img_start.empty()) return;
    int64_t b = gt_img_start[img];
    const int64_t e = gt_img_start[img + 1];
    while (b < e && gts[gt_by_img[b]].cat < cat) ++b;
    int64_t f = b;
    while (f < e && gts[gt_by_img[f]].cat == cat) ++f;
    begin = b;
    end = f;
  }
};

// Objects ordered by (category, image, file order), with per-category offsets [K + 1], and the
// detections' image / score / area in that order (one sequential stream per category).
struct Index {
  std::vector<int32_t> gt_order, dt_order;
  std::vector<int64_t> gt_cat_start, dt_cat_start;
  std::vector<int32_t> dt_img;
  std::vector<double> dt_score, dt_area;
  std::vector<int64_t> dt_iou;  // DtObj::iou_off
};
Index build_index(const Dataset& ds);

// Intervals, area, zero-run flag of every ground-truth mask (segm, in parallel), and the
// (image, category) lookup gt_by_img (segm and bbox).
void prepare_gt_masks(Dataset& ds, bool use_segm = true);

// evaluate() + accumulate() for categories [cat_begin, cat_end). Arrays are pycocotools' layouts,
// C order, pre-filled with -1 by the caller: precision/scores [T, R, K, A, M], recall [T, K, A, M].
void evaluate_cats(const Dataset& ds, const Index& index, const Params& p, double* precision, double* recall,
                   double* scores, int32_t cat_begin, int32_t cat_end);

// ---- masks (coco_masks_core.cpp) ----------------------------------------------------------------

// One decoded mask for IoUs: size, rleToBbox box, rleArea, foreground intervals (column-major
// [start, end) pixel offsets, touching runs merged). A zero-length run after the first count can
// end pycocotools' run walk early: such masks keep their counts (`exact`) for that literal walk.
struct MaskRuns {
  uint32_t h = 0, w = 0;
  double box[4] = {0, 0, 0, 0};
  uint32_t area = 0;
  bool zero_run = false;
  std::vector<uint32_t> iv;
  rle::Rle exact;
};
// keep_counts: fill `exact` even without a zero-length run (a ground truth of the cell has one).
void runs_from_counts(const uint32_t* cnts, size_t n, uint32_t h, uint32_t w, bool keep_counts, MaskRuns& out);
// A compressed string (escaped: JSON escapes still in it; scratch receives the unescaped bytes).
void runs_from_string(const char* s, size_t len, bool escaped, uint32_t h, uint32_t w, bool keep_counts,
                      MaskRuns& out, std::string& scratch);
// rleArea of a compressed string (escaped as above).
uint32_t string_area(const char* s, size_t len, bool escaped, std::string& scratch);

// pycocotools rleIou of one pair: box prefilter, -1 on size mismatch, i/u or i/area(dt) (crowd).
double mask_iou(const MaskRuns& dt, const uint32_t* gt_iv, size_t gt_n, const GtObj& gt);

}  // namespace coco
}  // namespace knet
