// Tests of the torch-free evaluation cores: RLE codec, mask IoU, COCO matching/accumulation,
// PNG unfiltering, PQ per image, mIoU histograms. Reference values follow pycocotools,
// panopticapi and mmseg (the Python tests compare against those tools on random data).
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "ops/coco_eval/coco_eval_core.h"
#include "ops/coco_eval/results_json.h"
#include "ops/mask_iou/mask_iou.h"
#include "ops/png/png_core.h"
#include "ops/pq_eval/pq_core.h"
#include "ops/rle/rle_core.h"
#include "ops/semantic_eval/semantic_core.h"
#include "tests/harness.h"

using knet::rle::Rle;

namespace {

Rle encode_rowmajor(const std::vector<uint8_t>& m, uint32_t h, uint32_t w) {
  Rle r;
  knet::rle::encode_strided(m.data(), h, w, w, 1, r);
  return r;
}

std::vector<uint8_t> box_mask(uint32_t h, uint32_t w, uint32_t y0, uint32_t y1, uint32_t x0, uint32_t x1) {
  std::vector<uint8_t> m(h * w, 0);
  for (uint32_t y = y0; y < y1; ++y)
    for (uint32_t x = x0; x < x1; ++x) m[y * w + x] = 1;
  return m;
}

}  // namespace

KNET_TEST(rle_encode_counts_and_string) {
  // column-major M = [0 0 1 1 1 0 1] (one column of 7) -> counts [2 3 1 1]
  std::vector<uint8_t> m = {0, 0, 1, 1, 1, 0, 1};
  Rle r = encode_rowmajor(m, 7, 1);
  KNET_CHECK(r.cnts == std::vector<uint32_t>({2, 3, 1, 1}));
  const std::string s = knet::rle::to_string(r);
  Rle back;
  knet::rle::from_string(s.data(), s.size(), 7, 1, back);
  KNET_CHECK(back.cnts == r.cnts);
  // a long run with deltas against counts[i-2] (negative deltas included) round-trips
  Rle big;
  big.h = 1000;
  big.w = 1000;
  big.cnts = {12345, 7, 999000, 3, 1, 600, 34};
  const std::string bs = knet::rle::to_string(big);
  Rle big2;
  knet::rle::from_string(bs.data(), bs.size(), 1000, 1000, big2);
  KNET_CHECK(big2.cnts == big.cnts);
}

KNET_TEST(rle_decode_area_bbox) {
  const uint32_t h = 9, w = 13;
  auto m = box_mask(h, w, 2, 7, 3, 11);
  Rle r = encode_rowmajor(m, h, w);
  std::vector<uint8_t> d(h * w);
  KNET_CHECK(knet::rle::decode_rowmajor(r, d.data()));
  KNET_CHECK(d == m);
  KNET_CHECK_EQ(knet::rle::area(r), 40u);
  double bb[4];
  knet::rle::to_bbox(r, bb);
  KNET_CHECK_EQ(bb[0], 3.0);
  KNET_CHECK_EQ(bb[1], 2.0);
  KNET_CHECK_EQ(bb[2], 8.0);
  KNET_CHECK_EQ(bb[3], 5.0);
}

KNET_TEST(rle_polygon_box_and_merge) {
  // pycocotools rasterises the box polygon [0,0]-[10,10] on a 20x20 image to 10x10 pixels
  const double xy[8] = {0, 0, 0, 10, 10, 10, 10, 0};
  Rle p;
  knet::rle::from_polygon(xy, 4, 20, 20, p);
  KNET_CHECK_EQ(knet::rle::area(p), 100u);
  Rle a = encode_rowmajor(box_mask(6, 6, 0, 3, 0, 3), 6, 6), b = encode_rowmajor(box_mask(6, 6, 2, 5, 2, 5), 6, 6);
  const Rle* both[2] = {&a, &b};
  Rle u, i;
  knet::rle::merge(both, 2, false, u);
  knet::rle::merge(both, 2, true, i);
  KNET_CHECK_EQ(knet::rle::area(u), 17u);
  KNET_CHECK_EQ(knet::rle::area(i), 1u);
}

KNET_TEST(mask_iou_rle_crowd_and_packed) {
  const uint32_t h = 8, w = 8;
  auto md = box_mask(h, w, 0, 4, 0, 4), mg = box_mask(h, w, 2, 6, 2, 6);
  Rle d = encode_rowmajor(md, h, w), g = encode_rowmajor(mg, h, w);
  double db[4], gb[4];
  knet::rle::to_bbox(d, db);
  knet::rle::to_bbox(g, gb);
  KNET_CHECK_EQ(knet::rle::rle_iou(d, g, db, gb, false), 4.0 / 28.0);
  KNET_CHECK_EQ(knet::rle::rle_iou(d, g, db, gb, true), 4.0 / 16.0);  // crowd: over the detection
  std::vector<uint64_t> pd(1), pg(1);
  knet::mask_iou::pack_bits(md.data(), h * w, pd.data());
  knet::mask_iou::pack_bits(mg.data(), h * w, pg.data());
  const int64_t da = knet::mask_iou::packed_area(pd.data(), 1), ga = knet::mask_iou::packed_area(pg.data(), 1);
  double o[2];
  const uint8_t crowd[2] = {0, 1};
  std::vector<uint64_t> g2 = {pg[0], pg[0]};
  const int64_t gas[2] = {ga, ga};
  knet::mask_iou::packed_iou_rows(pd.data(), g2.data(), 2, 1, &da, gas, crowd, o, 0, 1);
  KNET_CHECK_EQ(o[0], 4.0 / 28.0);
  KNET_CHECK_EQ(o[1], 4.0 / 16.0);
}

KNET_TEST(coco_crowd_absorbs_and_ties_are_stable) {
  knet::coco::Dataset ds;
  ds.num_images = 1;
  ds.num_cats = 1;
  const uint32_t h = 20, w = 20;
  auto add_gt = [&](std::vector<uint8_t> m, bool crowd, int64_t id) {
    knet::coco::GtObj g;
    g.rle = encode_rowmajor(m, h, w);
    g.area = knet::rle::area(g.rle);
    g.crowd = crowd;
    g.id = id;
    knet::rle::to_bbox(g.rle, g.box);
    ds.gts.push_back(g);
  };
  auto add_dt = [&](std::vector<uint8_t> m, double score) {
    knet::coco::DtObj d;
    d.rle = encode_rowmajor(m, h, w);
    d.area = knet::rle::area(d.rle);
    d.score = score;
    knet::rle::to_bbox(d.rle, d.box);
    ds.dts.push_back(d);
  };
  add_gt(box_mask(h, w, 0, 20, 10, 20), true, 1);  // crowd: right half
  add_gt(box_mask(h, w, 0, 5, 0, 5), false, 2);
  add_dt(box_mask(h, w, 0, 5, 0, 5), 0.9);    // TP
  add_dt(box_mask(h, w, 0, 5, 12, 17), 0.8);  // inside the crowd: ignored
  add_dt(box_mask(h, w, 8, 12, 12, 17), 0.8); // inside the crowd: ignored
  add_dt(box_mask(h, w, 8, 12, 0, 4), 0.8);   // FP
  knet::coco::Params p;
  for (int t = 0; t < 10; ++t) p.iou_thrs.push_back(0.5 + t * 0.05);
  for (int r = 0; r <= 100; ++r) p.rec_thrs.push_back(r * 0.01);
  p.area_lo = {0};
  p.area_hi = {1e10};
  p.max_dets = {100};
  auto g = knet::coco::group(ds);
  std::vector<knet::coco::Cell> cells(1);
  knet::coco::evaluate_cats(ds, g, p, cells, 0, 1);
  KNET_CHECK(cells[0].present);
  KNET_CHECK_EQ(cells[0].num_regular_gt[0], 1);
  // flags for t = 0: TP, ignored, ignored, FP (ties keep file order)
  const auto& f = cells[0].flags;
  KNET_CHECK_EQ(f[0], 1);
  KNET_CHECK_EQ(f[1], 0);
  KNET_CHECK_EQ(f[2], 0);
  KNET_CHECK_EQ(f[3], 2);
  std::vector<double> prec(10 * 101, -1), rec(10, -1), sc(10 * 101, -1);
  knet::coco::accumulate_cats(p, 1, 1, cells, prec.data(), rec.data(), sc.data(), 0, 1);
  KNET_CHECK_EQ(rec[0], 1.0);
  KNET_CHECK_EQ(prec[0], 1.0 / (1.0 + 2.220446049250313e-16));
}

KNET_TEST(png_unfilter_all_filters) {
  // 2x2 RGB image, rows filtered with Paeth and Average, decoded by hand
  const uint8_t raw[] = {1, 10, 20, 30, 5, 5, 5,   // Sub: (10,20,30), (15,25,35)
                         4, 1, 1, 1, 2, 2, 2};     // Paeth
  uint8_t out[12];
  KNET_CHECK(knet::png::unfilter(raw, sizeof(raw), 2, 2, 3, out));
  KNET_CHECK_EQ(out[3], 15);
  KNET_CHECK_EQ(out[5], 35);
  KNET_CHECK_EQ(out[6], 11);  // up (10) + 1
  uint32_t ids[4];
  knet::png::rgb_to_id(out, 4, 3, ids);
  KNET_CHECK_EQ(ids[0], 10u + 256u * 20u + 65536u * 30u);
  const uint8_t bad[] = {9, 0, 0, 0};
  KNET_CHECK(!knet::png::unfilter(bad, sizeof(bad), 1, 1, 3, out));
}

KNET_TEST(pq_image_match_fn_fp_void) {
  // 1x10 strip: GT segment 5 on pixels 0-5, VOID 6-9; prediction 7 on 0-4, 9 on 5-9
  const uint32_t gt[10] = {5, 5, 5, 5, 5, 5, 0, 0, 0, 0};
  const uint32_t pr[10] = {7, 7, 7, 7, 7, 9, 9, 9, 9, 9};
  std::vector<knet::pq::GtSegment> gts = {{5, 1, 6.0, false}};
  std::vector<knet::pq::PredSegment> preds = {{7, 1}, {9, 1}};
  knet::pq::ImageStats st;
  knet::pq::image_stats(gt, pr, 10, gts, preds, st);
  KNET_CHECK_EQ(st.error, 0);
  KNET_CHECK_EQ(st.match_iou.size(), 1u);
  KNET_CHECK_EQ(st.match_iou[0], 5.0 / 6.0);
  KNET_CHECK(st.fn_cat.empty());
  KNET_CHECK(st.fp_cat.empty());  // segment 9 is 4/5 VOID
  std::vector<knet::pq::PredSegment> missing = {{7, 1}};
  knet::pq::ImageStats bad;
  knet::pq::image_stats(gt, pr, 10, gts, missing, bad);
  KNET_CHECK_EQ(bad.error, 1);
  KNET_CHECK_EQ(bad.bad_id, 9u);
}

KNET_TEST(semantic_histograms_reduce_zero_label) {
  const uint8_t pred[6] = {0, 1, 2, 1, 0, 7};
  const uint8_t label[6] = {0, 1, 2, 3, 255, 2};  // reduced: 255, 0, 1, 2, 255, 1
  int64_t inter[3] = {0}, pa[3] = {0}, la[3] = {0};
  knet::semantic::accumulate<uint8_t, uint8_t>(pred, label, 6, 3, 255, true, inter, pa, la);
  KNET_CHECK_EQ(la[0], 1);
  KNET_CHECK_EQ(la[1], 2);
  KNET_CHECK_EQ(la[2], 1);
  KNET_CHECK_EQ(pa[1], 2);
  KNET_CHECK_EQ(pa[2], 1);
  KNET_CHECK_EQ(inter[1], 0);
  KNET_CHECK_EQ(pa[0], 0);
}

KNET_TEST(results_json_reader) {
  std::string doc =
      "\xEF\xBB\xBF [ {\"image_id\": 3, \"category_id\": 2.0, \"score\": 0.12345, \"extra\": {\"a\": [1, {\"b\": null}], \"c\": true},"
      " \"segmentation\": {\"size\": [4, 5], \"counts\": \"a\\\\b\\u0041\"}, \"bbox\": [1, 2.5, 3e0, -4]},"
      " {\"image_id\": 4, \"category_id\": 1, \"score\": 1, \"segmentation\": [[1, 2, 3, 4, 5, 6]]} ]\n";
  std::vector<knet::coco::ResultRecord> recs;
  std::string err;
  KNET_CHECK(knet::coco::parse_results_json(doc.data(), doc.size(), recs, err));
  KNET_CHECK_EQ(recs.size(), 2u);
  KNET_CHECK_EQ(recs[0].image_id, 3);
  KNET_CHECK_EQ(recs[0].category_id, 2);
  KNET_CHECK(recs[0].cat_is_int);
  KNET_CHECK_EQ(recs[0].score, 0.12345);
  KNET_CHECK_EQ(recs[0].seg_kind, 1);
  KNET_CHECK_EQ(std::string(recs[0].counts, recs[0].counts_len), std::string("a\\bA"));
  KNET_CHECK_EQ(recs[0].box[1], 2.5);
  KNET_CHECK_EQ(recs[0].box[3], -4.0);
  KNET_CHECK_EQ(recs[1].seg_kind, 3);
  KNET_CHECK_EQ(recs[1].polygons[0].size(), 6u);
  for (const char* bad : {"[{\"image_id\": 1,", "{\"a\": 1}", "[1, 2]", "[{\"x\": tru}]", "[] x"}) {
    std::string b(bad);
    std::vector<knet::coco::ResultRecord> r;
    std::string e;
    KNET_CHECK(!knet::coco::parse_results_json(b.data(), b.size(), r, e));
    KNET_CHECK(!e.empty());
  }
}

KNET_TEST(rle_string_area_matches_decode) {
  Rle r;
  r.h = 300;
  r.w = 200;
  r.cnts = {100, 5, 290, 7, 1, 40000, 3, 19594};
  const std::string s = knet::rle::to_string(r);
  KNET_CHECK_EQ(knet::rle::string_area(s.data(), s.size()), knet::rle::area(r));
}
