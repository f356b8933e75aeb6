// Torch-free mask IoU cores (see mask_iou.h). CPU popcount over bit-packed masks; the RLE path
// walks the runs of both masks like pycocotools' rleIou, after its box prefilter.
#include "ops/mask_iou/mask_iou.h"

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
