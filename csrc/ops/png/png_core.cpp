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

bool unfilter(const uint8_t* raw, size_t raw_len, uint32_t h, uint32_t w, uint32_t bpp, uint8_t* out) {
  const size_t stride = static_cast<size_t>(w) * bpp;
  if (raw_len < static_cast<size_t>(h) * (stride + 1)) return false;
  for (uint32_t y = 0; y < h; ++y) {
    const uint8_t ft = raw[y * (stride + 1)];
    const uint8_t* src = raw + y * (stride + 1) + 1;
    uint8_t* dst = out + y * stride;
    const uint8_t* up = y ? dst - stride : nullptr;
    switch (ft) {
      case 0:
        std::memcpy(dst, src, stride);
        break;
      case 1:
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
        for (size_t i = 0; i < stride; ++i) {
          const int a = i >= bpp ? dst[i - bpp] : 0;
          const int b = up ? up[i] : 0;
          dst[i] = static_cast<uint8_t>(src[i] + ((a + b) >> 1));
        }
        break;
      case 4:
        for (size_t i = 0; i < stride; ++i) {
          const int a = i >= bpp ? dst[i - bpp] : 0;
          const int b = up ? up[i] : 0;
          const int c = (up && i >= bpp) ? up[i - bpp] : 0;
          dst[i] = static_cast<uint8_t>(src[i] + paeth(a, b, c));
        }
        break;
      default:
        return false;
    }
  }
  return true;
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
