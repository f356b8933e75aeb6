// COCO evaluation core: see coco_eval_core.h. The loops mirror pycocotools' cocoeval.py line
// by line (computeIoU, evaluateImg, accumulate) with the same double arithmetic.
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

Groups group(const Dataset& ds) {
  Groups g;
  const int64_t cells = static_cast<int64_t>(ds.num_cats) * ds.num_images;
  auto build = [&](auto const& objs, std::vector<int64_t>& start, std::vector<int32_t>& index) {
    start.assign(cells + 1, 0);
    for (const auto& o : objs) start[static_cast<int64_t>(o.cat) * ds.num_images + o.img + 1]++;
    for (int64_t c = 0; c < cells; ++c) start[c + 1] += start[c];
    index.resize(objs.size());
    std::vector<int64_t> fill(start.begin(), start.end() - 1);
    for (size_t j = 0; j < objs.size(); ++j) {
      const auto& o = objs[j];
      index[fill[static_cast<int64_t>(o.cat) * ds.num_images + o.img]++] = static_cast<int32_t>(j);
    }
  };
  build(ds.gts, g.gt_start, g.gt_index);
  build(ds.dts, g.dt_start, g.dt_index);
  return g;
}

void evaluate_cats(const Dataset& ds, const Groups& grp, const Params& p, std::vector<Cell>& cells, int32_t cat_begin,
                   int32_t cat_end) {
  const int32_t I = ds.num_images;
  const size_t T = p.iou_thrs.size(), A = p.area_lo.size();
  const size_t max_det = static_cast<size_t>(p.max_dets.back());
  std::vector<int32_t> dt, gt, gtind;
  std::vector<double> ious, dbox, gbox;
  std::vector<uint8_t> g_ig, gtm, crowd_sorted;
  std::vector<int64_t> dtm;
  std::vector<uint8_t> dt_ig;
  rle::Rle lazy;
  double lazy_box[4];
  for (int32_t k = cat_begin; k < cat_end; ++k) {
    for (int32_t i = 0; i < I; ++i) {
      const int64_t c = static_cast<int64_t>(k) * I + i;
      Cell& cell = cells[c];
      const int64_t g0 = grp.gt_start[c], g1 = grp.gt_start[c + 1];
      const int64_t d0 = grp.dt_start[c], d1 = grp.dt_start[c + 1];
      if (g0 == g1 && d0 == d1) continue;
      cell.present = true;
      gt.assign(grp.gt_index.begin() + g0, grp.gt_index.begin() + g1);
      dt.assign(grp.dt_index.begin() + d0, grp.dt_index.begin() + d1);
      // np.argsort([-score], kind='mergesort'): stable, highest score first
      std::stable_sort(dt.begin(), dt.end(),
                       [&](int32_t a, int32_t b) { return -ds.dts[a].score < -ds.dts[b].score; });
      if (dt.size() > max_det) dt.resize(max_det);
      const size_t G = gt.size(), D = dt.size();
      cell.scores.resize(D);
      for (size_t d = 0; d < D; ++d) cell.scores[d] = ds.dts[dt[d]].score;
      cell.flags.assign(A * T * D, 0);
      cell.num_regular_gt.assign(A, 0);

      // computeIoU: ious[d][g], gts in file order
      ious.assign(D * G, 0.0);
      if (D > 0 && G > 0) {
        for (size_t d = 0; d < D; ++d) {
          const DtObj& o = ds.dts[dt[d]];
          const rle::Rle* orle = &o.rle;
          const double* obox = o.box;
          if (p.use_segm && o.rle.cnts.empty() && o.lazy_str != nullptr) {
            rle::from_string(o.lazy_str, o.lazy_len, o.rle.h, o.rle.w, lazy);
            rle::to_bbox(lazy, lazy_box);
            orle = &lazy;
            obox = lazy_box;
          }
          for (size_t g = 0; g < G; ++g) {
            const GtObj& q = ds.gts[gt[g]];
            ious[d * G + g] = p.use_segm ? rle::rle_iou(*orle, q.rle, obox, q.box, q.crowd)
                                         : rle::bbox_iou(o.box, q.box, q.crowd);
          }
        }
      }

      for (size_t a = 0; a < A; ++a) {
        const double lo = p.area_lo[a], hi = p.area_hi[a];
        // _ignore, then np.argsort(_ignore, kind='mergesort'): regular GTs first, stable
        gtind.resize(G);
        std::iota(gtind.begin(), gtind.end(), 0);
        g_ig.resize(G);
        for (size_t g = 0; g < G; ++g) {
          const GtObj& q = ds.gts[gt[g]];
          g_ig[g] = (q.crowd || q.area < lo || q.area > hi) ? 1 : 0;
        }
        std::stable_sort(gtind.begin(), gtind.end(), [&](int32_t x, int32_t y) { return g_ig[x] < g_ig[y]; });
        int32_t regular = 0;
        for (size_t g = 0; g < G; ++g) regular += g_ig[g] == 0;
        cell.num_regular_gt[a] = regular;

        dtm.assign(T * D, 0);
        dt_ig.assign(T * D, 0);
        if (D > 0 && G > 0) {
          gtm.assign(T * G, 0);
          for (size_t t = 0; t < T; ++t) {
            for (size_t d = 0; d < D; ++d) {
              double iou = std::min(p.iou_thrs[t], 1 - 1e-10);
              int64_t m = -1;
              for (size_t gs = 0; gs < G; ++gs) {
                const int32_t g = gtind[gs];
                const bool g_crowd = ds.gts[gt[g]].crowd;
                if (gtm[t * G + gs] && !g_crowd) continue;
                if (m > -1 && g_ig[gtind[m]] == 0 && g_ig[g] == 1) break;
                const double v = ious[d * G + g];
                if (v < iou) continue;
                iou = v;
                m = static_cast<int64_t>(gs);
              }
              if (m == -1) continue;
              const int32_t gm = gtind[m];
              dt_ig[t * D + d] = g_ig[gm];
              dtm[t * D + d] = ds.gts[gt[gm]].id;
              gtm[t * G + m] = 1;  // stores the detection id (>= 1) in pycocotools
            }
          }
        }
        uint8_t* flags = cell.flags.data() + a * T * D;
        for (size_t d = 0; d < D; ++d) {
          const double ar = ds.dts[dt[d]].area;
          const bool out_of_range = ar < lo || ar > hi;
          for (size_t t = 0; t < T; ++t) {
            const bool unmatched = dtm[t * D + d] == 0;
            const bool ig = dt_ig[t * D + d] || (unmatched && out_of_range);
            flags[t * D + d] = ig ? 0 : (unmatched ? 2 : 1);
          }
        }
      }
    }
  }
}

void accumulate_cats(const Params& p, int32_t num_images, int32_t num_cats, const std::vector<Cell>& cells,
                     double* precision, double* recall, double* scores_out, int32_t cat_begin, int32_t cat_end) {
  const size_t T = p.iou_thrs.size(), R = p.rec_thrs.size(), A = p.area_lo.size(), M = p.max_dets.size();
  const size_t K = static_cast<size_t>(num_cats);
  const double eps = 2.220446049250313e-16;  // np.spacing(1)
  struct Ref {
    double score;
    int32_t cell;
    int32_t d;
  };
  std::vector<Ref> refs;
  std::vector<double> rc, pr;
  std::vector<uint8_t> fl;
  std::vector<int32_t> kidx;
  for (int32_t k = cat_begin; k < cat_end; ++k) {
    const Cell* row = cells.data() + static_cast<int64_t>(k) * num_images;
    bool any = false;
    for (int32_t i = 0; i < num_images; ++i) any = any || row[i].present;
    if (!any) continue;
    for (size_t mi = 0; mi < M; ++mi) {
      const size_t max_det = static_cast<size_t>(p.max_dets[mi]);
      refs.clear();
      for (int32_t i = 0; i < num_images; ++i) {
        if (!row[i].present) continue;
        const size_t D = std::min(max_det, row[i].scores.size());
        for (size_t d = 0; d < D; ++d) refs.push_back({row[i].scores[d], i, static_cast<int32_t>(d)});
      }
      std::stable_sort(refs.begin(), refs.end(), [](const Ref& x, const Ref& y) { return -x.score < -y.score; });
      const size_t nd = refs.size();
      const size_t AT = A * T;
      // the flags of every detection in sorted order, contiguous: fl[j][a][t]
      fl.resize(nd * AT);
      for (size_t j = 0; j < nd; ++j) {
        const Cell& c = row[refs[j].cell];
        const size_t D = c.scores.size();
        for (size_t at = 0; at < AT; ++at) fl[j * AT + at] = c.flags[at * D + refs[j].d];
      }
      for (size_t a = 0; a < A; ++a) {
        int64_t npig = 0;
        for (int32_t i = 0; i < num_images; ++i)
          if (row[i].present) npig += row[i].num_regular_gt[a];
        if (npig == 0) continue;
        for (size_t t = 0; t < T; ++t) {
          // Only index 0 and the non-ignored detections change (rc, pr); an ignored detection
          // repeats its predecessor's values, so the searchsorted index, the right-to-left max
          // and the precision/score picked are the same on this subsequence (keeping the
          // original index for the score).
          kidx.clear();
          rc.clear();
          pr.clear();
          double tp = 0, fp = 0;
          for (size_t j = 0; j < nd; ++j) {
            const uint8_t f = fl[j * AT + a * T + t];
            if (f == 0 && j != 0) continue;
            if (f == 1) tp += 1;
            if (f == 2) fp += 1;
            kidx.push_back(static_cast<int32_t>(j));
            rc.push_back(tp / static_cast<double>(npig));
            pr.push_back(tp / (fp + tp + eps));
          }
          const size_t nk = kidx.size();
          recall[((t * K + k) * A + a) * M + mi] = nd ? tp / static_cast<double>(npig) : 0.0;
          for (size_t j = nk; j-- > 1;)
            if (pr[j] > pr[j - 1]) pr[j - 1] = pr[j];
          size_t pi = 0;
          for (size_t r = 0; r < R; ++r) {
            const double thr = p.rec_thrs[r];
            while (pi < nk && rc[pi] < thr) ++pi;  // np.searchsorted(rc, thr, 'left')
            const size_t off = (((t * R + r) * K + k) * A + a) * M + mi;
            if (pi < nk) {
              precision[off] = pr[pi];
              scores_out[off] = refs[kidx[pi]].score;
            } else {
              precision[off] = 0.0;
              scores_out[off] = 0.0;
            }
          }
        }
      }
    }
  }
}

}  // namespace coco
}  // namespace knet
