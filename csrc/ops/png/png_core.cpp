// PNG unfiltering (filters None/Sub/Up/Average/Paeth, PNG spec section 9) and rgb -> id.
#include "ops/png/png_core.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace knet {
namespace png {

static inline uint8_t paeth(int a, int b, int c) {
  const int p = a + b - c;
  const int pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
  if (pa <= pb && pa <= pc) return static_cast<uint8_t>(a);
  if (pb <= pc) return static_cast<uint8_t>(b);
  return static_cast<uint8_t>(c);
}

// Flat runs: a segment map row is mostly long runs of one pixel, and the filter deltas there
// are zero. Chunks of 8 pixels (8 * BPP bytes, read and written as 64-bit words, never past
// the chunk) whose deltas are all zero -- and, for Paeth, whose upper row is flat too, so that
// the predictor is the left pixel -- are filled with the left pixel in a few stores.
template <int BPP>
struct FlatChunks {
  static constexpr size_t kBytes = 8 * BPP, kWords = BPP;
  uint32_t px = 0xFFFFFFFFu;  // the pixel the pattern repeats (none yet)
  uint64_t pattern[kWords];

  static uint64_t word(const uint8_t* p) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
  }
  static bool zero(const uint8_t* p) {
    uint64_t acc = 0;
    for (size_t j = 0; j < kWords; ++j) acc |= word(p + 8 * j);
    return acc == 0;
  }
  // p[k] == p[k - BPP] for the whole chunk
  static bool flat(const uint8_t* p) {
    uint64_t acc = 0;
    for (size_t j = 0; j < kWords; ++j) acc |= word(p + 8 * j) ^ word(p + 8 * j - BPP);
    return acc == 0;
  }
  void fill(uint8_t* dst, const int* a) {
    uint32_t v = 0;
    for (int k = 0; k < BPP; ++k) v |= static_cast<uint32_t>(a[k]) << (8 * k);
    if (v != px) {
      px = v;
      uint8_t bytes[kBytes];
      for (size_t q = 0; q < kBytes; ++q) bytes[q] = static_cast<uint8_t>(a[q % BPP]);
      std::memcpy(pattern, bytes, kBytes);
    }
    std::memcpy(dst, pattern, kBytes);
  }
};

// Paeth rows of BPP-byte pixels: the left (a) and upper-left (c) neighbours of each channel
// stay in registers instead of being reloaded from the row just written (the filter is a
// serial chain per channel; this keeps the BPP chains independent and short).
template <int BPP>
static void paeth_row(const uint8_t* src, const uint8_t* up, uint8_t* dst, size_t stride) {
  int a[BPP], c[BPP];
  for (int k = 0; k < BPP; ++k) {
    a[k] = dst[k] = static_cast<uint8_t>(src[k] + up[k]);
    c[k] = up[k];
  }
  FlatChunks<BPP> flat;
  constexpr size_t kChunk = FlatChunks<BPP>::kBytes;
  size_t i = BPP;
  while (i < stride) {
    if (i + kChunk <= stride && FlatChunks<BPP>::zero(src + i) && FlatChunks<BPP>::flat(up + i)) {
      flat.fill(dst + i, a);  // b == c everywhere: the predictor is a
      i += kChunk;
      for (int k = 0; k < BPP; ++k) c[k] = up[i - BPP + k];
      continue;
    }
    const size_t end = std::min(stride, i + kChunk);
    for (; i < end; i += BPP) {
      for (int k = 0; k < BPP; ++k) {
        const int b = up[i + k];
        const int pa = std::abs(b - c[k]), pb = std::abs(a[k] - c[k]), pc = std::abs(a[k] + b - 2 * c[k]);
        const int pred = (pa <= pb && pa <= pc) ? a[k] : (pb <= pc ? b : c[k]);
        const int v = (src[i + k] + pred) & 0xFF;
        dst[i + k] = static_cast<uint8_t>(v);
        a[k] = v;
        c[k] = b;
      }
    }
  }
}

// Sub (up == nullptr) and Average rows of BPP-byte pixels, the left neighbour kept in registers.
template <int BPP>
static void sub_avg_row(const uint8_t* src, const uint8_t* up, uint8_t* dst, size_t stride) {
  int a[BPP];
  for (int k = 0; k < BPP; ++k) a[k] = 0;
  FlatChunks<BPP> flat;
  constexpr size_t kChunk = FlatChunks<BPP>::kBytes;
  size_t i = 0;
  while (i < stride) {
    if (!up && i > 0 && i + kChunk <= stride && FlatChunks<BPP>::zero(src + i)) {
      flat.fill(dst + i, a);  // Sub with zero deltas: the left pixel again
      i += kChunk;
      continue;
    }
    const size_t end = std::min(stride, i + kChunk);
    for (; i < end; i += BPP) {
      for (int k = 0; k < BPP; ++k) {
        const int v = up ? (src[i + k] + ((a[k] + up[i + k]) >> 1)) & 0xFF : (src[i + k] + a[k]) & 0xFF;
        dst[i + k] = static_cast<uint8_t>(v);
        a[k] = v;
      }
    }
  }
}

static bool fast_bpp(size_t stride, size_t bpp) { return stride > 0 && (bpp == 3 || bpp == 4) && stride % bpp == 0; }

static void sub_avg(const uint8_t* src, const uint8_t* up, uint8_t* dst, size_t stride, size_t bpp) {
  if (bpp == 3)
    sub_avg_row<3>(src, up, dst, stride);
  else
    sub_avg_row<4>(src, up, dst, stride);
}

bool unfilter_row(uint8_t filter, const uint8_t* src, const uint8_t* up, uint8_t* dst, size_t stride, size_t bpp) {
  switch (filter) {
    case 0:
      std::memcpy(dst, src, stride);
      break;
    case 1:
      if (fast_bpp(stride, bpp)) {
        sub_avg(src, nullptr, dst, stride, bpp);
        break;
      }
      for (size_t i = 0; i < bpp && i < stride; ++i) dst[i] = src[i];
      for (size_t i = bpp; i < stride; ++i) dst[i] = static_cast<uint8_t>(src[i] + dst[i - bpp]);
      break;
    case 2:
      if (up)
        for (size_t i = 0; i < stride; ++i) dst[i] = static_cast<uint8_t>(src[i] + up[i]);
      else
        std::memcpy(dst, src, stride);
      break;
    case 3:
      if (up && fast_bpp(stride, bpp)) {  // (the first row, without up, averages with 0: generic loop)
        sub_avg(src, up, dst, stride, bpp);
        break;
      }
      for (size_t i = 0; i < stride; ++i) {
        const int a = i >= bpp ? dst[i - bpp] : 0;
        const int b = up ? up[i] : 0;
        dst[i] = static_cast<uint8_t>(src[i] + ((a + b) >> 1));
      }
      break;
    case 4:
      if (!up) {  // Paeth with an all-zero previous row is Sub
        for (size_t i = 0; i < bpp && i < stride; ++i) dst[i] = src[i];
        for (size_t i = bpp; i < stride; ++i) dst[i] = static_cast<uint8_t>(src[i] + dst[i - bpp]);
        break;
      }
      if (fast_bpp(stride, bpp)) {
        if (bpp == 3)
          paeth_row<3>(src, up, dst, stride);
        else
          paeth_row<4>(src, up, dst, stride);
        break;
      }
      for (size_t i = 0; i < bpp && i < stride; ++i) dst[i] = static_cast<uint8_t>(src[i] + up[i]);
      for (size_t i = bpp; i < stride; ++i)
        dst[i] = static_cast<uint8_t>(src[i] + paeth(dst[i - bpp], up[i], up[i - bpp]));
      break;
    default:
      return false;
  }
  return true;
}

bool unfilter(const uint8_t* raw, size_t raw_len, uint32_t h, uint32_t w, uint32_t bpp, uint8_t* out) {
  const size_t stride = static_cast<size_t>(w) * bpp;
  if (raw_len < static_cast<size_t>(h) * (stride + 1)) return false;
  for (uint32_t y = 0; y < h; ++y) {
    const uint8_t* row = raw + y * (stride + 1);
    uint8_t* dst = out + y * stride;
    if (!unfilter_row(row[0], row + 1, y ? dst - stride : nullptr, dst, stride, bpp)) return false;
  }
  return true;
}

RowReader::RowReader(Inflater& src, uint32_t h, uint32_t w, uint32_t channels)
    : src_(src), h_(h), channels_(channels), stride_(static_cast<size_t>(w) * channels),
      rows_(2 * static_cast<size_t>(w) * channels + 4) {}  // +4: pixel_id4 may read one byte past a row

const uint8_t* RowReader::next(bool* same) {
  *same = false;
  if (!ok_ || y_ >= h_) return nullptr;
  bool zero_tail;
  const uint8_t* row = src_.read(stride_ + 1, &zero_tail);
  if (!row) {
    ok_ = false;
    return nullptr;
  }
  if (y_ > 0 && row[0] == 2 && zero_tail) {
    // filter Up with all-zero deltas (most rows of a segment map): the previous row again
    ++y_;
    *same = true;
    return cur_;
  }
  uint8_t* dst = cur_ == rows_.data() ? rows_.data() + stride_ : rows_.data();
  if (!unfilter_row(row[0], row + 1, y_ ? cur_ : nullptr, dst, stride_, channels_)) {
    ok_ = false;
    bad_filter_ = true;
    return nullptr;
  }
  cur_ = dst;
  ++y_;
  return dst;
}

const char* RowReader::error() const {
  if (bad_filter_) return "corrupt image data (unknown PNG filter type)";
  return src_.error() ? src_.error() : "corrupt image data";
}

void rgb_to_id(const uint8_t* pix, size_t n, uint32_t channels, uint32_t* ids) {
  if (channels == 3) {
    for (size_t i = 0; i < n; ++i)
      ids[i] = static_cast<uint32_t>(pix[3 * i]) | (static_cast<uint32_t>(pix[3 * i + 1]) << 8) |
               (static_cast<uint32_t>(pix[3 * i + 2]) << 16);
  } else {
    for (size_t i = 0; i < n; ++i) {
      const uint8_t* p = pix + channels * i;
      ids[i] = static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) | (static_cast<uint32_t>(p[2]) << 16);
    }
  }
}

}  // namespace png
}  // namespace knet
