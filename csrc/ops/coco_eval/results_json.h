// A small, strict JSON reader for COCO results files (a top-level array of detection objects),
// torch-free and Python-free, so that 500k detections never become Python objects.
//
// Numbers are parsed with std::from_chars (correctly rounded, like Python's float()); strings are
// unescaped in place inside the caller's buffer, and the records point into that buffer.
// Unknown keys are skipped; any syntax error gives the byte offset.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace knet {
namespace coco {

struct ResultRecord {
  bool has_image = false, has_cat = false, has_score = false, has_box = false;
  bool image_is_int = true, cat_is_int = true;
  int64_t image_id = 0;
  int64_t category_id = 0;
  double score = 0;
  double box[4] = {0, 0, 0, 0};
  int box_len = 0;            // number of entries of "bbox" (pycocotools: [] means no box)
  int seg_kind = 0;           // 0 none, 1 compressed string, 2 uncompressed counts, 3 polygons
  bool seg_size_ok = false;
  uint32_t seg_h = 0, seg_w = 0;
  const char* counts = nullptr;  // kind 1: points into the (unescaped) buffer
  size_t counts_len = 0;
  std::vector<uint32_t> counts_list;          // kind 2
  std::vector<std::vector<double>> polygons;  // kind 3
};

// Parses `buf` (modified in place: string unescaping). Returns false and sets `error` on
// malformed JSON or on a top level that is not an array of objects.
bool parse_results_json(char* buf, size_t len, std::vector<ResultRecord>& out, std::string& error);

}  // namespace coco
}  // namespace knet
