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

// The same from the inflated IDAT data of the two 8-bit RGB/RGBA PNGs (h rows of
// w * channels + 1 bytes): rows are unfiltered and paired on the fly, never stored whole.
// Returns false on corrupt or short image data.
bool image_stats_png(const uint8_t* gt_raw, size_t gt_len, uint32_t gt_channels, const uint8_t* pred_raw,
                     size_t pred_len, uint32_t pred_channels, uint32_t h, uint32_t w,
                     const std::vector<GtSegment>& gts, const std::vector<PredSegment>& preds, ImageStats& out);

}  // namespace pq
}  // namespace knet
