// Panoptic quality per image (see pq_core.h). Runs of equal (gt, pred) pairs are counted
// before touching the hash map, so the map sees only segment boundaries.
#include "ops/pq_eval/pq_core.h"

#include "ops/png/png_core.h"
#include "ops/png/png_file_core.h"

#include <algorithm>
#include <cstring>
#ifdef __AVX2__
#include <immintrin.h>
#endif
#include <unordered_map>
#include <unordered_set>

namespace knet {
namespace pq {

static constexpr uint64_t kOffset = 256ull * 256ull * 256ull;

// (gt_id * 2^24 + pred_id) -> pixel count
using PairCounts = std::unordered_map<uint64_t, int64_t>;

static void count_pairs(const uint32_t* gt, const uint32_t* pred, size_t npix, PairCounts& pairs) {
  if (npix == 0) return;
  uint64_t cur = static_cast<uint64_t>(gt[0]) * kOffset + pred[0];
  int64_t run = 0;
  for (size_t i = 0; i < npix; ++i) {
    const uint64_t key = static_cast<uint64_t>(gt[i]) * kOffset + pred[i];
    if (key != cur) {
      pairs[cur] += run;
      cur = key;
      run = 0;
    }
    ++run;
  }
  pairs[cur] += run;
}

static void stats_from_pairs(const PairCounts& pairs, const std::vector<GtSegment>& gts,
                             const std::vector<PredSegment>& preds, ImageStats& out);

void image_stats(const uint32_t* gt, const uint32_t* pred, size_t npix, const std::vector<GtSegment>& gts,
                 const std::vector<PredSegment>& preds, ImageStats& out) {
  PairCounts pairs;
  pairs.reserve(256);
  count_pairs(gt, pred, npix, pairs);
  stats_from_pairs(pairs, gts, preds, out);
}

// Panoptic id R + 256 G + 65536 B of the pixel at p with one unaligned 4-byte load
// (little-endian); reads p[3], which RowReader pads at the end of its rows.
static inline uint32_t pixel_id4(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v & 0xFFFFFFu;
}

// The first pixel x >= from (x >= 1) of a row of w pixels of ch bytes that differs from pixel
// x - 1, or w. Runs of a segment map are long, so the bytes are compared 32 at a time.
static size_t next_change(const uint8_t* row, size_t w, size_t ch, size_t from) {
  const size_t n = w * ch;
  size_t j = from * ch;
#ifdef __AVX2__
  for (; j + 32 <= n; j += 32) {
    const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + j));
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + j - ch));
    const uint32_t eq = static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_cmpeq_epi8(a, b)));
    if (eq != 0xFFFFFFFFu) return (j + static_cast<size_t>(__builtin_ctz(~eq))) / ch;
  }
#endif
  for (; j < n; ++j)
    if (row[j] != row[j - ch]) return j / ch;
  return w;
}

// Pair counts of two streams of rows; 0, or 1 / 2 when the GT / prediction data is corrupt.
static int count_pair_rows(png::RowReader& gr, png::RowReader& pr, uint32_t h, uint32_t w, uint32_t gt_channels,
                           uint32_t pred_channels, PairCounts& pairs) {
  // runs (key, length) of the last changed row, added `repeat` times once the rows change
  std::vector<std::pair<uint64_t, int64_t>> runs;
  int64_t repeat = 0;
  auto flush = [&]() {
    for (const auto& r : runs) pairs[r.first] += r.second * repeat;
  };
  for (uint32_t y = 0; y < h; ++y) {
    bool gsame, psame;
    const uint8_t* g = gr.next(&gsame);
    if (!g) return 1;
    const uint8_t* p = pr.next(&psame);
    if (!p) return 2;
    if (gsame && psame && y > 0) {
      ++repeat;
      continue;
    }
    flush();
    runs.clear();
    repeat = 1;
    // runs end where either map changes (a change in either changes the pair key)
    size_t x = 0, bg = next_change(g, w, gt_channels, 1), bp = next_change(p, w, pred_channels, 1);
    while (x < w) {
      const size_t b = std::min(bg, bp);
      runs.emplace_back(static_cast<uint64_t>(pixel_id4(g + x * gt_channels)) * kOffset + pixel_id4(p + x * pred_channels),
                        static_cast<int64_t>(b - x));
      x = b;
      if (bg == b && b < w) bg = next_change(g, w, gt_channels, b + 1);
      if (bp == b && b < w) bp = next_change(p, w, pred_channels, b + 1);
    }
  }
  flush();
  return 0;
}

FileStatus image_stats_files(const uint8_t* gt_png, size_t gt_len, const uint8_t* pred_png, size_t pred_len,
                             const std::vector<GtSegment>& gts, const std::vector<PredSegment>& preds, ImageStats& out) {
  FileStatus st;
  png::PngFile gf, pf;
  if ((st.message = png::parse_png(gt_png, gt_len, gf))) {
    st.code = FileStatus::kCorruptGt;
    return st;
  }
  if ((st.message = png::parse_png(pred_png, pred_len, pf))) {
    st.code = FileStatus::kCorruptPred;
    return st;
  }
  st.gt_w = gf.w, st.gt_h = gf.h, st.pred_w = pf.w, st.pred_h = pf.h;
  if (!gf.is_plain_rgb() || !pf.is_plain_rgb()) {
    st.code = FileStatus::kOtherFlavour;
    return st;
  }
  if (gf.w != pf.w || gf.h != pf.h) {
    st.code = FileStatus::kSizeMismatch;
    return st;
  }
  const uint32_t h = gf.h, w = gf.w, gch = gf.channels(), pch = pf.channels();
  png::Inflater gi(gf.zdata, gf.zlen, static_cast<size_t>(w) * gch + 1), pi(pf.zdata, pf.zlen, static_cast<size_t>(w) * pch + 1);
  png::RowReader gr(gi, h, w, gch), pr(pi, h, w, pch);
  PairCounts pairs;
  pairs.reserve(256);
  const int bad = count_pair_rows(gr, pr, h, w, gch, pch, pairs);
  if (bad == 1 || (bad == 0 && !gr.finish())) {
    st.code = FileStatus::kCorruptGt;
    st.message = gr.error();
    return st;
  }
  if (bad == 2 || !pr.finish()) {
    st.code = FileStatus::kCorruptPred;
    st.message = pr.error();
    return st;
  }
  stats_from_pairs(pairs, gts, preds, out);
  return st;
}

static void stats_from_pairs(const PairCounts& pairs, const std::vector<GtSegment>& gts,
                             const std::vector<PredSegment>& preds, ImageStats& out) {
  std::vector<std::pair<uint64_t, int64_t>> sorted(pairs.begin(), pairs.end());
  std::sort(sorted.begin(), sorted.end());

  // dicts keyed by id (a repeated id keeps its first position and its last value, like Python)
  std::unordered_map<uint32_t, size_t> gt_index, pred_index;
  for (size_t j = 0; j < gts.size(); ++j) gt_index[gts[j].id] = j;
  for (size_t j = 0; j < preds.size(); ++j) pred_index[preds[j].id] = j;

  // predicted areas from the PNG, and the JSON/PNG consistency checks
  std::unordered_map<uint32_t, int64_t> pred_area, void_inter;
  for (const auto& kv : sorted) {
    const uint32_t p = static_cast<uint32_t>(kv.first % kOffset);
    pred_area[p] += kv.second;
    if (kv.first / kOffset == 0) void_inter[p] = kv.second;
  }
  {
    std::vector<uint32_t> png_ids;
    for (const auto& kv : pred_area) png_ids.push_back(kv.first);
    std::sort(png_ids.begin(), png_ids.end());
    for (uint32_t p : png_ids) {
      if (p != 0 && pred_index.find(p) == pred_index.end()) {
        out.error = 1;
        out.bad_id = p;
        return;
      }
    }
    for (const auto& s : preds) {
      if (pred_area.find(s.id) == pred_area.end()) {
        out.error = 2;
        out.bad_id = s.id;
        return;
      }
    }
  }

  std::unordered_set<uint32_t> gt_matched, pred_matched;
  for (const auto& kv : sorted) {
    const uint32_t g = static_cast<uint32_t>(kv.first / kOffset), p = static_cast<uint32_t>(kv.first % kOffset);
    auto gi = gt_index.find(g);
    if (gi == gt_index.end()) continue;
    auto pi = pred_index.find(p);
    if (pi == pred_index.end()) continue;
    const GtSegment& gs = gts[gi->second];
    const PredSegment& ps = preds[pi->second];
    if (gs.crowd) continue;
    if (gs.cat != ps.cat) continue;
    const int64_t inter = kv.second;
    auto vi = void_inter.find(p);
    const double v = vi == void_inter.end() ? 0.0 : static_cast<double>(vi->second);
    const double uni = static_cast<double>(pred_area[p]) + gs.area - static_cast<double>(inter) - v;
    const double iou = static_cast<double>(inter) / uni;
    if (iou > 0.5) {
      out.match_cat.push_back(gs.cat);
      out.match_iou.push_back(iou);
      gt_matched.insert(g);
      pred_matched.insert(p);
    }
  }

  // false negatives; crowd segments register (last one per category wins)
  std::unordered_map<int64_t, uint32_t> crowd_by_cat;
  std::unordered_set<uint32_t> seen;
  for (const auto& s : gts) {
    if (!seen.insert(s.id).second) continue;  // dict iteration visits each id once
    const GtSegment& gs = gts[gt_index[s.id]];
    if (gt_matched.count(gs.id)) continue;
    if (gs.crowd) {
      crowd_by_cat[gs.cat] = gs.id;
      continue;
    }
    out.fn_cat.push_back(gs.cat);
  }
  // false positives
  std::unordered_map<uint64_t, int64_t> pair_map(sorted.begin(), sorted.end());
  seen.clear();
  for (const auto& s : preds) {
    if (!seen.insert(s.id).second) continue;
    const PredSegment& ps = preds[pred_index[s.id]];
    if (pred_matched.count(ps.id)) continue;
    auto vi = void_inter.find(ps.id);
    int64_t inter = vi == void_inter.end() ? 0 : vi->second;
    auto ci = crowd_by_cat.find(ps.cat);
    if (ci != crowd_by_cat.end()) {
      auto it = pair_map.find(static_cast<uint64_t>(ci->second) * kOffset + ps.id);
      if (it != pair_map.end()) inter += it->second;
    }
    if (static_cast<double>(inter) / static_cast<double>(pred_area[ps.id]) > 0.5) continue;
    out.fp_cat.push_back(ps.cat);
  }
}

}  // namespace pq
}  // namespace knet
