// The PNG chunk walk (signature, IHDR, IDAT concatenation, IEND) on a file's bytes, torch-free.
// Chunk CRCs are not checked: the image data is covered by the zlib stream's adler32.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace knet {
namespace png {

struct PngFile {
  uint32_t w = 0, h = 0;
  uint8_t depth = 0, color = 0, interlace = 0;
  const uint8_t* zdata = nullptr;  // the zlib stream: into the file's bytes, or into `joined`
  size_t zlen = 0;
  std::vector<uint8_t> joined;  // the IDAT chunks concatenated when there are several

  // channels of an 8-bit colour type (0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA), or 0
  uint32_t channels() const;
  // 8-bit, non-interlaced RGB or RGBA: decoded here; any other flavour is left to PIL
  bool is_plain_rgb() const { return depth == 8 && interlace == 0 && (color == 2 || color == 6); }
};

// Parses `n` bytes of a PNG file (which must outlive `out`); nullptr or an error message.
const char* parse_png(const uint8_t* data, size_t n, PngFile& out);

}  // namespace png
}  // namespace knet
