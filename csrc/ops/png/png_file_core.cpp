// PNG chunk walk (see png_file_core.h).
#include "ops/png/png_file_core.h"

#include <cstring>

namespace knet {
namespace png {

namespace {

uint32_t be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

}  // namespace

uint32_t PngFile::channels() const {
  switch (color) {
    case 0:
    case 3:
      return 1;
    case 2:
      return 3;
    case 4:
      return 2;
    case 6:
      return 4;
    default:
      return 0;
  }
}

const char* parse_png(const uint8_t* data, size_t n, PngFile& out) {
  static const uint8_t kSig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (n < 8 || std::memcmp(data, kSig, 8) != 0) return "not a PNG file";
  bool have_header = false;
  size_t idat_chunks = 0, idat_bytes = 0;
  const uint8_t* first_idat = nullptr;
  // pass 1: header and IDAT sizes; pass 2 (several IDAT chunks only): concatenate
  for (int pass = 0; pass < 2; ++pass) {
    size_t pos = 8;
    while (pos + 8 <= n) {
      const uint32_t len = be32(data + pos);
      const uint8_t* type = data + pos + 4;
      const uint8_t* body = data + pos + 8;
      if (len > n - pos - 8) return "truncated PNG (a chunk runs past the end of the file)";
      if (pass == 0) {
        if (std::memcmp(type, "IHDR", 4) == 0) {
          if (len < 13) return "corrupt PNG (short IHDR chunk)";
          out.w = be32(body);
          out.h = be32(body + 4);
          out.depth = body[8];
          out.color = body[9];
          out.interlace = body[12];
          have_header = true;
        } else if (std::memcmp(type, "IDAT", 4) == 0) {
          if (!first_idat) first_idat = body;
          ++idat_chunks;
          idat_bytes += len;
        }
      } else if (std::memcmp(type, "IDAT", 4) == 0) {
        out.joined.insert(out.joined.end(), body, body + len);
      }
      if (std::memcmp(type, "IEND", 4) == 0) break;
      pos += size_t{12} + len;
    }
    if (pass == 0) {
      if (!have_header || idat_chunks == 0) return "corrupt PNG (no IHDR or IDAT chunk)";
      if (idat_chunks == 1) {
        out.zdata = first_idat;
        out.zlen = idat_bytes;
        return nullptr;
      }
      out.joined.reserve(idat_bytes);
    }
  }
  out.zdata = out.joined.data();
  out.zlen = out.joined.size();
  return nullptr;
}

}  // namespace png
}  // namespace knet
