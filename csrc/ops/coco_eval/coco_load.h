// Loading COCO files into the evaluator's objects (torch-free, Python-free): ground-truth
// annotations and detections from the parsed records of results_json.h, with pycocotools'
// loading rules (annToRLE: polygons rasterised and merged, uncompressed and compressed RLEs
// keep their own size; loadRes: areas, boxes for results without segmentation).
//
// A results file is parsed on several threads: the buffer is cut at guessed record starts and
// every part is parsed speculatively; a part counts only if the parse of the part before it lands
// exactly on its start (so a guess inside a string or a nested list is harmless). Errors are the
// first one in file order, with the entry numbers of the whole file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "ops/coco_eval/coco_eval_core.h"
#include "ops/coco_eval/results_json.h"

namespace knet {
namespace coco {

// The ground truth's images and categories (sorted unique ids) and their lookups.
struct Catalog {
  std::vector<int64_t> img_ids, heights, widths, cat_ids;
  std::vector<std::string> cat_names;
  std::unordered_map<int64_t, int32_t> img_index, cat_index;
  void index();  // fills the lookups from img_ids / cat_ids
};

// Sorted unique images/categories of an instances file (a repeated id: the last entry wins, as
// the dicts of pycocotools and knet.evaluation.coco.CocoGroundTruth).
Catalog catalog_from(const GtFile& f);

// Polygons (x, y, x, y, ...) rasterised and merged (union), as frPyObjects + merge.
void polygons_to_rle(const std::vector<std::vector<double>>& polys, uint32_t h, uint32_t w, rle::Rle& out);

// Annotations -> GtObj (unknown images/categories skipped, as getAnnIds), masks decoded on
// `threads` threads and prepared for IoUs (segm). false with `error` naming the annotation.
bool gts_from_records(const Catalog& c, std::vector<ObjectRecord>& anns, bool use_segm, Dataset& ds,
                      std::string& error);

// A results buffer -> detections appended to ds.dts / ds.dt_rles. area_mode: 0 mask area, 1 given
// box area (bbox required), 2 given box or mask box area, 3 = pycocotools' first-entry rule (1 if
// the first result has a non-empty bbox, else 0). Counts strings stay views into `sc`'s buffer.
// false with `error`; json_error tells a syntax error ("... at byte N") from a content error.
bool load_results(const ResultsScanner& sc, const Catalog& c, bool use_segm, int area_mode, Dataset& ds,
                  std::string& error, bool& json_error);

}  // namespace coco
}  // namespace knet
