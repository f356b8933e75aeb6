// knet RLE codec: COCO run-length encoding of binary masks (torch-free core).
//
// Bit-identical to pycocotools' maskApi.c: column-major runs starting with a run of zeros,
// the LEB128-like 6-bit string form (deltas against counts[i-2] for i > 2), polygon
// rasterisation at 5x upsampling, union/intersection merge and the RLE IoU with the
// bounding-box prefilter (crowd GT: intersection over the detection's own area).
// Compiled into knet._C and into the knet_core_tests executable (no torch includes here).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace knet {
namespace rle {

struct Rle {
  uint32_t h = 0;
  uint32_t w = 0;
  std::vector<uint32_t> cnts;  // run lengths, column-major, first run = zeros
};

// Encode one mask given by a base pointer and element strides (any layout: C or Fortran
// order, views). Non-zero bytes are foreground.
void encode_strided(const uint8_t* data, uint32_t h, uint32_t w, int64_t stride_y, int64_t stride_x, Rle& out);

// Decode into a [H, W] row-major buffer of h*w bytes (0/1). Returns false if the counts
// do not sum to h*w (the buffer is then left zero-filled past the valid runs).
bool decode_rowmajor(const Rle& r, uint8_t* out);

// The compressed string form ("counts" of a COCO compressed RLE).
std::string to_string(const Rle& r);
// Parse `len` characters of a compressed string (stops at a NUL like pycocotools).
void from_string(const char* s, size_t len, uint32_t h, uint32_t w, Rle& out);

// Foreground pixels of a compressed string without materialising the counts (= area(from_string)).
uint32_t string_area(const char* s, size_t len);
uint32_t area(const Rle& r);                 // foreground pixels (uint32 arithmetic, as pycocotools)
void to_bbox(const Rle& r, double bb[4]);    // [x, y, w, h] exactly as rleToBbox

// pycocotools rleMerge: union (intersect = false) or intersection of n >= 1 RLEs.
void merge(const Rle* const* rles, size_t n, bool intersect, Rle& out);
// pycocotools rleFrPoly: polygon of k (x, y) vertices.
void from_polygon(const double* xy, size_t k, uint32_t h, uint32_t w, Rle& out);
// pycocotools rleFrBbox: box [x, y, w, h].
void from_bbox(const double bb[4], uint32_t h, uint32_t w, Rle& out);

// Run-walk intersection and union counts of two RLEs of the same size (uint32 like maskApi).
void inter_union(const Rle& a, const Rle& b, uint32_t& inter, uint32_t& uni);

// pycocotools bbIou for one pair: box IoU, crowd -> intersection / detection box area.
double bbox_iou(const double d[4], const double g[4], bool crowd);

// pycocotools rleIou for one pair, given both precomputed boxes and the detection area:
// 0 when the boxes do not overlap, -1 when sizes differ, i/u (non-crowd) or i/area(dt) (crowd).
double rle_iou(const Rle& dt, const Rle& gt, const double dt_box[4], const double gt_box[4], bool crowd);

}  // namespace rle
}  // namespace knet
