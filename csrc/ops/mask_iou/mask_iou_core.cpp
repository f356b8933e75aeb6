// Torch-free mask IoU cores (see mask_iou.h). CPU popcount over bit-packed masks; the RLE path
// walks the runs of both masks like pycocotools' rleIou, after its box prefilter.
#include "ops/mask_iou/mask_iou.h"

#include <cmath>
#include <cstring>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace knet {
namespace mask_iou {

void rle_iou_matrix(const rle::Rle* const* dt, size_t m, const rle::Rle* const* gt, size_t n,
                    const uint8_t* iscrowd, const double* dt_boxes, const double* gt_boxes, double* out,
                    size_t row_begin, size_t row_end) {
  (void)m;
  for (size_t d = row_begin; d < row_end; ++d) {
    for (size_t g = 0; g < n; ++g) {
      const bool crowd = iscrowd != nullptr && iscrowd[g];
      out[d * n + g] = rle::rle_iou(*dt[d], *gt[g], dt_boxes + 4 * d, gt_boxes + 4 * g, crowd);
    }
  }
}

size_t counts_to_intervals(const uint32_t* cnts, size_t k, uint32_t* iv) {
  uint32_t cc = 0;
  size_t n = 0;
  for (size_t j = 0; j < k; ++j) {
    const uint32_t next = cc + cnts[j];
    if ((j & 1) && next != cc) {
      if (n > 0 && iv[2 * n - 1] == cc) {
        iv[2 * n - 1] = next;  // a zero-length background run between two foreground runs
      } else {
        iv[2 * n] = cc;
        iv[2 * n + 1] = next;
        ++n;
      }
    }
    cc = next;
  }
  return n;
}

namespace {

// Accumulates counts one at a time: rleToBbox (knet::rle::BboxBuilder, pycocotools 2.0.11),
// rleArea and the intervals.
class RunBuilder {
 public:
  RunBuilder(uint32_t h, uint32_t w, uint32_t* iv, int32_t* cs, int32_t* ce)
      : h_(h), w_(w), iv_(iv), cs_(cs), ce_(ce), simple_(cs != nullptr && ce != nullptr), box_(h, w) {}

  inline void add(uint32_t c) {
    const uint32_t prev = cc_;
    cc_ += c;
    zero_run_ |= (c == 0) & (j_ > 0);
    if (j_ & 1) {
      area_ += c;
      if (cc_ != prev) {
        if (n_ > 0 && iv_[2 * n_ - 1] == prev) {
          iv_[2 * n_ - 1] = cc_;
        } else {
          iv_[2 * n_] = prev;
          iv_[2 * n_ + 1] = cc_;
          ++n_;
        }
      }
    }
    uint32_t x0, y0, x1, y1;
    if (box_.add(c, x0, y0, x1, y1) && simple_) profile(x0, y0, x1, y1);
    ++j_;
  }

  void finish(RunMask& out) {
    out.h = h_;
    out.w = w_;
    out.area = area_;
    out.iv = iv_;
    out.n = n_;
    out.zero_run = zero_run_;
    out.col_start = cs_;
    out.col_end = ce_;
    out.simple = simple_ && static_cast<uint64_t>(cc_) <= static_cast<uint64_t>(h_) * w_;
    box_.finish(out.box);
  }

 private:
  // foreground run from (x0, y0) to (x1, y1) inclusive, column-major
  inline void profile(uint32_t x0, uint32_t y0, uint32_t x1, uint32_t y1) {
    if (x1 >= w_ || x1 < x0) {
      simple_ = false;
      return;
    }
    if (x0 == x1) {
      put(x0, y0, y1 + 1);
      return;
    }
    put(x0, y0, h_);
    for (uint32_t x = x0 + 1; x < x1; ++x) put(x, 0, h_);
    put(x1, 0, y1 + 1);
  }

  inline void put(uint32_t x, uint32_t a, uint32_t b) {
    const int32_t e = ce_[x];
    if (e == 0) {
      cs_[x] = static_cast<int32_t>(a);
      ce_[x] = static_cast<int32_t>(b);
    } else if (e == static_cast<int32_t>(a)) {
      ce_[x] = static_cast<int32_t>(b);  // continues the column's interval (zero-length gap)
    } else {
      simple_ = false;  // a second interval in this column
    }
  }

  uint32_t h_, w_;
  uint32_t* iv_;
  int32_t* cs_;
  int32_t* ce_;
  bool simple_;
  bool zero_run_ = false;
  rle::BboxBuilder box_;
  uint32_t cc_ = 0, area_ = 0;
  size_t j_ = 0, n_ = 0;
};

}  // namespace

void runs_from_counts(const uint32_t* cnts, size_t k, uint32_t h, uint32_t w, uint32_t* iv, RunMask& out) {
  RunBuilder b(h, w, iv, out.col_start, out.col_end);
  for (size_t j = 0; j < k; ++j) b.add(cnts[j]);
  b.finish(out);
}

void runs_from_string(const char* s, size_t len, uint32_t h, uint32_t w, uint32_t* iv, RunMask& out) {
  RunBuilder b(h, w, iv, out.col_start, out.col_end);
  rle::for_each_count(s, len, [&](uint32_t v) { b.add(v); });
  b.finish(out);
}

// |A & B| of two column profiles over columns [x0, x1): vectorised by the compiler.
static uint32_t profile_intersection(const RunMask& a, const RunMask& b, uint32_t x0, uint32_t x1) {
  if (x1 > a.w) x1 = a.w;
  const int32_t* __restrict as = a.col_start;
  const int32_t* __restrict ae = a.col_end;
  const int32_t* __restrict bs = b.col_start;
  const int32_t* __restrict be = b.col_end;
  int32_t acc = 0;
  for (uint32_t x = x0; x < x1; ++x) {
    const int32_t s = as[x] > bs[x] ? as[x] : bs[x];
    const int32_t e = ae[x] < be[x] ? ae[x] : be[x];
    const int32_t d = e - s;
    acc += d > 0 ? d : 0;
  }
  return static_cast<uint32_t>(acc);
}

void run_iou_rows(const RunMask* dt, const RunMask* gt, size_t n, const uint8_t* iscrowd, double* out,
                  size_t row_begin, size_t row_end) {
  for (size_t d = row_begin; d < row_end; ++d) {
    const RunMask& D = dt[d];
    for (size_t g = 0; g < n; ++g) {
      const RunMask& G = gt[g];
      const bool crowd = iscrowd != nullptr && iscrowd[g];
      // pycocotools bbIou, then rleIou on the pairs whose boxes overlap
      const double o = rle::bbox_iou(D.box, G.box, crowd);
      double r = o;
      if (o > 0) {
        if (D.h != G.h || D.w != G.w) {
          r = -1;
        } else if (D.exact != nullptr || G.exact != nullptr) {
          uint32_t i, u;
          rle::inter_union(*D.exact, *G.exact, i, u);  // the literal walk (see RunMask::zero_run)
          if (i == 0)
            u = 1;
          else if (crowd)
            u = D.area;
          r = static_cast<double>(i) / static_cast<double>(u);
        } else {
          // overlapping columns of the two boxes -> pixel range [lo, hi) in column-major order
          // (clamped to [0, w]: boxes of odd RLEs can be wider, see rleToBbox's uint wrap)
          const double wd = static_cast<double>(D.w);
          const double x0 = std::fmin(wd, D.box[0] > G.box[0] ? D.box[0] : G.box[0]);
          const double x1 = std::fmin(wd, (D.box[0] + D.box[2]) < (G.box[0] + G.box[2]) ? (D.box[0] + D.box[2]) : (G.box[0] + G.box[2]));
          const uint32_t lo = static_cast<uint32_t>(x0) * D.h, hi = static_cast<uint32_t>(x1) * D.h;
          const uint32_t i = (D.simple && G.simple)
                                 ? profile_intersection(D, G, static_cast<uint32_t>(x0), static_cast<uint32_t>(x1))
                                 : rle::intervals_intersection(D.iv, D.n, G.iv, G.n, lo, hi);
          if (i == 0) {
            r = 0.0;
          } else {
            uint32_t u;
            if (crowd) {
              u = D.area;
            } else {
              u = D.area + G.area - i;
            }
            r = static_cast<double>(i) / static_cast<double>(u);
          }
        }
      }
      out[d * n + g] = r;
    }
  }
}

void pack_bits(const uint8_t* mask, int64_t npix, uint64_t* words) {
  const int64_t full = npix / 64;
  for (int64_t k = 0; k < full; ++k) {
    const uint8_t* p = mask + k * 64;
#if defined(__AVX2__)
    const __m256i zero = _mm256_setzero_si256();
    const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32));
    const uint32_t lo = ~static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_cmpeq_epi8(a, zero)));
    const uint32_t hi = ~static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_cmpeq_epi8(b, zero)));
    words[k] = static_cast<uint64_t>(lo) | (static_cast<uint64_t>(hi) << 32);
#else
    uint64_t w = 0;
    for (int b = 0; b < 64; ++b) w |= static_cast<uint64_t>(p[b] != 0) << b;
    words[k] = w;
#endif
  }
  if (npix % 64) {
    uint64_t w = 0;
    const uint8_t* p = mask + full * 64;
    for (int64_t b = 0; b < npix % 64; ++b) w |= static_cast<uint64_t>(p[b] != 0) << b;
    words[full] = w;
  }
}

int64_t packed_area(const uint64_t* words, int64_t nwords) {
  int64_t a = 0;
  for (int64_t k = 0; k < nwords; ++k) a += __builtin_popcountll(words[k]);
  return a;
}

void packed_iou_rows(const uint64_t* dt, const uint64_t* gt, int64_t n, int64_t nwords, const int64_t* dt_area,
                     const int64_t* gt_area, const uint8_t* iscrowd, double* out, int64_t row_begin,
                     int64_t row_end) {
  for (int64_t d = row_begin; d < row_end; ++d) {
    const uint64_t* a = dt + d * nwords;
    for (int64_t g = 0; g < n; ++g) {
      const uint64_t* b = gt + g * nwords;
      int64_t inter = 0;
      for (int64_t k = 0; k < nwords; ++k) inter += __builtin_popcountll(a[k] & b[k]);
      out[d * n + g] = iou_from_counts(inter, dt_area[d], gt_area[g], iscrowd != nullptr && iscrowd[g]);
    }
  }
}

}  // namespace mask_iou
}  // namespace knet
