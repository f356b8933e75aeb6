// Masks for the COCO evaluator (see coco_eval_core.h): one pass over a mask's counts gives its
// rleToBbox box (knet::rle::BboxBuilder), rleArea and foreground intervals; a pair's IoU is then
// pycocotools' rleIou with the intersection taken over the boxes' common columns only.
#include <algorithm>
#include <cmath>

#include "ops/coco_eval/coco_eval_core.h"
#include "ops/coco_eval/json_parser.h"
#include "ops/coco_eval/parallel.h"

namespace knet {
namespace coco {

namespace {

class IntervalBuilder {
 public:
  IntervalBuilder(uint32_t h, uint32_t w, MaskRuns& out) : out_(out), box_(h, w) {
    out.h = h;
    out.w = w;
    out.iv.clear();
  }
  inline void add(uint32_t c) {
    const uint32_t prev = cc_;
    cc_ += c;
    zero_run_ |= (c == 0) & (j_ > 0);
    if ((j_ & 1) && c != 0) {
      area_ += c;
      if (!out_.iv.empty() && out_.iv.back() == prev) {
        out_.iv.back() = cc_;  // a zero-length background run between two foreground runs
      } else {
        out_.iv.push_back(prev);
        out_.iv.push_back(cc_);
      }
    }
    box_.add(c);
    ++j_;
  }
  void finish() {
    out_.area = area_;
    out_.zero_run = zero_run_;
    box_.finish(out_.box);
  }

 private:
  MaskRuns& out_;
  rle::BboxBuilder box_;
  uint32_t cc_ = 0, area_ = 0;
  size_t j_ = 0;
  bool zero_run_ = false;
};

}  // namespace

void runs_from_counts(const uint32_t* cnts, size_t n, uint32_t h, uint32_t w, bool keep_counts, MaskRuns& out) {
  IntervalBuilder b(h, w, out);
  for (size_t j = 0; j < n; ++j) b.add(cnts[j]);
  b.finish();
  if (out.zero_run || keep_counts) {
    out.exact.h = h;
    out.exact.w = w;
    out.exact.cnts.assign(cnts, cnts + n);
  }
}

void runs_from_string(const char* s, size_t len, bool escaped, uint32_t h, uint32_t w, bool keep_counts,
                      MaskRuns& out, std::string& scratch) {
  const json::Str c = json::unescaped(json::Str{s, len, escaped}, scratch);
  s = c.p;
  len = c.len;
  IntervalBuilder b(h, w, out);
  rle::for_each_count(s, len, [&](uint32_t v) { b.add(v); });
  b.finish();
  if (out.zero_run || keep_counts) rle::from_string(s, len, h, w, out.exact);
}

uint32_t string_area(const char* s, size_t len, bool escaped, std::string& scratch) {
  const json::Str c = json::unescaped(json::Str{s, len, escaped}, scratch);
  return rle::string_area(c.p, c.len);
}

double mask_iou(const MaskRuns& dt, const uint32_t* gt_iv, size_t gt_n, const GtObj& gt) {
  const double o = rle::bbox_iou(dt.box, gt.box, gt.crowd);
  if (!(o > 0)) return o;
  if (dt.h != gt.rle.h || dt.w != gt.rle.w) return -1;
  uint32_t i;
  if (dt.zero_run || gt.zero_run) {  // pycocotools' literal run walk (see MaskRuns)
    uint32_t u;
    rle::inter_union(dt.exact, gt.rle, i, u);
    if (i == 0) return 0.0;
    if (gt.crowd) u = dt.area;
    return static_cast<double>(i) / static_cast<double>(u);
  }
  // every foreground pixel lies in its mask's box columns: intersect over the common ones
  uint64_t lo = 0, hi = UINT64_MAX;
  if (dt.h > 0) {
    const double x0 = std::fmax(dt.box[0], gt.box[0]);
    const double x1 = std::fmin(dt.box[0] + dt.box[2], gt.box[0] + gt.box[2]);
    lo = static_cast<uint64_t>(x0) * dt.h;
    hi = static_cast<uint64_t>(x1) * dt.h;
  }
  i = rle::intervals_intersection(dt.iv.data(), dt.iv.size() / 2, gt_iv, gt_n, lo, hi);
  if (i == 0) return 0.0;
  const uint32_t u = gt.crowd ? dt.area : dt.area + gt.mask_area - i;
  return static_cast<double>(i) / static_cast<double>(u);
}

void prepare_gt_masks(Dataset& ds, bool use_segm) {
  const int64_t n = static_cast<int64_t>(ds.gts.size());
  {  // (image, category, file order) by two stable counting sorts
    std::vector<int32_t> by_cat(static_cast<size_t>(n));
    std::vector<int64_t> cnt(static_cast<size_t>(ds.num_cats) + 1, 0);
    for (const auto& g : ds.gts) cnt[g.cat + 1]++;
    for (int32_t k = 0; k < ds.num_cats; ++k) cnt[k + 1] += cnt[k];
    for (int64_t j = 0; j < n; ++j) by_cat[cnt[ds.gts[j].cat]++] = static_cast<int32_t>(j);
    ds.gt_img_start.assign(static_cast<size_t>(ds.num_images) + 1, 0);
    for (const auto& g : ds.gts) ds.gt_img_start[g.img + 1]++;
    for (int32_t i = 0; i < ds.num_images; ++i) ds.gt_img_start[i + 1] += ds.gt_img_start[i];
    std::vector<int64_t> fill(ds.gt_img_start.begin(), ds.gt_img_start.end() - 1);
    ds.gt_by_img.resize(static_cast<size_t>(n));
    for (int32_t j : by_cat) ds.gt_by_img[fill[ds.gts[j].img]++] = j;
  }
  if (!use_segm) return;
  std::vector<std::vector<uint32_t>> parts(static_cast<size_t>(n));
  parallel_for(0, n, 512, [&](int64_t b, int64_t e) {
    MaskRuns m;
    for (int64_t j = b; j < e; ++j) {
      GtObj& g = ds.gts[j];
      runs_from_counts(g.rle.cnts.data(), g.rle.cnts.size(), g.rle.h, g.rle.w, false, m);
      g.mask_area = m.area;
      g.zero_run = m.zero_run;
      std::copy(m.box, m.box + 4, g.box);
      parts[j].swap(m.iv);
    }
  });
  size_t total = 0;
  for (auto& v : parts) total += v.size();
  ds.gt_iv.clear();
  ds.gt_iv.reserve(total);
  for (int64_t j = 0; j < n; ++j) {
    ds.gts[j].iv_begin = static_cast<int64_t>(ds.gt_iv.size());
    ds.gt_iv.insert(ds.gt_iv.end(), parts[j].begin(), parts[j].end());
    ds.gts[j].iv_end = static_cast<int64_t>(ds.gt_iv.size());
    std::vector<uint32_t>().swap(parts[j]);
  }
}

}  // namespace coco
}  // namespace knet
