// Thresholded mask resize, torch-free core (see mask_resize_core.h).
#include "ops/mask_resize/mask_resize_core.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace knet {
namespace mask_resize {

namespace {

constexpr uint8_t kAbove = 1;  // cell > threshold + margin
constexpr uint8_t kBelow = 2;  // cell < threshold - margin; AND of both sides = 0 (mixed)

}  // namespace

Linear1d linear_source(int64_t in, int64_t out, int64_t o) {
  Linear1d r;
  if (in == out) {  // ATen copies when the sizes agree
    r.i0 = r.i1 = o;
    return r;
  }
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  float src = scale * (static_cast<float>(o) + 0.5f) - 0.5f;
  if (src < 0.0f) src = 0.0f;
  r.i0 = std::min(static_cast<int64_t>(std::floor(src)), in - 1);
  r.l1 = std::min(std::max(src - static_cast<float>(r.i0), 0.0f), 1.0f);
  r.i1 = r.i0 + (r.i0 < in - 1 ? 1 : 0);
  r.l0 = 1.0f - r.l1;
  return r;
}

Axis composite_axis(int64_t n_src, int64_t n_batch, int64_t n_img, int64_t n_ori) {
  Axis a;
  a.n_src = n_src;
  a.n_out = n_ori;
  a.lo.resize(n_ori);
  a.hi.resize(n_ori);
  a.offset.assign(n_ori + 1, 0);
  std::vector<double> dense;
  for (int64_t o = 0; o < n_ori; ++o) {
    const Linear1d crop = linear_source(n_img, n_ori, o);  // ori <- img (= batch rows 0..n_img-1)
    const int64_t ys[2] = {crop.i0, crop.i1};
    const double ls[2] = {crop.l0, crop.l1};
    Linear1d src[2];
    int64_t lo = n_src, hi = -1;
    for (int k = 0; k < 2; ++k) {
      src[k] = linear_source(n_src, n_batch, ys[k]);  // batch <- stride 4
      lo = std::min(lo, src[k].i0);
      hi = std::max(hi, src[k].i1);
    }
    dense.assign(static_cast<size_t>(hi - lo + 1), 0.0);
    for (int k = 0; k < 2; ++k) {
      dense[src[k].i0 - lo] += ls[k] * static_cast<double>(src[k].l0);
      dense[src[k].i1 - lo] += ls[k] * static_cast<double>(src[k].l1);
    }
    a.lo[o] = static_cast<int32_t>(lo);
    a.hi[o] = static_cast<int32_t>(hi);
    a.w.insert(a.w.end(), dense.begin(), dense.end());
    a.offset[o + 1] = static_cast<int64_t>(a.w.size());
    if (o > 0 && (a.lo[o] < a.lo[o - 1] || a.hi[o] < a.hi[o - 1])) a.monotone = false;
  }
  return a;
}

double resized_value(const float* probs, const Axis& ay, const Axis& ax, int64_t oy, int64_t ox) {
  const int64_t w4 = ax.n_src;
  const double* wy = ay.w.data() + ay.offset[oy];
  const double* wx = ax.w.data() + ax.offset[ox];
  double v = 0.0;
  for (int64_t r = ay.lo[oy]; r <= ay.hi[oy]; ++r) {
    double row = 0.0;
    for (int64_t c = ax.lo[ox]; c <= ax.hi[ox]; ++c) row += wx[c - ax.lo[ox]] * probs[r * w4 + c];
    v += wy[r - ay.lo[oy]] * row;
  }
  return v;
}

void resize_threshold_exact(const float* probs, const Axis& ay, const Axis& ax, double threshold, uint8_t* out) {
  for (int64_t oy = 0; oy < ay.n_out; ++oy)
    for (int64_t ox = 0; ox < ax.n_out; ++ox)
      out[oy * ax.n_out + ox] = resized_value(probs, ay, ax, oy, ox) > threshold ? 1 : 0;
}

void resize_threshold(const float* probs, const Axis& ay, const Axis& ax, double threshold, uint8_t* out,
                      Scratch& s) {
  if (!ay.monotone || !ax.monotone) {  // not produced by bilinear resizes; kept correct anyway
    resize_threshold_exact(probs, ay, ax, threshold, out);
    return;
  }
  const int64_t h4 = ay.n_src, w4 = ax.n_src, ho = ay.n_out, wo = ax.n_out;
  const float above = static_cast<float>(threshold + kMargin);
  const float below = static_cast<float>(threshold - kMargin);

  // 1. side of every stride-4 cell, and per row the columns that are not surely below
  s.cls.resize(static_cast<size_t>(h4 * w4));
  s.row_min.resize(h4);
  s.row_max.resize(h4);
  for (int64_t r = 0; r < h4; ++r) {
    const float* p = probs + r * w4;
    uint8_t* c = s.cls.data() + r * w4;
    for (int64_t j = 0; j < w4; ++j)
      c[j] = static_cast<uint8_t>((p[j] > above ? kAbove : 0) | (p[j] < below ? kBelow : 0));
    int64_t first = 0, last = w4 - 1;
    while (first < w4 && c[first] == kBelow) ++first;
    while (last >= first && c[last] == kBelow) --last;
    s.row_min[r] = static_cast<int32_t>(first);
    s.row_max[r] = static_cast<int32_t>(last);
  }

  // 2. output column ranges whose window lies inside source columns [a, b]:
  //    [first_ge[a], last_le[b]] (lo and hi are non-decreasing)
  s.first_ge.resize(w4 + 1);
  s.last_le.resize(w4);
  {
    int64_t ox = 0;
    for (int64_t c = 0; c <= w4; ++c) {
      while (ox < wo && ax.lo[ox] < c) ++ox;
      s.first_ge[c] = static_cast<int32_t>(ox);
    }
    ox = wo - 1;
    for (int64_t c = w4 - 1; c >= 0; --c) {
      while (ox >= 0 && ax.hi[ox] > c) --ox;
      s.last_le[c] = static_cast<int32_t>(ox);
    }
  }

  s.comb.resize(w4);
  s.vert.resize(w4);
  int64_t cached_ra = -1, cached_rb = -1;
  for (int64_t oy = 0; oy < ho; ++oy) {
    uint8_t* o = out + oy * wo;
    const int64_t ra = ay.lo[oy], rb = ay.hi[oy];
    int64_t jlo = w4, jhi = -1;
    for (int64_t r = ra; r <= rb; ++r) {
      jlo = std::min<int64_t>(jlo, s.row_min[r]);
      jhi = std::max<int64_t>(jhi, s.row_max[r]);
    }
    if (jlo > jhi) {  // every cell of the window rows is below: the whole row is 0
      std::memset(o, 0, static_cast<size_t>(wo));
      continue;
    }
    if (ra != cached_ra || rb != cached_rb) {  // runs of equal side over the source columns
      cached_ra = ra;
      cached_rb = rb;
      for (int64_t j = jlo; j <= jhi; ++j) s.comb[j] = kAbove | kBelow;
      for (int64_t r = ra; r <= rb; ++r) {
        const uint8_t* c = s.cls.data() + r * w4;
        for (int64_t j = jlo; j <= jhi; ++j) s.comb[j] &= c[j];
      }
      s.run_a.clear();
      s.run_b.clear();
      s.run_side.clear();
      auto push = [&](int64_t a, int64_t b, uint8_t side) {
        if (!s.run_side.empty() && s.run_side.back() == side) {
          s.run_b.back() = static_cast<int32_t>(b);
        } else {
          s.run_a.push_back(static_cast<int32_t>(a));
          s.run_b.push_back(static_cast<int32_t>(b));
          s.run_side.push_back(side);
        }
      };
      if (jlo > 0) push(0, jlo - 1, kBelow);
      int64_t j = jlo;
      while (j <= jhi) {
        const uint8_t side = s.comb[j];
        const int64_t a = j;
        while (j + 1 <= jhi && s.comb[j + 1] == side) ++j;
        push(a, j, side);
        ++j;
      }
      if (jhi < w4 - 1) push(jhi + 1, w4 - 1, kBelow);
    }

    // 3. sure runs are filled; the output columns between them are interpolated exactly
    const double* wy = ay.w.data() + ay.offset[oy];
    auto exact = [&](int64_t a, int64_t b) {  // output columns [a, b)
      if (a >= b) return;
      const int64_t ca = ax.lo[a], cb = ax.hi[b - 1];
      for (int64_t c = ca; c <= cb; ++c) s.vert[c] = 0.0;
      for (int64_t r = ra; r <= rb; ++r) {
        const double wr = wy[r - ra];
        const float* p = probs + r * w4;
        for (int64_t c = ca; c <= cb; ++c) s.vert[c] += wr * p[c];
      }
      for (int64_t ox = a; ox < b; ++ox) {
        const double* wx = ax.w.data() + ax.offset[ox];
        double v = 0.0;
        for (int64_t c = ax.lo[ox]; c <= ax.hi[ox]; ++c) v += wx[c - ax.lo[ox]] * s.vert[c];
        o[ox] = v > threshold ? 1 : 0;
      }
    };
    int64_t next = 0;
    for (size_t k = 0; k < s.run_side.size(); ++k) {
      const uint8_t side = s.run_side[k];
      if (side == 0) continue;
      const int64_t o0 = s.first_ge[s.run_a[k]], o1 = s.last_le[s.run_b[k]];
      if (o0 > o1) continue;
      exact(next, o0);
      std::memset(o + o0, side == kAbove ? 1 : 0, static_cast<size_t>(o1 - o0 + 1));
      next = o1 + 1;
    }
    exact(next, wo);
  }
}

}  // namespace mask_resize
}  // namespace knet
