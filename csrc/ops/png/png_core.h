// PNG scanline reconstruction (the part after inflate) for 8-bit, non-interlaced images, and
// the panoptic id conversion id = R + 256 G + 256^2 B. Torch-free.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "ops/png/inflate_core.h"

namespace knet {
namespace png {

// Undo the per-row filters of `h` rows of `w * channels` bytes (+1 filter byte per row) in
// `raw` (inflated IDAT data, h * (w*channels + 1) bytes), writing [h, w, channels] to `out`.
// Returns false on an unknown filter type or short input.
bool unfilter(const uint8_t* raw, size_t raw_len, uint32_t h, uint32_t w, uint32_t channels, uint8_t* out);

// One row: `filter` is the row's filter byte, `src` its `stride` filtered bytes, `up` the
// previous reconstructed row (nullptr for the first row), `bpp` bytes per pixel.
bool unfilter_row(uint8_t filter, const uint8_t* src, const uint8_t* up, uint8_t* dst, size_t stride, size_t bpp);

// Streams the reconstructed rows of a zlib stream of PNG image data (inflated a scanline at a
// time by an Inflater) through a two-row buffer, so that a consumer (e.g. the panoptic pair
// counter) never materialises the inflated data or the [h, w, channels] image.
class RowReader {
 public:
  RowReader(Inflater& src, uint32_t h, uint32_t w, uint32_t channels);
  // The next reconstructed row (w * channels bytes), or nullptr at the end or on corrupt data.
  // `*same` is set when the row is byte-identical to the previous one (then the same pointer
  // is returned; detected only for filter-Up rows with all-zero deltas).
  const uint8_t* next(bool* same);
  // After the last row: the rest of the zlib stream and its checksum are fine.
  bool finish() { return ok_ && src_.finish(); }
  // Why next() or finish() failed.
  const char* error() const;

 private:
  Inflater& src_;
  uint32_t h_;
  uint32_t y_ = 0;
  size_t channels_;
  size_t stride_;
  bool ok_ = true;
  bool bad_filter_ = false;
  std::vector<uint8_t> rows_;
  const uint8_t* cur_ = nullptr;  // the last row returned (one of the two halves of rows_)
};

// [n, channels>=3] pixels -> ids R + 256 G + 65536 B.
void rgb_to_id(const uint8_t* pix, size_t n, uint32_t channels, uint32_t* ids);

}  // namespace png
}  // namespace knet
