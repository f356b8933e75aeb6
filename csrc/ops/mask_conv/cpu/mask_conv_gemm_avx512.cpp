// AVX-512 float32 GEMM of the CPU mask_conv (C[b] = A[b] B[b], see mask_conv_gemm.h), chosen at
// run time by mask_conv_cpu.cpp on CPUs that have AVX-512 F/DQ/BW/VL.
//
// Blocking (measured on the 2-core Zen 4 development VM, bench/ops.py shapes):
//  - all of A is packed once into micro-panels of kMR = 6 rows, k-major ([K][6], zero rows past
//    M); it stays in L2 (153 x 256 floats = 157 KB for the panoptic head, 300 KB at C = 512);
//  - the pixels of all images are numbered in units of kNR = 32; each thread takes a contiguous
//    run of units (balanced to one unit) and multiplies it in column blocks of up to nc pixels,
//    nc * K * 4 bytes <= 512 KB (nc = 512 at K = 256, 256 at K = 512); a block of B is packed
//    into k-major sub-panels of 32 pixels ([K][32], zero pixels past P), and every A
//    micro-panel passes over each sub-panel;
//  - the 6 x 32 micro-tile keeps 12 zmm accumulators (per k: two B loads, six broadcasts,
//    twelve FMAs; ~118 GFLOPS per core on cached data, the FMA peak) and writes straight into
//    the output rows, masked at the row and pixel tails;
//  - the micro-tiles prefetch the rows of the thread's next block into L1, one line every 8
//    steps of k, so its memory reads overlap this block's FMAs (without it the B reads cost
//    ~10% at 100x168 and ~20% at 128x128, whose 64 KB row stride defeats the hardware
//    prefetchers). A K split (accumulating C over K chunks) measured no faster.
//
// Only this file's own code is compiled for AVX-512: every header is included before the target
// pragma and the kernels live in an anonymous namespace (as in gating_cpu_avx512.cpp). Other
// compilers / architectures build the stubs at the end.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "knet/cpu_isa.h"
#include "ops/mask_conv/cpu/mask_conv_gemm.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(KNET_NO_AVX512)
#define KNET_MASK_CONV_AVX512 1
#include <immintrin.h>
#endif

namespace knet {
namespace mask_conv_cpu {

namespace {
constexpr int64_t kMR = 6;                           // rows of A (and C) per micro-tile
constexpr int64_t kNR = 32;                          // pixels per micro-tile: two 16-float vectors
constexpr int64_t kBlockBytes = int64_t{512} << 10;  // packed B block at most (unless nc = kNR)
constexpr int64_t kMaxNC = 512;                      // pixels per block at most
constexpr int64_t kPrefetchEvery = 8;                // steps of k per prefetched line

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
}  // namespace

GemmPlan gemm_plan(const Gemm& g) {
  GemmPlan plan;
  const int64_t by_cache = kBlockBytes / (4 * std::max<int64_t>(g.k, 1)) / kNR * kNR;
  plan.nc = std::min(std::clamp(by_cache, kNR, kMaxNC), ceil_div(g.p, kNR) * kNR);
  plan.units_per_image = ceil_div(g.p, kNR);
  plan.units = g.batch * plan.units_per_image;
  plan.packed_a_floats = g.batch * ceil_div(g.m, kMR) * kMR * g.k;
  plan.unit_flops = ceil_div(g.m, kMR) * kMR * g.k * kNR;
  return plan;
}

#if defined(KNET_MASK_CONV_AVX512)

static cpu::Avx512Switch g_avx512;

bool avx512_enabled() { return g_avx512.enabled(); }
bool set_avx512(bool on) { return g_avx512.set(on); }

// the packed B block of the calling thread (64-byte aligned), kept between calls: at most
// K * 512 floats (512 KB at K = 256 and 512)
static float* block_buffer(int64_t floats) {
  thread_local std::vector<float> buf;
  if (static_cast<int64_t>(buf.size()) < floats + 16) buf.resize(static_cast<size_t>(floats + 16));
  const auto addr = reinterpret_cast<uintptr_t>(buf.data());
  return reinterpret_cast<float*>((addr + 63) & ~uintptr_t{63});
}

#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx512bw,avx512vl,fma,avx2")

namespace {

inline __mmask16 tail_mask(int64_t n) {  // the first min(max(n, 0), 16) lanes
  return n >= 16 ? __mmask16(0xffff) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1);
}

// The 64-byte lines of the rows of a B block, prefetched one at a time from the micro-tiles.
struct LineStream {
  const float* base = nullptr;  // row 0, first pixel
  int64_t ldb = 0, row_lines = 0, rows = 0;
  int64_t row = 0, line = 0;  // the next line
  inline void next() {
    if (row < rows) {
      _mm_prefetch(reinterpret_cast<const char*>(base + row * ldb + line * 16), _MM_HINT_T0);
      if (++line == row_lines) {
        line = 0;
        ++row;
      }
    }
  }
};

// C[0:rows, 0:32] = sum_kk ap[kk][0:6] (outer) bp[kk][0:32]; ap: [K][6], bp: [K][32] (64-byte
// aligned); m0 / m1 mask the pixels of the two vectors (tails); only rows <= 6 rows are stored.
inline void micro_tile(int64_t k, const float* __restrict ap, const float* __restrict bp, float* __restrict c,
                       int64_t ldc, int64_t rows, __mmask16 m0, __mmask16 m1, LineStream& prefetch) {
  __m512 acc[kMR][2];
#pragma GCC unroll 6
  for (int i = 0; i < kMR; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  auto step = [&](int64_t kk) __attribute__((always_inline)) {
    const __m512 b0 = _mm512_load_ps(bp + kk * kNR);
    const __m512 b1 = _mm512_load_ps(bp + kk * kNR + 16);
#pragma GCC unroll 6
    for (int i = 0; i < kMR; ++i) {
      const __m512 a = _mm512_set1_ps(ap[kk * kMR + i]);
      acc[i][0] = _mm512_fmadd_ps(a, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(a, b1, acc[i][1]);
    }
  };
  int64_t kk = 0;
  for (; kk + kPrefetchEvery <= k; kk += kPrefetchEvery) {
    prefetch.next();
#pragma GCC unroll 8
    for (int u = 0; u < kPrefetchEvery; ++u) step(kk + u);
  }
  for (; kk < k; ++kk) step(kk);
  if (rows == kMR && m0 == 0xffff && m1 == 0xffff) {
#pragma GCC unroll 6
    for (int i = 0; i < kMR; ++i) {
      _mm512_storeu_ps(c + i * ldc, acc[i][0]);
      _mm512_storeu_ps(c + i * ldc + 16, acc[i][1]);
    }
    return;
  }
#pragma GCC unroll 6
  for (int i = 0; i < kMR; ++i) {
    if (i < rows) {
      _mm512_mask_storeu_ps(c + i * ldc, m0, acc[i][0]);
      _mm512_mask_storeu_ps(c + i * ldc + 16, m1, acc[i][1]);
    }
  }
}

// B[0:K, 0:cols] (row stride ldb) -> buf as ceil(cols / 32) sub-panels [K][32], zero past cols
void pack_block(const float* b, int64_t ldb, int64_t k, int64_t cols, float* buf) {
  const int64_t subs = ceil_div(cols, kNR);
  const int64_t panel = k * kNR;
  for (int64_t kk = 0; kk < k; ++kk) {
    const float* row = b + kk * ldb;
    float* out = buf + kk * kNR;
    if (cols == subs * kNR) {
      for (int64_t s = 0; s < subs; ++s) {
        _mm512_store_ps(out + s * panel, _mm512_loadu_ps(row + s * kNR));
        _mm512_store_ps(out + s * panel + 16, _mm512_loadu_ps(row + s * kNR + 16));
      }
    } else {
      for (int64_t s = 0; s < subs; ++s) {
        const int64_t rest = cols - s * kNR;
        _mm512_store_ps(out + s * panel, _mm512_maskz_loadu_ps(tail_mask(rest), row + s * kNR));
        _mm512_store_ps(out + s * panel + 16, _mm512_maskz_loadu_ps(tail_mask(rest - 16), row + s * kNR + 16));
      }
    }
  }
}

}  // namespace

void gemm_pack_a_avx512(const Gemm& g, const GemmPlan& plan, float* packed) {
  (void)plan;
  const int64_t panels = ceil_div(g.m, kMR);
  for (int64_t img = 0; img < g.batch; ++img) {
    const float* a = g.a + img * g.a_batch;
    for (int64_t pn = 0; pn < panels; ++pn) {
      float* out = packed + (img * panels + pn) * kMR * g.k;  // [K][6]
      for (int64_t i = 0; i < kMR; ++i) {
        const int64_t row = pn * kMR + i;
        if (row < g.m) {
          const float* src = a + row * g.a_row;
          for (int64_t kk = 0; kk < g.k; ++kk) out[kk * kMR + i] = src[kk * g.a_col];
        } else {
          for (int64_t kk = 0; kk < g.k; ++kk) out[kk * kMR + i] = 0.0f;
        }
      }
    }
  }
}

void gemm_units_avx512(const Gemm& g, const GemmPlan& plan, const float* packed, int64_t unit0, int64_t unit1) {
  const int64_t panels = ceil_div(g.m, kMR);
  float* buf = block_buffer(g.k * plan.nc);
  struct Block {
    int64_t img, col0, cols, units;  // image, first pixel, width; 32-pixel units
  };
  // the block that starts at unit u: up to nc pixels, within one image and [u, unit1)
  auto block = [&](int64_t u) {
    const int64_t img = u / plan.units_per_image, first = u % plan.units_per_image;
    const int64_t units = std::min({plan.nc / kNR, plan.units_per_image - first, unit1 - u});
    return Block{img, first * kNR, std::min(units * kNR, g.p - first * kNR), units};
  };
  for (int64_t u = unit0; u < unit1;) {
    const Block cur = block(u);
    u += cur.units;
    pack_block(g.b + cur.img * g.b_batch + cur.col0, g.ldb, g.k, cur.cols, buf);
    LineStream prefetch;  // the next block's rows, while this one is multiplied
    if (u < unit1) {
      const Block next = block(u);
      prefetch.base = g.b + next.img * g.b_batch + next.col0;
      prefetch.ldb = g.ldb;
      prefetch.row_lines = ceil_div(next.cols, 16);
      prefetch.rows = g.k;
    }
    const float* pa = packed + cur.img * panels * kMR * g.k;
    float* c = g.c + cur.img * g.c_batch + cur.col0;
    for (int64_t s = 0; s < cur.units; ++s) {
      const int64_t rest = cur.cols - s * kNR;
      const __mmask16 m0 = tail_mask(rest), m1 = tail_mask(rest - 16);
      const float* bp = buf + s * g.k * kNR;
      for (int64_t pn = 0; pn < panels; ++pn) {
        micro_tile(g.k, pa + pn * kMR * g.k, bp, c + pn * kMR * g.ldc + s * kNR, g.ldc,
                   std::min(kMR, g.m - pn * kMR), m0, m1, prefetch);
      }
    }
  }
}

#pragma GCC pop_options

#else  // no AVX-512 build: the dispatcher never calls the kernels

bool avx512_enabled() { return false; }
bool set_avx512(bool) { return false; }
void gemm_pack_a_avx512(const Gemm&, const GemmPlan&, float*) { std::abort(); }
void gemm_units_avx512(const Gemm&, const GemmPlan&, const float*, int64_t, int64_t) { std::abort(); }

#endif

}  // namespace mask_conv_cpu
}  // namespace knet
