// PNG scanline reconstruction (the part after inflate) for 8-bit, non-interlaced images, and
// the panoptic id conversion id = R + 256 G + 256^2 B. Torch-free.
#pragma once

#include <cstddef>
#include <cstdint>

namespace knet {
namespace png {

// Undo the per-row filters of `h` rows of `w * channels` bytes (+1 filter byte per row) in
// `raw` (inflated IDAT data, h * (w*channels + 1) bytes), writing [h, w, channels] to `out`.
// Returns false on an unknown filter type or short input.
bool unfilter(const uint8_t* raw, size_t raw_len, uint32_t h, uint32_t w, uint32_t channels, uint8_t* out);

// [n, channels>=3] pixels -> ids R + 256 G + 65536 B.
void rgb_to_id(const uint8_t* pix, size_t n, uint32_t channels, uint32_t* ids);

}  // namespace png
}  // namespace knet
