// Panoptic quality per image, exactly as panopticapi's pq_compute_single_core (torch-free).
//
// Pairs (gt_id, pred_id) are counted from the two id maps and visited in ascending
// gt_id * 2^24 + pred_id order (np.unique's order), so that the matched IoUs come out in the
// order panopticapi adds them. Predicted areas are counted from the PNG; ground-truth areas
// are the JSON "area" values. TP: non-crowd GT, same category, IoU > 0.5 with
// IoU = |g & p| / (|p| + |g| - |g & p| - |p & VOID|). FN: unmatched non-crowd GT. FP: an
// unmatched prediction unless (|p & VOID| + |p & crowd of its category|) / |p| > 0.5, where
// the crowd segment of a category is the LAST one listed in the GT JSON.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace knet {
namespace pq {

struct GtSegment {
  uint32_t id;
  int64_t cat;
  double area;
  bool crowd;
};

struct PredSegment {
  uint32_t id;
  int64_t cat;
};

struct ImageStats {
  int error = 0;         // 1: id in the PNG but not in the JSON; 2: id in the JSON but not in the PNG
  uint32_t bad_id = 0;
  std::vector<int64_t> match_cat;   // in panopticapi's order
  std::vector<double> match_iou;
  std::vector<int64_t> fn_cat, fp_cat;
};

void image_stats(const uint32_t* gt, const uint32_t* pred, size_t npix, const std::vector<GtSegment>& gts,
                 const std::vector<PredSegment>& preds, ImageStats& out);

// The outcome of image_stats_files.
struct FileStatus {
  enum Code { kOk = 0, kCorruptGt, kCorruptPred, kSizeMismatch, kOtherFlavour };
  Code code = kOk;
  const char* message = nullptr;  // kCorrupt*: what is wrong
  uint32_t gt_w = 0, gt_h = 0, pred_w = 0, pred_h = 0;
};

// The same from the bytes of the two PNG files (8-bit, non-interlaced RGB/RGBA; any other
// flavour gives kOtherFlavour): chunk walk, inflate, unfilter and pair counting in one
// streaming pass, a scanline at a time, never storing the inflated data or the id maps.
FileStatus image_stats_files(const uint8_t* gt_png, size_t gt_len, const uint8_t* pred_png, size_t pred_len,
                             const std::vector<GtSegment>& gts, const std::vector<PredSegment>& preds, ImageStats& out);

}  // namespace pq
}  // namespace knet
