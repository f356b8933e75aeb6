// PNG unfiltering (filters None/Sub/Up/Average/Paeth, PNG spec section 9) and rgb -> id.
#include "ops/png/png_core.h"

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
  for (size_t i = BPP; i < stride; i += BPP) {
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

// Sub (up == nullptr) and Average rows of BPP-byte pixels, the left neighbour kept in registers.
template <int BPP>
static void sub_avg_row(const uint8_t* src, const uint8_t* up, uint8_t* dst, size_t stride) {
  int a[BPP];
  for (int k = 0; k < BPP; ++k) a[k] = 0;
  for (size_t i = 0; i < stride; i += BPP) {
    for (int k = 0; k < BPP; ++k) {
      const int v = up ? (src[i + k] + ((a[k] + up[i + k]) >> 1)) & 0xFF : (src[i + k] + a[k]) & 0xFF;
      dst[i + k] = static_cast<uint8_t>(v);
      a[k] = v;
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

RowReader::RowReader(const uint8_t* raw, size_t raw_len, uint32_t h, uint32_t w, uint32_t channels)
    : raw_(raw), h_(h), channels_(channels), stride_(static_cast<size_t>(w) * channels),
      ok_(raw_len >= static_cast<size_t>(h) * (static_cast<size_t>(w) * channels + 1)),
      rows_(2 * static_cast<size_t>(w) * channels + 4) {}  // +4: pixel_id4 may read one byte past a row

const uint8_t* RowReader::next(bool* same) {
  *same = false;
  if (!ok_ || y_ >= h_) return nullptr;
  const uint8_t* row = raw_ + y_ * (stride_ + 1);
  if (y_ > 0 && row[0] == 2) {
    // filter Up with all-zero deltas (most rows of a segment map): the previous row again
    // all zero <=> first byte zero and every byte equal to the next (memcmp exits early)
    if (stride_ == 0 || (row[1] == 0 && std::memcmp(row + 1, row + 2, stride_ - 1) == 0)) {
      ++y_;
      *same = true;
      return cur_;
    }
  }
  uint8_t* dst = cur_ == rows_.data() ? rows_.data() + stride_ : rows_.data();
  if (!unfilter_row(row[0], row + 1, y_ ? cur_ : nullptr, dst, stride_, channels_)) {
    ok_ = false;
    return nullptr;
  }
  cur_ = dst;
  ++y_;
  return dst;
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
