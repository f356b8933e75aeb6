// Readers for COCO JSON files, torch-free and Python-free, so that 500k detections or 35k ground
// truths never become Python objects: a results file (top-level array of detection objects) and
// an instances file (images, categories, annotations).
//
// Records point into the caller's buffer (json_parser.h: the buffer is read-only); escaped
// counts strings keep their JSON form (flag `counts.escaped`) and are unescaped when decoded.
// Unknown keys are skipped; a syntax error names the byte offset.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "ops/coco_eval/json_parser.h"

namespace knet {
namespace coco {

// One detection or ground-truth annotation as written in the file.
struct ObjectRecord {
  bool has_image = false, has_cat = false, has_score = false, has_box = false, has_area = false, has_id = false;
  bool image_is_int = true, cat_is_int = true, id_is_int = true;
  bool crowd = false;  // truthiness of "iscrowd"
  int64_t image_id = 0, category_id = 0, id = 0;
  double score = 0, area = 0;
  double box[4] = {0, 0, 0, 0};
  int box_len = 0;   // number of entries of "bbox" (pycocotools: [] means no box)
  int seg_kind = 0;  // 0 none, 1 compressed string, 2 uncompressed counts, 3 polygons, -1 invalid RLE dict
  bool seg_size_ok = false;
  uint32_t seg_h = 0, seg_w = 0;
  json::Str counts;                           // kind 1 (a view into the buffer)
  std::vector<uint32_t> counts_list;          // kind 2
  std::vector<std::vector<double>> polygons;  // kind 3
  bool polygon_not_list = false;              // kind 3 with an element that is not a list
};

// Parses one object record at the parser's position (after whitespace).
bool parse_record(json::Parser& ps, ObjectRecord& r);

// Results file: the top level must be an array of objects.
class ResultsScanner {
 public:
  ResultsScanner(const char* buf, size_t len) : buf_(buf), len_(len) {}
  // Offset of the first record (or of the closing ']' of an empty array); false with `error`
  // ("must hold a JSON list of detections" or a syntax error).
  bool open(size_t& first, bool& empty, std::string& error) const;
  // The record starting at `at` (whitespace allowed before it). On success `next` is the offset
  // of the following record, or `last` is set when the array closed (then only whitespace may
  // follow). error_index_msg: "entry N is not an object" needs the caller's entry number, so a
  // record that does not start with '{' sets not_object instead.
  bool record(size_t at, ObjectRecord& r, size_t& next, bool& last, bool& not_object, std::string& error) const;
  // A likely record start at or after `from`: the '{' of "}" ws "," ws "{" (npos if none).
  // Only a guess (the pattern could sit inside a string or a nested list): callers verify it.
  size_t guess_record_start(size_t from) const;

  const char* data() const { return buf_; }
  size_t size() const { return len_; }

 private:
  const char* buf_;
  size_t len_;
};

// Instances file: images (id, height, width), categories (id, name), annotations.
struct GtFile {
  std::vector<int64_t> img_ids, heights, widths;  // file order (duplicates kept: the last wins)
  std::vector<int64_t> cat_ids;
  std::vector<std::string> cat_names;
  std::vector<ObjectRecord> anns;
};
// false with `error`: syntax errors ("... at byte N", json_error = true) or a structure that is
// not an instances file / a malformed image or category entry (json_error = false).
bool parse_gt_json(const char* buf, size_t len, GtFile& out, std::string& error, bool& json_error);

}  // namespace coco
}  // namespace knet
