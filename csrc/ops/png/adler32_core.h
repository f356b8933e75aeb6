// adler32 (RFC 1950) running sums for the zlib stream check of the PNG inflater, torch-free.
#pragma once

#include <cstddef>
#include <cstdint>

namespace knet {
namespace png {

constexpr uint32_t kAdler32Mod = 65521;

// Adds n bytes to the running sums a (starts at 1) and b (starts at 0); the checksum is
// b << 16 | a. 32 bytes per step with AVX2 (byte sums through SAD, position-weighted sums
// through maddubs), scalar otherwise.
void adler32_update(uint32_t& a, uint32_t& b, const uint8_t* p, size_t n);

}  // namespace png
}  // namespace knet
