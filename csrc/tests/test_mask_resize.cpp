// Tests of the thresholded mask resize core (ops/mask_resize): the run-based map against every
// pixel interpolated in double, and the composite weights.
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "ops/mask_resize/mask_resize_core.h"
#include "tests/harness.h"

namespace mr = knet::mask_resize;

namespace {

// blobs with ragged borders (long sure runs) or pure noise (the exact path everywhere)
std::vector<float> make_map(int64_t h, int64_t w, bool noise, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n01(0.0f, 1.0f);
  std::uniform_real_distribution<float> u01(0.0f, 1.0f);
  const float cy = u01(rng) * h, cx = u01(rng) * w, r = 1.0f + u01(rng) * 0.3f * static_cast<float>(std::min(h, w));
  std::vector<float> p(static_cast<size_t>(h * w));
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) {
      const float d = std::sqrt((y - cy) * (y - cy) + (x - cx) * (x - cx));
      const float logit = noise ? 3.0f * n01(rng) : 6.0f * (1.0f - d / r) + 0.5f * n01(rng);
      p[y * w + x] = 1.0f / (1.0f + std::exp(-logit));
    }
  return p;
}

struct Case {
  int64_t h4, w4, hb, wb, hi, wi, ho, wo;
};

}  // namespace

KNET_TEST(mask_resize_linear_source_matches_aten_rule) {
  // 4 -> 8: source = 0.5 * (o + 0.5) - 0.5, clamped at 0
  const mr::Linear1d a = mr::linear_source(4, 8, 0);
  KNET_CHECK_EQ(a.i0, 0);
  KNET_CHECK_EQ(a.i1, 1);
  KNET_CHECK_EQ(a.l1, 0.0f);
  const mr::Linear1d b = mr::linear_source(4, 8, 3);  // 1.25
  KNET_CHECK_EQ(b.i0, 1);
  KNET_CHECK_NEAR(b.l1, 0.25, 1e-7);
  const mr::Linear1d c = mr::linear_source(4, 8, 7);  // 3.25 -> last index, no right neighbour
  KNET_CHECK_EQ(c.i0, 3);
  KNET_CHECK_EQ(c.i1, 3);
  const mr::Linear1d d = mr::linear_source(5, 5, 2);  // equal sizes copy
  KNET_CHECK_EQ(d.i0, 2);
  KNET_CHECK_EQ(d.l0, 1.0f);
}

KNET_TEST(mask_resize_composite_weights_sum_to_one) {
  for (const Case& c : {Case{200, 304, 800, 1216, 800, 1200, 640, 960}, Case{16, 24, 64, 96, 61, 90, 97, 141},
                        Case{16, 24, 64, 96, 64, 83, 33, 47}, Case{5, 6, 8, 12, 5, 7, 300, 400}}) {
    for (const mr::Axis& a : {mr::composite_axis(c.h4, c.hb, c.hi, c.ho), mr::composite_axis(c.w4, c.wb, c.wi, c.wo)}) {
      KNET_CHECK(a.monotone);
      for (int64_t o = 0; o < a.n_out; ++o) {
        double sum = 0.0;
        for (int64_t k = a.offset[o]; k < a.offset[o + 1]; ++k) {
          KNET_CHECK(a.w[k] >= 0.0);
          sum += a.w[k];
        }
        KNET_CHECK_NEAR(sum, 1.0, 1e-6);
        KNET_CHECK(a.lo[o] >= 0 && a.hi[o] < a.n_src && a.lo[o] <= a.hi[o]);
      }
    }
  }
  // stride 4 -> 4x larger batch -> ori: windows of at most 3 source rows
  const mr::Axis a = mr::composite_axis(200, 800, 800, 640);
  for (int64_t o = 0; o < a.n_out; ++o) KNET_CHECK(a.hi[o] - a.lo[o] <= 2);
}

KNET_TEST(mask_resize_runs_equal_exact_interpolation) {
  mr::Scratch scratch;  // reused across maps of different sizes
  uint32_t seed = 1;
  for (const Case& c : {Case{50, 76, 200, 304, 200, 300, 160, 240}, Case{16, 24, 64, 96, 61, 90, 97, 141},
                        Case{16, 24, 64, 96, 64, 83, 33, 47}, Case{8, 12, 32, 48, 32, 48, 32, 48},
                        Case{5, 6, 8, 12, 5, 7, 30, 40}, Case{1, 1, 1, 1, 1, 1, 3, 2}}) {
    const mr::Axis ay = mr::composite_axis(c.h4, c.hb, c.hi, c.ho);
    const mr::Axis ax = mr::composite_axis(c.w4, c.wb, c.wi, c.wo);
    for (const bool noise : {false, true}) {
      for (const double thr : {0.3, 0.5}) {
        const std::vector<float> p = make_map(c.h4, c.w4, noise, seed++);
        std::vector<uint8_t> fast(static_cast<size_t>(c.ho * c.wo)), exact(fast.size());
        mr::resize_threshold(p.data(), ay, ax, thr, fast.data(), scratch);
        mr::resize_threshold_exact(p.data(), ay, ax, thr, exact.data());
        int64_t diff = 0, ones = 0;
        for (size_t i = 0; i < fast.size(); ++i) {
          diff += fast[i] != exact[i];
          ones += fast[i];
        }
        KNET_CHECK_EQ(diff, 0);
        if (!noise && c.ho > 3) KNET_CHECK(ones > 0 && ones < static_cast<int64_t>(fast.size()));
      }
    }
  }
}
