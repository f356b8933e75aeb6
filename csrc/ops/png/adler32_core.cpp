// adler32 (RFC 1950) sums, scalar and AVX2 (see adler32_core.h).
#include "ops/png/adler32_core.h"

#include <algorithm>
#ifdef __AVX2__
#include <immintrin.h>
#endif

namespace knet {
namespace png {

namespace {

// adler32 sums (a, b) over n bytes; b stays below 2^32 for n <= 5552 (zlib's NMAX)
void adler_scalar(uint32_t& a, uint32_t& b, const uint8_t* p, size_t n) {
  while (n > 0) {
    size_t k = std::min<size_t>(n, 5552);
    n -= k;
    for (; k >= 4; k -= 4, p += 4) {
      a += p[0];
      b += a;
      a += p[1];
      b += a;
      a += p[2];
      b += a;
      a += p[3];
      b += a;
    }
    for (; k > 0; --k) {
      a += *p++;
      b += a;
    }
    a %= kAdler32Mod;
    b %= kAdler32Mod;
  }
}

#ifdef __AVX2__
inline uint64_t hsum32(__m256i v) {
  const __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  const __m128i t = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  return static_cast<uint32_t>(_mm_cvtsi128_si32(_mm_add_epi32(t, _mm_shuffle_epi32(t, 0xB1))));
}

// 32 bytes per step: the byte sums through SAD, the position-weighted sums (weights 32..1)
// through maddubs; b also gains 32 x (the byte sums of all earlier blocks of the chunk)
void adler_avx2(uint32_t& a, uint32_t& b, const uint8_t* p, size_t n) {
  const __m256i zero = _mm256_setzero_si256(), ones = _mm256_set1_epi16(1);
  const __m256i weights = _mm256_setr_epi8(32, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14,
                                           13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1);
  while (n >= 32) {
    const size_t blocks = std::min<size_t>(n / 32, 173);  // 173 x 32 <= 5552: no lane overflows
    n -= blocks * 32;
    __m256i s1 = zero, s2 = zero, earlier = zero;
    for (size_t k = 0; k < blocks; ++k, p += 32) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
      earlier = _mm256_add_epi32(earlier, s1);
      s1 = _mm256_add_epi32(s1, _mm256_sad_epu8(v, zero));
      s2 = _mm256_add_epi32(s2, _mm256_madd_epi16(_mm256_maddubs_epi16(v, weights), ones));
    }
    const uint64_t bb = b + uint64_t{a} * (blocks * 32) + 32 * hsum32(earlier) + hsum32(s2);
    a = static_cast<uint32_t>((a + hsum32(s1)) % kAdler32Mod);
    b = static_cast<uint32_t>(bb % kAdler32Mod);
  }
  adler_scalar(a, b, p, n);
}
#endif

}  // namespace

void adler32_update(uint32_t& a, uint32_t& b, const uint8_t* p, size_t n) {
#ifdef __AVX2__
  adler_avx2(a, b, p, n);
#else
  adler_scalar(a, b, p, n);
#endif
}

}  // namespace png
}  // namespace knet
