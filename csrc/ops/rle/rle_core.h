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
void to_bbox(const Rle& r, double bb[4]);    // [x, y, w, h] exactly as rleToBbox (2.0.11, BboxBuilder)

// The count decoder of rleFrString, shared by every string consumer: 5 bits per character
// (+48), bit 0x20 = more characters follow, sign bit 0x10 on the last one; counts[m] +=
// counts[m-2] for m > 2 (uint32 like maskApi). Calls f(count) for each count and returns how
// many there were. Stops at len or at a NUL (pycocotools reads up to the NUL).
template <typename F>
inline size_t for_each_count(const char* s, size_t len, F&& f) {
  uint32_t prev1 = 0, prev2 = 0;
  size_t m = 0, p = 0;
  while (p < len && s[p]) {
    long x = 0;
    int k = 0;
    bool more = true;
    while (more) {
      const char c = static_cast<char>(s[p] - 48);  // p < len here (checked below)
      x |= static_cast<long>(c & 0x1f) << (5 * k);
      more = (c & 0x20) != 0;
      ++p;
      ++k;
      if (!more && (c & 0x10)) x |= static_cast<long>(-1L) << (5 * k);
      if (p >= len && more) more = false;  // truncated string: stop at len
    }
    if (m > 2) x += static_cast<long>(prev2);
    const uint32_t v = static_cast<uint32_t>(x);
    f(v);
    prev2 = prev1;
    prev1 = v;
    ++m;
  }
  return m;
}

// rleToBbox of pycocotools 2.0.11, fed one count at a time: every non-empty foreground run
// [start, end) widens the box, a run crossing columns spans all rows, zero-length runs are
// skipped (older pycocotools also widened the box at their boundaries). fg_run() reports the
// run's end points (column, row) to callers that need them (mask_iou's column profiles).
class BboxBuilder {
 public:
  BboxBuilder(uint32_t h, uint32_t w) : h_(h), xs_(w), ys_(h) {}

  // Adds the next count; returns true for a non-empty foreground run, located in x0/y0..x1/y1.
  inline bool add(uint32_t c, uint32_t& x0, uint32_t& y0, uint32_t& x1, uint32_t& y1) {
    const uint32_t start = cc_;
    cc_ += c;
    const bool fg = (j_++ & 1) && c != 0;
    if (!fg) return false;
    locate(start, x0, y0);
    locate(cc_ - 1, x1, y1);
    xs_ = xs_ < x0 ? xs_ : x0;
    xe_ = xe_ > x1 ? xe_ : x1;
    if (x0 < x1) {
      ys_ = 0;
      ye_ = h_ - 1;
    } else {
      ys_ = ys_ < y0 ? ys_ : y0;
      ye_ = ye_ > y1 ? ye_ : y1;
    }
    return true;
  }
  inline void add(uint32_t c) {
    uint32_t x0, y0, x1, y1;
    add(c, x0, y0, x1, y1);
  }
  // [x, y, w, h]; all zero with fewer than 2 counts; uint32 wrap-around when no run is
  // non-empty (xs = w, xe = 0), as maskApi.
  void finish(double bb[4]) const {
    if (j_ < 2) {
      bb[0] = bb[1] = bb[2] = bb[3] = 0;
      return;
    }
    bb[0] = xs_;
    bb[2] = static_cast<uint32_t>(xe_ - xs_ + 1);
    bb[1] = ys_;
    bb[3] = static_cast<uint32_t>(ye_ - ys_ + 1);
  }
  uint32_t total() const { return cc_; }  // sum of the counts (uint32)
  size_t counts() const { return j_; }

 private:
  // x = t / h, y = t % h, tracking the current column to skip most divisions
  inline void locate(uint32_t t, uint32_t& x, uint32_t& y) {
    if (h_ == 0) {  // a 0-row mask with foreground counts: malformed, keep it harmless
      x = y = 0;
      return;
    }
    const uint64_t d = static_cast<uint64_t>(t) - col_start_;
    if (t >= col_start_ && d < h_) {
      x = col_;
      y = static_cast<uint32_t>(d);
    } else if (t >= col_start_ && d < 2ull * h_) {
      x = ++col_;
      col_start_ += h_;
      y = static_cast<uint32_t>(d - h_);
    } else {
      y = t % h_;
      x = (t - y) / h_;
      col_ = x;
      col_start_ = static_cast<uint64_t>(x) * h_;
    }
  }

  uint32_t h_;
  uint32_t xs_, ys_, xe_ = 0, ye_ = 0;
  uint32_t cc_ = 0;
  uint32_t col_ = 0;
  uint64_t col_start_ = 0;
  size_t j_ = 0;
};

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

// Index of the first of n sorted [start, end) intervals (start/end pairs in iv) whose end > lo.
inline size_t first_interval_ending_after(const uint32_t* iv, size_t n, uint64_t lo) {
  size_t a = 0, b = n;
  while (a < b) {
    const size_t mid = (a + b) / 2;
    if (iv[2 * mid + 1] > lo)
      b = mid;
    else
      a = mid + 1;
  }
  return a;
}

// |A & B| of two sorted interval lists (a: na intervals, b: nb; start/end pairs, column-major
// pixel indices). Equal to the intersection of pycocotools' run walk for RLEs of one size; only
// intervals overlapping [lo, hi) can count (the boxes' common columns), so the walk starts at
// the first intervals ending after lo and stops at hi. Used by mask_iou and the COCO evaluator.
inline uint32_t intervals_intersection(const uint32_t* a, size_t na, const uint32_t* b, size_t nb, uint64_t lo,
                                       uint64_t hi) {
  size_t i = first_interval_ending_after(a, na, lo), j = first_interval_ending_after(b, nb, lo);
  uint32_t inter = 0;
  while (i < na && j < nb) {
    const uint32_t as = a[2 * i], ae = a[2 * i + 1], bs = b[2 * j], be = b[2 * j + 1];
    if (as >= hi || bs >= hi) break;
    const uint32_t s = as > bs ? as : bs;
    const uint32_t e = ae < be ? ae : be;
    inter += e > s ? e - s : 0;
    const bool adv_a = ae <= be;
    i += adv_a;
    j += !adv_a;
  }
  return inter;
}

}  // namespace rle
}  // namespace knet
