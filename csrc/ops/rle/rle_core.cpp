// knet RLE codec, torch-free core. Every function reproduces the arithmetic of pycocotools'
// maskApi.c (same integer types, same double expressions, same evaluation order) so that
// areas, boxes, strings and IoUs are bit-identical.
//
// Floating-point contraction (a*b+c -> fma) would change the rounding of the polygon
// rasteriser and the box IoU relative to the reference build, so it is switched off here.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "ops/rle/rle_core.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

namespace knet {
namespace rle {

static inline uint32_t umin(uint32_t a, uint32_t b) { return a < b ? a : b; }
static inline uint32_t umax(uint32_t a, uint32_t b) { return a > b ? a : b; }

void encode_strided(const uint8_t* data, uint32_t h, uint32_t w, int64_t stride_y, int64_t stride_x, Rle& out) {
  out.h = h;
  out.w = w;
  out.cnts.clear();
  uint8_t p = 0;
  uint32_t c = 0;
  if (stride_y == 1) {  // Fortran order: columns are contiguous
    for (uint32_t x = 0; x < w; ++x) {
      const uint8_t* col = data + static_cast<int64_t>(x) * stride_x;
      for (uint32_t y = 0; y < h; ++y) {
        const uint8_t v = col[y] != 0;
        if (v != p) {
          out.cnts.push_back(c);
          c = 0;
          p = v;
        }
        ++c;
      }
    }
  } else {
    for (uint32_t x = 0; x < w; ++x) {
      const uint8_t* col = data + static_cast<int64_t>(x) * stride_x;
      for (uint32_t y = 0; y < h; ++y) {
        const uint8_t v = col[static_cast<int64_t>(y) * stride_y] != 0;
        if (v != p) {
          out.cnts.push_back(c);
          c = 0;
          p = v;
        }
        ++c;
      }
    }
  }
  out.cnts.push_back(c);
}

bool decode_rowmajor(const Rle& r, uint8_t* out) {
  const uint64_t total = static_cast<uint64_t>(r.h) * r.w;
  std::memset(out, 0, total);
  uint64_t idx = 0;
  bool v = false;
  for (uint32_t c : r.cnts) {
    if (idx + c > total) return false;
    if (v) {
      uint64_t rem = c;
      uint64_t pos = idx;
      while (rem > 0) {
        const uint32_t x = static_cast<uint32_t>(pos / r.h);
        const uint32_t y = static_cast<uint32_t>(pos % r.h);
        const uint64_t take = std::min<uint64_t>(rem, r.h - y);
        uint8_t* p = out + static_cast<uint64_t>(y) * r.w + x;
        for (uint64_t i = 0; i < take; ++i) p[i * r.w] = 1;
        rem -= take;
        pos += take;
      }
    }
    idx += c;
    v = !v;
  }
  return idx == total;
}

std::string to_string(const Rle& r) {
  std::string s;
  s.reserve(r.cnts.size() * 2 + 4);
  const size_t m = r.cnts.size();
  for (size_t i = 0; i < m; ++i) {
    long x = static_cast<long>(r.cnts[i]);
    if (i > 2) x -= static_cast<long>(r.cnts[i - 2]);
    bool more = true;
    while (more) {
      char c = static_cast<char>(x & 0x1f);
      x >>= 5;
      more = (c & 0x10) ? x != -1 : x != 0;
      if (more) c |= 0x20;
      c += 48;
      s.push_back(c);
    }
  }
  return s;
}

void from_string(const char* s, size_t len, uint32_t h, uint32_t w, Rle& out) {
  out.h = h;
  out.w = w;
  out.cnts.clear();
  out.cnts.reserve(len);
  for_each_count(s, len, [&](uint32_t v) { out.cnts.push_back(v); });
}

uint32_t string_area(const char* s, size_t len) {
  uint32_t a = 0;
  size_t m = 0;
  for_each_count(s, len, [&](uint32_t v) { a += (m++ & 1) ? v : 0; });
  return a;
}

uint32_t area(const Rle& r) {
  uint32_t a = 0;
  for (size_t j = 1; j < r.cnts.size(); j += 2) a += r.cnts[j];
  return a;
}

void to_bbox(const Rle& r, double bb[4]) {
  BboxBuilder b(r.h, r.w);
  for (uint32_t c : r.cnts) b.add(c);
  b.finish(bb);
}

void merge(const Rle* const* R, size_t n, bool intersect, Rle& out) {
  if (n == 0) {
    out.h = out.w = 0;
    out.cnts.clear();
    return;
  }
  uint32_t h = R[0]->h, w = R[0]->w;
  if (n == 1) {
    out.h = h;
    out.w = w;
    out.cnts = R[0]->cnts;
    return;
  }
  std::vector<uint32_t> cnts(R[0]->cnts);
  std::vector<uint32_t> acc;
  for (size_t i = 1; i < n; ++i) {
    const Rle& B = *R[i];
    if (B.h != h || B.w != w) {
      h = w = 0;
      cnts.clear();
      break;
    }
    acc.swap(cnts);  // A = previous result
    cnts.clear();
    const size_t am = acc.size(), bm = B.cnts.size();
    uint32_t ca = am ? acc[0] : 0, cb = bm ? B.cnts[0] : 0;
    int v = 0, va = 0, vb = 0, vp;
    size_t a = 1, b = 1;
    uint32_t cc = 0, ct = 1;
    while (ct > 0) {
      const uint32_t c = umin(ca, cb);
      cc += c;
      ct = 0;
      ca -= c;
      if (!ca && a < am) {
        ca = acc[a++];
        va = !va;
      }
      ct += ca;
      cb -= c;
      if (!cb && b < bm) {
        cb = B.cnts[b++];
        vb = !vb;
      }
      ct += cb;
      vp = v;
      v = intersect ? (va && vb) : (va || vb);
      if (v != vp || ct == 0) {
        cnts.push_back(cc);
        cc = 0;
      }
    }
  }
  out.h = h;
  out.w = w;
  out.cnts.swap(cnts);
}

void from_polygon(const double* xy, size_t k, uint32_t h, uint32_t w, Rle& out) {
  // rleFrPoly. The boundary walk, the downsampling and the run building keep maskApi's
  // arithmetic; the upsampled boundary is not stored (each point is downsampled as it is made),
  // and the pixel offsets are sorted by column buckets instead of a comparison sort.
  out.h = h;
  out.w = w;
  out.cnts.clear();
  const double scale = 5;
  thread_local std::vector<int> x, y, bx, by;
  thread_local std::vector<uint32_t> a, sorted, col;
  x.resize(k + 1);
  y.resize(k + 1);
  for (size_t j = 0; j < k; ++j) x[j] = static_cast<int>(scale * xy[j * 2 + 0] + .5);
  if (k > 0) x[k] = x[0];
  for (size_t j = 0; j < k; ++j) y[j] = static_cast<int>(scale * xy[j * 2 + 1] + .5);
  if (k > 0) y[k] = y[0];
  bx.clear();
  by.clear();
  // points along the y-boundary, downsampled: a point whose u differs from its predecessor's
  bool first = true;
  int pu = 0, pv = 0;
  auto mod5 = [](int v) { return ((v % 5) + 5) % 5; };
  // a boundary point at column xi (upsampled) between rows vj and vprev: kept when
  // (xi + .5) / 5 - .5 is an integer, i.e. xi = 2 (mod 5), and inside the image
  auto emit = [&](int xi, int vj, int vprev) {
    double xd = static_cast<double>(xi);
    xd = (xd + .5) / scale - .5;
    if (std::floor(xd) != xd || xd < 0 || xd > static_cast<double>(static_cast<unsigned long>(w) - 1)) return;
    double yd = static_cast<double>(vj < vprev ? vj : vprev);
    yd = (yd + .5) / scale - .5;
    if (yd < 0)
      yd = 0;
    else if (yd > static_cast<double>(h))
      yd = h;
    yd = std::ceil(yd);
    bx.push_back(static_cast<int>(xd));
    by.push_back(static_cast<int>(yd));
  };
  auto point = [&](int uj, int vj) {
    if (first) {
      first = false;
    } else if (uj != pu) {
      const int xi = uj < pu ? uj : uj - 1;
      if (mod5(xi) == 2) emit(xi, vj, pv);
    }
    pu = uj;
    pv = vj;
  };
  for (size_t j = 0; j < k; ++j) {
    int xs = x[j], xe = x[j + 1], ys = y[j], ye = y[j + 1], t;
    const int dx = std::abs(xe - xs), dy = std::abs(ys - ye);
    const bool flip = (dx >= dy && xs > xe) || (dx < dy && ys > ye);
    if (flip) {
      t = xs; xs = xe; xe = t;
      t = ys; ys = ye; ye = t;
    }
    const double s = dx >= dy ? static_cast<double>(ye - ys) / dx : static_cast<double>(xe - xs) / dy;
    if (dx >= dy) {
      // u steps by one per point, so after the first point only every fifth point can be kept:
      // visit those directly (the kept points are sorted below, so their order is free)
      auto v_at = [&](int tt) { return static_cast<int>(ys + s * tt + .5); };
      t = flip ? dx : 0;
      point(t + xs, v_at(t));
      if (dx >= 1) {
        if (!flip) {  // t = 1..dx, u = t + xs rising: column u - 1, previous point t - 1
          const int r = mod5(3 - xs);
          for (int tt = r == 0 ? 5 : r; tt <= dx; tt += 5) emit(tt - 1 + xs, v_at(tt), v_at(tt - 1));
          pu = dx + xs;
          pv = v_at(dx);
        } else {  // t = dx-1..0, u = t + xs falling: column u, previous point t + 1
          for (int tt = mod5(2 - xs); tt <= dx - 1; tt += 5) emit(tt + xs, v_at(tt), v_at(tt + 1));
          pu = xs;
          pv = v_at(0);
        }
      }
    } else {
      for (int d = 0; d <= dy; ++d) {
        t = flip ? dy - d : d;
        point(static_cast<int>(xs + s * t + .5), t + ys);
      }
    }
  }
  // RLE from the y-boundary points: offsets x*h+y sorted (bucketed by column, then by row)
  size_t n = bx.size();
  a.resize(n + 1);
  for (size_t j = 0; j < n; ++j) a[j] = static_cast<uint32_t>(bx[j] * static_cast<int>(h) + by[j]);
  int x0 = n ? bx[0] : 0, x1 = x0;
  for (size_t j = 1; j < n; ++j) {
    x0 = bx[j] < x0 ? bx[j] : x0;
    x1 = bx[j] > x1 ? bx[j] : x1;
  }
  if (static_cast<uint64_t>(w) * h >= (uint64_t(1) << 31)) {
    std::sort(a.begin(), a.begin() + n);  // offsets may wrap (as in maskApi): a plain value sort
  } else if (n > 0) {
    const size_t ncol = static_cast<size_t>(x1 - x0) + 1;
    col.assign(ncol + 1, 0);
    for (size_t j = 0; j < n; ++j) col[static_cast<size_t>(bx[j] - x0) + 1]++;
    for (size_t c = 0; c < ncol; ++c) col[c + 1] += col[c];
    sorted.resize(n);
    for (size_t j = 0; j < n; ++j) sorted[col[static_cast<size_t>(bx[j] - x0)]++] = a[j];
    // col[c] is now the end of column c: insertion-sort each column's few rows
    size_t begin = 0;
    for (size_t c = 0; c < ncol; ++c) {
      const size_t end = col[c];
      for (size_t i = begin + 1; i < end; ++i) {
        const uint32_t v = sorted[i];
        size_t q = i;
        while (q > begin && sorted[q - 1] > v) {
          sorted[q] = sorted[q - 1];
          --q;
        }
        sorted[q] = v;
      }
      begin = end;
    }
    std::copy(sorted.begin(), sorted.begin() + n, a.begin());
  }
  a[n++] = static_cast<uint32_t>(static_cast<unsigned long>(h) * w);  // not below any offset
  uint32_t p = 0;
  for (size_t j = 0; j < n; ++j) {
    const uint32_t t = a[j];
    a[j] -= p;
    p = t;
  }
  std::vector<uint32_t>& b = out.cnts;
  b.reserve(n);
  size_t j = 0;
  b.push_back(a[j++]);
  while (j < n) {
    if (a[j] > 0) {
      b.push_back(a[j++]);
    } else {
      ++j;
      if (j < n) b.back() += a[j++];
    }
  }
}

void from_bbox(const double bb[4], uint32_t h, uint32_t w, Rle& out) {
  const double xs = bb[0], xe = xs + bb[2];
  const double ys = bb[1], ye = ys + bb[3];
  const double xy[8] = {xs, ys, xs, ye, xe, ye, xe, ys};
  from_polygon(xy, 4, h, w, out);
}

void inter_union(const Rle& A, const Rle& B, uint32_t& inter, uint32_t& uni) {
  const size_t ka = A.cnts.size(), kb = B.cnts.size();
  uint32_t ca = ka ? A.cnts[0] : 0, cb = kb ? B.cnts[0] : 0;
  size_t a = 1, b = 1;
  bool va = false, vb = false;
  uint32_t i = 0, u = 0, ct = 1;
  while (ct > 0) {
    const uint32_t c = umin(ca, cb);
    if (va || vb) {
      u += c;
      if (va && vb) i += c;
    }
    ct = 0;
    ca -= c;
    if (!ca && a < ka) {
      ca = A.cnts[a++];
      va = !va;
    }
    ct += ca;
    cb -= c;
    if (!cb && b < kb) {
      cb = B.cnts[b++];
      vb = !vb;
    }
    ct += cb;
  }
  inter = i;
  uni = u;
}

double bbox_iou(const double D[4], const double G[4], bool crowd) {
  const double ga = G[2] * G[3];
  const double da = D[2] * D[3];
  const double w = std::fmin(D[2] + D[0], G[2] + G[0]) - std::fmax(D[0], G[0]);
  if (w <= 0) return 0;
  const double h = std::fmin(D[3] + D[1], G[3] + G[1]) - std::fmax(D[1], G[1]);
  if (h <= 0) return 0;
  const double i = w * h;
  const double u = crowd ? da : da + ga - i;
  return i / u;
}

double rle_iou(const Rle& dt, const Rle& gt, const double db[4], const double gb[4], bool crowd) {
  const double o = bbox_iou(db, gb, crowd);
  if (!(o > 0)) return o;
  if (dt.h != gt.h || dt.w != gt.w) return -1;
  uint32_t i, u;
  inter_union(dt, gt, i, u);
  if (i == 0)
    u = 1;
  else if (crowd)
    u = area(dt);
  return static_cast<double>(i) / static_cast<double>(u);
}

}  // namespace rle
}  // namespace knet
