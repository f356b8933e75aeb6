// COCO evaluation core: see coco_eval_core.h. The loops mirror pycocotools' cocoeval.py
// (computeIoU, evaluateImg, accumulate) with the same double arithmetic.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "ops/coco_eval/coco_eval_core.h"

#include <algorithm>
#include <numeric>

namespace knet {
namespace coco {

namespace {

// Stable counting sorts: by image, then by category -> (category, image, file order).
template <typename Obj>
void order_objects(const std::vector<Obj>& objs, int32_t num_images, int32_t num_cats, std::vector<int32_t>& order,
                   std::vector<int64_t>& cat_start) {
  const size_t n = objs.size();
  std::vector<int64_t> cnt(static_cast<size_t>(num_images) + 1, 0);
  for (const auto& o : objs) cnt[o.img + 1]++;
  for (int32_t i = 0; i < num_images; ++i) cnt[i + 1] += cnt[i];
  std::vector<int32_t> by_img(n);
  for (size_t j = 0; j < n; ++j) by_img[cnt[objs[j].img]++] = static_cast<int32_t>(j);
  cat_start.assign(static_cast<size_t>(num_cats) + 1, 0);
  for (const auto& o : objs) cat_start[o.cat + 1]++;
  for (int32_t k = 0; k < num_cats; ++k) cat_start[k + 1] += cat_start[k];
  std::vector<int64_t> fill(cat_start.begin(), cat_start.end() - 1);
  order.resize(n);
  for (int32_t j : by_img) order[fill[objs[j].cat]++] = j;
}

// What evaluateImg gives for one detection of a category, in cell order (image, then score).
struct DetEval {
  double score;
  int32_t rank;  // position in its cell's score order (maxDets keep rank < maxDet)
};

struct Scratch {
  std::vector<int32_t> dt, gtind;
  std::vector<double> ious;
  std::vector<uint8_t> g_ig, gtm, dt_ig, crowd;
  std::vector<int64_t> dtm;
  MaskRuns runs;
  std::string str;
  // per category
  std::vector<DetEval> dets;
  std::vector<uint8_t> flags;  // [n][A][T]: 0 ignored, 1 true positive, 2 false positive
  std::vector<int64_t> npig;   // [A]
  std::vector<int32_t> sorted, kept, tp_pos;
  std::vector<uint8_t> fl;
  std::vector<uint32_t> tp_fp;
  std::vector<double> sufmax;
};

// evaluateImg for one (image, category) cell: appends the cell's kept detections to s.dets/flags.
// gts: object ids (file order); d0: the cell's first position in the index's detection order.
void evaluate_cell(const Dataset& ds, const Index& x, const Params& p, const int32_t* gts, size_t G, int64_t d0,
                   size_t nd, Scratch& s) {
  const size_t T = p.iou_thrs.size(), A = p.area_lo.size();
  const size_t max_det = static_cast<size_t>(p.max_dets.back());
  const double* score = x.dt_score.data();
  s.dt.resize(nd);  // positions in the index order
  std::iota(s.dt.begin(), s.dt.end(), static_cast<int32_t>(d0));
  // np.argsort([-score], kind='mergesort'): stable, highest score first
  if (nd > 1) std::stable_sort(s.dt.begin(), s.dt.end(), [&](int32_t a, int32_t b) { return -score[a] < -score[b]; });
  const size_t D = std::min(nd, max_det);
  const size_t base = s.dets.size();
  for (size_t d = 0; d < D; ++d) s.dets.push_back({score[s.dt[d]], static_cast<int32_t>(d)});
  s.flags.resize((base + D) * A * T);
  uint8_t* flags = s.flags.data() + base * A * T;

  if (G == 0) {  // nothing to match: every detection is a false positive unless out of range
    for (size_t a = 0; a < A; ++a)
      for (size_t d = 0; d < D; ++d) {
        const double ar = x.dt_area[s.dt[d]];
        const uint8_t f = (ar < p.area_lo[a] || ar > p.area_hi[a]) ? 0 : 2;
        std::fill(flags + (d * A + a) * T, flags + (d * A + a + 1) * T, f);
      }
    return;
  }
  // computeIoU: ious[d][g], gts in file order
  s.ious.assign(D * G, 0.0);
  s.crowd.resize(G);
  bool exact = false;
  for (size_t g = 0; g < G; ++g) {
    s.crowd[g] = ds.gts[gts[g]].crowd;
    exact = exact || ds.gts[gts[g]].zero_run;
  }
  for (size_t d = 0; d < D; ++d) {
    if (x.dt_iou[s.dt[d]] >= 0) {  // computed while the results were read
      std::copy_n(ds.dt_ious.data() + x.dt_iou[s.dt[d]], G, s.ious.data() + d * G);
      continue;
    }
    const DtObj& o = ds.dts[x.dt_order[s.dt[d]]];
    if (!p.use_segm) {
      for (size_t g = 0; g < G; ++g) s.ious[d * G + g] = rle::bbox_iou(o.box, ds.gts[gts[g]].box, s.crowd[g]);
      continue;
    }
    if (o.rle >= 0) {
      const rle::Rle& r = ds.dt_rles[o.rle];
      runs_from_counts(r.cnts.data(), r.cnts.size(), r.h, r.w, exact, s.runs);
    } else {
      runs_from_string(o.str, o.len, o.escaped, o.h, o.w, exact, s.runs, s.str);
    }
    for (size_t g = 0; g < G; ++g) {
      const GtObj& q = ds.gts[gts[g]];
      s.ious[d * G + g] =
          mask_iou(s.runs, ds.gt_iv.data() + q.iv_begin, static_cast<size_t>(q.iv_end - q.iv_begin) / 2, q);
    }
  }

  s.gtind.resize(G);
  s.g_ig.resize(G);
  for (size_t a = 0; a < A; ++a) {
    const double lo = p.area_lo[a], hi = p.area_hi[a];
    // _ignore, then np.argsort(_ignore, kind='mergesort'): regular GTs first, stable
    int32_t regular = 0;
    for (size_t g = 0; g < G; ++g) {
      const GtObj& q = ds.gts[gts[g]];
      s.g_ig[g] = (q.crowd || q.area < lo || q.area > hi) ? 1 : 0;
      regular += s.g_ig[g] == 0;
    }
    size_t r = 0, ig = static_cast<size_t>(regular);
    for (size_t g = 0; g < G; ++g) s.gtind[s.g_ig[g] ? ig++ : r++] = static_cast<int32_t>(g);
    s.dtm.assign(T * D, 0);
    s.dt_ig.assign(T * D, 0);
    s.gtm.assign(T * G, 0);
    for (size_t t = 0; t < T; ++t) {
      for (size_t d = 0; d < D; ++d) {
        double iou = std::min(p.iou_thrs[t], 1 - 1e-10);
        int64_t m = -1;
        const double* row = s.ious.data() + d * G;
        for (size_t gs = 0; gs < G; ++gs) {
          const int32_t g = s.gtind[gs];
          if (s.gtm[t * G + gs] && !s.crowd[g]) continue;
          if (m > -1 && s.g_ig[s.gtind[m]] == 0 && s.g_ig[g] == 1) break;
          const double v = row[g];
          if (v < iou) continue;
          iou = v;
          m = static_cast<int64_t>(gs);
        }
        if (m == -1) continue;
        const int32_t gm = s.gtind[m];
        s.dt_ig[t * D + d] = s.g_ig[gm];
        s.dtm[t * D + d] = ds.gts[gts[gm]].id;
        s.gtm[t * G + m] = 1;  // stores the detection id (>= 1) in pycocotools
      }
    }
    for (size_t d = 0; d < D; ++d) {
      const double ar = x.dt_area[s.dt[d]];
      const bool out_of_range = ar < lo || ar > hi;
      uint8_t* f = flags + (d * A + a) * T;
      for (size_t t = 0; t < T; ++t) {
        const bool unmatched = s.dtm[t * D + d] == 0;
        const bool ig = s.dt_ig[t * D + d] || (unmatched && out_of_range);
        f[t] = ig ? 0 : (unmatched ? 2 : 1);
      }
    }
  }
}

// accumulate() for one category from its evaluated detections (cell order: image, then rank).
void accumulate_cat(const Params& p, int32_t k, size_t K, Scratch& s, double* precision, double* recall,
                    double* scores_out) {
  const size_t T = p.iou_thrs.size(), R = p.rec_thrs.size(), A = p.area_lo.size(), M = p.max_dets.size();
  const double eps = 2.220446049250313e-16;  // np.spacing(1)
  const size_t n = s.dets.size();
  // one stable score sort for every maxDet: the kept subsequences of a stable order are stable
  s.sorted.resize(n);
  std::iota(s.sorted.begin(), s.sorted.end(), 0);
  std::stable_sort(s.sorted.begin(), s.sorted.end(),
                   [&](int32_t x, int32_t y) { return -s.dets[x].score < -s.dets[y].score; });
  for (size_t mi = 0; mi < M; ++mi) {
    const int32_t max_det = p.max_dets[mi];
    s.kept.clear();
    for (int32_t j : s.sorted)
      if (s.dets[j].rank < max_det) s.kept.push_back(j);
    const size_t nd = s.kept.size();
    const size_t AT = A * T;
    s.fl.resize(nd * AT);  // flags in score order: fl[j][a][t]
    for (size_t j = 0; j < nd; ++j)
      std::copy_n(s.flags.data() + static_cast<size_t>(s.kept[j]) * AT, AT, s.fl.data() + j * AT);
    s.tp_pos.resize(nd + 1);
    s.tp_fp.resize(nd + 1);
    s.sufmax.resize(nd + 2);
    for (size_t a = 0; a < A; ++a) {
      const int64_t npig = s.npig[a];
      if (npig == 0) continue;
      const double np_d = static_cast<double>(npig);
      for (size_t t = 0; t < T; ++t) {
        // rc and pr change only at true positives; between two of them pr can only fall, so the
        // right-to-left max of pr and the searchsorted(rc, thr) index are found among the true
        // positives (and index 0, whose pr is 0 unless it is the first true positive)
        size_t ntp = 0;
        uint32_t fp = 0;  // an integer counter: no floating-point add on the loop's critical path
        for (size_t j = 0; j < nd; ++j) {
          const uint8_t f = s.fl[j * AT + a * T + t];
          s.tp_pos[ntp] = static_cast<int32_t>(j);
          s.tp_fp[ntp] = fp;
          ntp += f == 1;
          fp += f == 2;
        }
        recall[((t * K + k) * A + a) * M + mi] = nd ? static_cast<double>(ntp) / np_d : 0.0;
        // sufmax[c] = max over true positives c' >= c of pr (c = 1..ntp)
        s.sufmax[ntp + 1] = 0.0;
        for (size_t c = ntp; c >= 1; --c) {
          const double tp = static_cast<double>(c);
          const double pr = tp / (static_cast<double>(s.tp_fp[c - 1]) + tp + eps);
          s.sufmax[c] = pr > s.sufmax[c + 1] ? pr : s.sufmax[c + 1];
        }
        size_t c = 1;
        for (size_t r = 0; r < R; ++r) {
          const double thr = p.rec_thrs[r];
          const size_t off = (((t * R + r) * K + k) * A + a) * M + mi;
          double q = 0.0, sc = 0.0;
          if (nd > 0 && 0.0 / np_d >= thr) {  // index 0
            q = ntp ? s.sufmax[1] : 0.0;
            sc = s.dets[s.kept[0]].score;
          } else {
            while (c <= ntp && static_cast<double>(c) / np_d < thr) ++c;
            if (c <= ntp) {
              q = s.sufmax[c];
              sc = s.dets[s.kept[s.tp_pos[c - 1]]].score;
            }
          }
          precision[off] = q;
          scores_out[off] = sc;
        }
      }
    }
  }
}

}  // namespace

Index build_index(const Dataset& ds) {
  Index x;
  order_objects(ds.gts, ds.num_images, ds.num_cats, x.gt_order, x.gt_cat_start);
  order_objects(ds.dts, ds.num_images, ds.num_cats, x.dt_order, x.dt_cat_start);
  // the fields in index order, written while the detections are read in file order
  const size_t n = ds.dts.size();
  std::vector<int32_t> pos(n);
  for (size_t q = 0; q < n; ++q) pos[x.dt_order[q]] = static_cast<int32_t>(q);
  x.dt_img.resize(n);
  x.dt_score.resize(n);
  x.dt_area.resize(n);
  x.dt_iou.resize(n);
  for (size_t j = 0; j < n; ++j) {
    const DtObj& o = ds.dts[j];
    const int32_t q = pos[j];
    x.dt_img[q] = o.img;
    x.dt_score[q] = o.score;
    x.dt_area[q] = o.area;
    x.dt_iou[q] = o.iou_off;
  }
  return x;
}

void evaluate_cats(const Dataset& ds, const Index& x, const Params& p, double* precision, double* recall,
                   double* scores, int32_t cat_begin, int32_t cat_end) {
  const size_t A = p.area_lo.size();
  const size_t K = static_cast<size_t>(ds.num_cats);
  Scratch s;
  for (int32_t k = cat_begin; k < cat_end; ++k) {
    const int32_t* go = x.gt_order.data();
    int64_t gi = x.gt_cat_start[k], ge = x.gt_cat_start[k + 1];
    int64_t di = x.dt_cat_start[k], de = x.dt_cat_start[k + 1];
    if (gi == ge && di == de) continue;  // no evaluated cell: stays -1
    s.dets.clear();
    s.flags.clear();
    s.npig.assign(A, 0);
    while (gi < ge || di < de) {  // cells in image order
      const int32_t img = std::min(gi < ge ? ds.gts[go[gi]].img : ds.num_images,
                                   di < de ? x.dt_img[di] : ds.num_images);
      int64_t g1 = gi, d1 = di;
      while (g1 < ge && ds.gts[go[g1]].img == img) ++g1;
      while (d1 < de && x.dt_img[d1] == img) ++d1;
      for (size_t a = 0; a < A; ++a)
        for (int64_t g = gi; g < g1; ++g) {
          const GtObj& q = ds.gts[go[g]];
          s.npig[a] += !(q.crowd || q.area < p.area_lo[a] || q.area > p.area_hi[a]);
        }
      evaluate_cell(ds, x, p, go + gi, static_cast<size_t>(g1 - gi), di, static_cast<size_t>(d1 - di), s);
      gi = g1;
      di = d1;
    }
    accumulate_cat(p, k, K, s, precision, recall, scores);
  }
}

}  // namespace coco
}  // namespace knet
