// Tests of the torch-free evaluation cores: RLE codec, mask IoU, COCO matching/accumulation,
// PNG unfiltering, PQ per image, mIoU histograms. Reference values follow pycocotools,
// panopticapi and mmseg (the Python tests compare against those tools on random data).
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include <cstdlib>

#include "ops/coco_eval/coco_eval_core.h"
#include "ops/coco_eval/coco_load.h"
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
    ds.gts.push_back(g);
  };
  auto add_dt = [&](std::vector<uint8_t> m, double score) {
    knet::coco::DtObj d;
    d.rle = static_cast<int32_t>(ds.dt_rles.size());
    ds.dt_rles.push_back(encode_rowmajor(m, h, w));
    d.area = knet::rle::area(ds.dt_rles.back());
    d.score = score;
    d.h = h;
    d.w = w;
    ds.dts.push_back(d);
  };
  add_gt(box_mask(h, w, 0, 20, 10, 20), true, 1);  // crowd: right half
  add_gt(box_mask(h, w, 0, 5, 0, 5), false, 2);
  add_dt(box_mask(h, w, 0, 5, 0, 5), 0.9);     // TP
  add_dt(box_mask(h, w, 0, 5, 12, 17), 0.8);   // inside the crowd: ignored
  add_dt(box_mask(h, w, 8, 12, 12, 17), 0.8);  // inside the crowd: ignored
  add_dt(box_mask(h, w, 8, 12, 0, 4), 0.8);    // FP
  knet::coco::prepare_gt_masks(ds);
  knet::coco::Params p;
  for (int t = 0; t < 10; ++t) p.iou_thrs.push_back(0.5 + t * 0.05);
  for (int r = 0; r <= 100; ++r) p.rec_thrs.push_back(r * 0.01);
  p.area_lo = {0};
  p.area_hi = {1e10};
  p.max_dets = {1, 100};
  const auto index = knet::coco::build_index(ds);
  std::vector<double> prec(10 * 101 * 2, -1), rec(10 * 2, -1), sc(10 * 101 * 2, -1);
  knet::coco::evaluate_cats(ds, index, p, prec.data(), rec.data(), sc.data(), 0, 1);
  // maxDets 100 (m = 1): TP, ignored, ignored, FP -> recall 1, precision 1 up to recall 1
  KNET_CHECK_EQ(rec[1], 1.0);
  KNET_CHECK_EQ(prec[1], 1.0 / (1.0 + 2.220446049250313e-16));
  KNET_CHECK_EQ(prec[2 * 100 + 1], 1.0 / (1.0 + 2.220446049250313e-16));
  KNET_CHECK_EQ(sc[2 * 100 + 1], 0.9);
  // maxDets 1 (m = 0): only the 0.9 detection
  KNET_CHECK_EQ(rec[0], 1.0);
}

KNET_TEST(coco_accumulate_interpolates_from_the_right) {
  // one image, one GT per detection slot: scores 0.9 (FP), 0.8 (TP), 0.7 (TP), npig = 4
  knet::coco::Dataset ds;
  ds.num_images = 1;
  ds.num_cats = 1;
  const uint32_t h = 40, w = 40;
  for (int g = 0; g < 4; ++g) {
    knet::coco::GtObj o;
    o.rle = encode_rowmajor(box_mask(h, w, 0, 5, g * 10, g * 10 + 5), h, w);
    o.area = 25;
    o.id = g + 1;
    ds.gts.push_back(o);
  }
  const uint32_t x0[3] = {32, 0, 10};  // the first one hits nothing
  const double score[3] = {0.9, 0.8, 0.7};
  for (int d = 0; d < 3; ++d) {
    knet::coco::DtObj o;
    o.rle = d;
    ds.dt_rles.push_back(encode_rowmajor(box_mask(h, w, 30, 35, x0[d] == 32 ? 30 : x0[d], (x0[d] == 32 ? 30 : x0[d]) + 5), h, w));
    if (d > 0) ds.dt_rles.back() = encode_rowmajor(box_mask(h, w, 0, 5, x0[d], x0[d] + 5), h, w);
    o.area = 25;
    o.score = score[d];
    o.h = h;
    o.w = w;
    ds.dts.push_back(o);
  }
  knet::coco::prepare_gt_masks(ds);
  knet::coco::Params p;
  p.iou_thrs = {0.5};
  for (int r = 0; r <= 100; ++r) p.rec_thrs.push_back(r * 0.01);
  p.area_lo = {0};
  p.area_hi = {1e10};
  p.max_dets = {100};
  const auto index = knet::coco::build_index(ds);
  std::vector<double> prec(101, -1), rec(1, -1), sc(101, -1);
  knet::coco::evaluate_cats(ds, index, p, prec.data(), rec.data(), sc.data(), 0, 1);
  const double eps = 2.220446049250313e-16;
  KNET_CHECK_EQ(rec[0], 0.5);
  // pr = [0, 1/2, 2/3] -> from the right [2/3, 2/3, 2/3]; recall 0..0.25 -> index of the first TP
  KNET_CHECK_EQ(prec[0], 2.0 / (1.0 + 2.0 + eps));
  KNET_CHECK_EQ(sc[0], 0.9);   // recall 0: index 0
  KNET_CHECK_EQ(sc[10], 0.8);  // recall 0.1 <= 1/4: the first TP
  KNET_CHECK_EQ(sc[50], 0.7);
  KNET_CHECK_EQ(prec[51], 0.0);  // past the last recall
  KNET_CHECK_EQ(sc[51], 0.0);
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
  knet::coco::ResultsScanner sc(doc.data(), doc.size());
  size_t at = 0, next = 0;
  bool empty = true, last = false, not_object = false;
  std::string err;
  KNET_CHECK(sc.open(at, empty, err));
  KNET_CHECK(!empty);
  knet::coco::ObjectRecord r0, r1;
  KNET_CHECK(sc.record(at, r0, next, last, not_object, err));
  KNET_CHECK(!last);
  KNET_CHECK_EQ(r0.image_id, 3);
  KNET_CHECK_EQ(r0.category_id, 2);
  KNET_CHECK(r0.cat_is_int);
  KNET_CHECK_EQ(r0.score, 0.12345);
  KNET_CHECK_EQ(r0.seg_kind, 1);
  KNET_CHECK(r0.counts.escaped);
  std::string counts;
  knet::coco::json::unescape(r0.counts.p, r0.counts.len, counts);
  KNET_CHECK_EQ(counts, std::string("a\\bA"));
  KNET_CHECK_EQ(r0.box[1], 2.5);
  KNET_CHECK_EQ(r0.box[3], -4.0);
  KNET_CHECK(sc.record(next, r1, next, last, not_object, err));
  KNET_CHECK(last);
  KNET_CHECK_EQ(r1.seg_kind, 3);
  KNET_CHECK_EQ(r1.polygons[0].size(), 6u);
  for (const char* bad : {"[{\"image_id\": 1,", "{\"a\": 1}", "[1, 2]", "[{\"x\": tru}]", "[{} ] x", "[{\"a\": \"\\q\"}]"}) {
    std::string b(bad);
    knet::coco::ResultsScanner s2(b.data(), b.size());
    size_t f = 0, n2 = 0;
    bool e2 = false, l2 = false, no = false;
    std::string er;
    knet::coco::ObjectRecord r;
    const bool ok = s2.open(f, e2, er) && (e2 || s2.record(f, r, n2, l2, no, er));
    KNET_CHECK(!ok);
    KNET_CHECK(!er.empty() || no);
  }
}

// A results file cut into parts at guessed record starts: a guess inside a string (or a nested
// list of objects) must not change the records or the entry numbers of errors.
KNET_TEST(results_parts_verify_guessed_starts) {
  knet::coco::Catalog cat;
  cat.img_ids = {1, 2};
  cat.heights = {10, 10};
  cat.widths = {10, 10};
  cat.cat_ids = {1};
  cat.cat_names = {"a"};
  cat.index();
  std::string doc = "[";
  const int n = 150000;
  for (int i = 0; i < n; ++i) {
    if (i) doc += ",\n";
    doc += "{\"image_id\": " + std::to_string(1 + i % 2) + ", \"category_id\": 1, \"score\": 0." + std::to_string(i % 97 + 1);
    // decoys: the part boundary pattern inside a string and inside a nested list of objects
    if (i % 5 == 0) doc += ", \"note\": \"} , {\"";
    if (i % 7 == 0) doc += ", \"extra\": [{\"x\": 1}, {\"y\": 2}]";
    doc += ", \"segmentation\": {\"size\": [10, 10], \"counts\": \"" + std::string(i % 3 ? "52" : "0T1") + "\"}}";
  }
  doc += "]";
  for (int threads : {1, 2, 3, 4, 5, 6}) {
    setenv("KNET_NUM_THREADS", std::to_string(threads).c_str(), 1);
    knet::coco::Dataset ds;
    ds.num_images = 2;
    ds.num_cats = 1;
    knet::coco::ResultsScanner sc(doc.data(), doc.size());
    std::string err;
    bool json_error = false;
    KNET_CHECK(knet::coco::load_results(sc, cat, true, 0, ds, err, json_error));
    KNET_CHECK_EQ(ds.dts.size(), static_cast<size_t>(n));
    bool order_ok = true;
    for (int i = 0; i < n; ++i) order_ok = order_ok && ds.dts[i].img == i % 2;
    KNET_CHECK(order_ok);
    KNET_CHECK_EQ(ds.dts[4].area, 2.0);  // "52": counts [5, 2] -> area 2
    // an unknown image late in the file: the entry number counts every part before it
    std::string bad = doc;
    const size_t pos = bad.rfind("{\"image_id\": 2, ");
    bad[pos + 13] = '7';
    knet::coco::Dataset ds2;
    knet::coco::ResultsScanner sc2(bad.data(), bad.size());
    KNET_CHECK(!knet::coco::load_results(sc2, cat, true, 0, ds2, err, json_error));
    KNET_CHECK_EQ(err, std::string("result 149999 has image_id 7, which is not in the ground truth"));
  }
  unsetenv("KNET_NUM_THREADS");
}

KNET_TEST(rle_bbox_as_pycocotools_2_0_11) {
  // zero-length foreground runs do not widen the box (older maskApi widened it at their ends)
  Rle r;
  r.h = 10;
  r.w = 10;
  r.cnts = {5, 0, 18, 4, 30, 0, 20, 2, 21};  // runs [23, 27) in column 2, [77, 79) in column 7; empty at 5, 57
  double bb[4];
  knet::rle::to_bbox(r, bb);
  KNET_CHECK_EQ(bb[0], 2.0);
  KNET_CHECK_EQ(bb[1], 3.0);
  KNET_CHECK_EQ(bb[2], 6.0);
  KNET_CHECK_EQ(bb[3], 6.0);
  // a run crossing a column spans every row; no counts / one count: zeros
  r.cnts = {8, 4, 88};
  knet::rle::to_bbox(r, bb);
  KNET_CHECK_EQ(bb[1], 0.0);
  KNET_CHECK_EQ(bb[3], 10.0);
  r.cnts = {100};
  knet::rle::to_bbox(r, bb);
  KNET_CHECK_EQ(bb[2], 0.0);
  // the same box from mask_iou's one-pass decoder and from the string form
  const std::string s = knet::rle::to_string(Rle{10, 10, {5, 0, 18, 4, 30, 0, 20, 2, 21}});
  std::vector<uint32_t> iv(16);
  knet::mask_iou::RunMask m;
  knet::mask_iou::runs_from_string(s.data(), s.size(), 10, 10, iv.data(), m);
  KNET_CHECK_EQ(m.box[0], 2.0);
  KNET_CHECK_EQ(m.box[3], 6.0);
  KNET_CHECK_EQ(m.area, 6u);
  size_t count = knet::rle::for_each_count(s.data(), s.size(), [](uint32_t) {});
  KNET_CHECK_EQ(count, 9u);
}

KNET_TEST(rle_string_area_matches_decode) {
  Rle r;
  r.h = 300;
  r.w = 200;
  r.cnts = {100, 5, 290, 7, 1, 40000, 3, 19594};
  const std::string s = knet::rle::to_string(r);
  KNET_CHECK_EQ(knet::rle::string_area(s.data(), s.size()), knet::rle::area(r));
}
