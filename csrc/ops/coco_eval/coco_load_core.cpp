// Loading COCO files into the evaluator's objects: see coco_load.h.
#include "ops/coco_eval/coco_load.h"

#include <algorithm>
#include <map>
#include <memory>

#include "ops/coco_eval/parallel.h"

namespace knet {
namespace coco {

namespace {

constexpr char kEntry = '\x01';  // stands for the entry number in messages built by workers
constexpr size_t kMinBytesPerPart = size_t(4) << 20;

std::string with_entry(const std::string& msg, size_t entry) {
  std::string out;
  for (char c : msg) {
    if (c == kEntry)
      out += std::to_string(entry);
    else
      out.push_back(c);
  }
  return out;
}

std::string at(const char* before, const char* after) { return std::string(before) + kEntry + after; }

// The box polygon pycocotools uses for a result without segmentation.
std::vector<std::vector<double>> box_polygon(const double b[4]) {
  const double x1 = b[0], x2 = b[0] + b[2], y1 = b[1], y2 = b[1] + b[3];
  return {{x1, y1, x1, y2, x2, y2, x2, y1}};
}

// One result record -> detection (false: `err` with kEntry for the entry number).
// keep = false: a category that is not evaluated (pycocotools drops it after the checks).
// Per-thread buffers of the results parse.
struct Work {
  std::string scratch;
  MaskRuns runs;
  std::vector<double> ious;  // IoUs of the part's detections with their cells' ground truths
};

// IoUs of a detection given as a compressed string with the ground truths of its cell, computed
// now while the string is in cache (false: the cell has no ground truth, nothing computed).
bool cell_ious(const Dataset& ds, DtObj& o, const ObjectRecord& r, Work& wk) {
  int64_t b, e;
  ds.gt_cell(o.img, o.cat, b, e);
  if (b == e) return false;
  bool exact = false;
  for (int64_t g = b; g < e; ++g) exact = exact || ds.gts[ds.gt_by_img[g]].zero_run;
  runs_from_string(r.counts.p, r.counts.len, r.counts.escaped, r.seg_h, r.seg_w, exact, wk.runs, wk.scratch);
  o.iou_off = static_cast<int64_t>(wk.ious.size());
  for (int64_t g = b; g < e; ++g) {
    const GtObj& q = ds.gts[ds.gt_by_img[g]];
    wk.ious.push_back(mask_iou(wk.runs, ds.gt_iv.data() + q.iv_begin, static_cast<size_t>(q.iv_end - q.iv_begin) / 2, q));
  }
  return true;
}

bool dt_from_record(const Catalog& c, const Dataset& ds, ObjectRecord& r, bool use_segm, int area_mode, DtObj& o,
                    rle::Rle& mask, bool& has_mask, bool& keep, Work& wk, std::string& err) {
  std::string& scratch = wk.scratch;
  has_mask = false;
  keep = false;
  if (!r.has_image || !r.has_cat || !r.has_score) return (err = at("result ", " lacks image_id, category_id or score"), false);
  if (!r.image_is_int) return (err = at("image_id of entry ", " is not an integer"), false);
  auto ii = c.img_index.find(r.image_id);
  if (ii == c.img_index.end())
    return (err = at("result ", (" has image_id " + std::to_string(r.image_id) + ", which is not in the ground truth").c_str()),
            false);
  o.img = ii->second;
  o.score = r.score;
  const bool box_given = r.has_box && r.box_len > 0;
  if (box_given && r.box_len != 4) return (err = at("bbox of entry ", " must have 4 numbers"), false);
  if (box_given) std::copy(r.box, r.box + 4, o.box);
  if (area_mode == 1 && !box_given) return (err = at("result ", " lacks 'bbox'"), false);
  const bool need_mask = use_segm || area_mode == 0 || !box_given;
  if (need_mask) {
    const uint32_t h = static_cast<uint32_t>(c.heights[o.img]), w = static_cast<uint32_t>(c.widths[o.img]);
    if (r.seg_kind == 1 || r.seg_kind == 2) {
      if (!r.seg_size_ok) return (err = at("segmentation of entry ", " is not a valid RLE"), false);
      if (r.seg_kind == 1 && use_segm) {
        o.h = r.seg_h;
        o.w = r.seg_w;
        auto ci = r.cat_is_int ? c.cat_index.find(r.category_id) : c.cat_index.end();
        if (ci != c.cat_index.end()) o.cat = ci->second;
        if (ci != c.cat_index.end() && cell_ious(ds, o, r, wk)) {  // decoded once, now
          if (area_mode == 0) o.area = static_cast<double>(wk.runs.area);
        } else {  // no ground truth in its cell: only the area is ever needed
          if (area_mode == 0) o.area = string_area(r.counts.p, r.counts.len, r.counts.escaped, scratch);
        }
      } else if (r.seg_kind == 1) {
        const json::Str c = json::unescaped(r.counts, scratch);
        rle::from_string(c.p, c.len, r.seg_h, r.seg_w, mask);
        has_mask = true;
      } else {
        mask.h = r.seg_h;
        mask.w = r.seg_w;
        mask.cnts.swap(r.counts_list);
        has_mask = true;
      }
    } else if (r.seg_kind == 3) {
      if (r.polygons.empty() && !r.polygon_not_list) return (err = at("segmentation of entry ", " is an empty list"), false);
      if (r.polygon_not_list) return (err = at("polygon of entry ", " is not a list of numbers"), false);
      polygons_to_rle(r.polygons, h, w, mask);
      has_mask = true;
    } else if (r.seg_kind == -1) {
      return (err = at("segmentation of entry ", " is not a valid RLE"), false);
    } else if (box_given) {  // pycocotools: segmentation = the box as a polygon
      polygons_to_rle(box_polygon(o.box), h, w, mask);
      has_mask = true;
    } else {
      return (err = at("result ", " has neither 'segmentation' nor 'bbox'"), false);
    }
    if (has_mask) {
      if (area_mode == 0) o.area = static_cast<double>(rle::area(mask));
      if (!use_segm && !box_given) rle::to_bbox(mask, o.box);
      if (use_segm) {
        o.h = mask.h;
        o.w = mask.w;
      } else {
        has_mask = false;
      }
    }
  }
  if (area_mode == 1 || area_mode == 2) o.area = o.box[2] * o.box[3];
  if (!r.cat_is_int) return true;
  auto ci = c.cat_index.find(r.category_id);
  if (ci == c.cat_index.end()) return true;
  o.cat = ci->second;
  keep = true;
  return true;
}

// One speculative part of a results file.
struct Part {
  std::vector<DtObj> dts;
  std::vector<rle::Rle> rles;
  Work work;
  size_t count = 0;   // records parsed
  size_t stop = 0;    // index of the part whose start this one reached (parts.size(): the end)
  bool failed = false;
  bool json_error = false;
  std::string error;  // kEntry = entry number (count at failure, plus the parts before)
};

void parse_part(const ResultsScanner& sc, const Catalog& c, const Dataset& ds, bool use_segm, int area_mode,
                const std::vector<size_t>& starts, size_t self, Part& part) {
  const size_t n = starts.size();
  size_t at_off = starts[self], next_part = self + 1;
  ObjectRecord r;
  while (true) {
    while (next_part < n && starts[next_part] < at_off) ++next_part;
    if (next_part < n && starts[next_part] == at_off) {
      part.stop = next_part;
      return;
    }
    r = ObjectRecord();
    size_t next = 0;
    bool last = false, not_object = false;
    std::string err;
    if (!sc.record(at_off, r, next, last, not_object, err)) {
      part.failed = true;
      part.json_error = !not_object;
      part.error = not_object ? at("entry ", " is not an object") : err;
      return;
    }
    DtObj o;
    rle::Rle mask;
    bool has_mask = false, keep = false;
    if (!dt_from_record(c, ds, r, use_segm, area_mode, o, mask, has_mask, keep, part.work, part.error)) {
      part.failed = true;
      return;
    }
    if (keep) {
      if (has_mask) {
        o.rle = static_cast<int32_t>(part.rles.size());
        part.rles.push_back(std::move(mask));
      }
      part.dts.push_back(o);
    }
    ++part.count;
    if (last) {
      part.stop = n;
      return;
    }
    at_off = next;
  }
}

}  // namespace

void Catalog::index() {
  img_index.clear();
  cat_index.clear();
  for (size_t i = 0; i < img_ids.size(); ++i) img_index[img_ids[i]] = static_cast<int32_t>(i);
  for (size_t i = 0; i < cat_ids.size(); ++i) cat_index[cat_ids[i]] = static_cast<int32_t>(i);
}

Catalog catalog_from(const GtFile& f) {
  Catalog c;
  std::map<int64_t, std::pair<int64_t, int64_t>> imgs;
  for (size_t i = 0; i < f.img_ids.size(); ++i) imgs[f.img_ids[i]] = {f.heights[i], f.widths[i]};
  for (const auto& [id, hw] : imgs) {
    c.img_ids.push_back(id);
    c.heights.push_back(hw.first);
    c.widths.push_back(hw.second);
  }
  std::map<int64_t, std::string> cats;
  for (size_t i = 0; i < f.cat_ids.size(); ++i) cats[f.cat_ids[i]] = f.cat_names[i];
  for (const auto& [id, name] : cats) {
    c.cat_ids.push_back(id);
    c.cat_names.push_back(name);
  }
  c.index();
  return c;
}

void polygons_to_rle(const std::vector<std::vector<double>>& polys, uint32_t h, uint32_t w, rle::Rle& out) {
  std::vector<rle::Rle> parts(polys.size());
  std::vector<const rle::Rle*> ptrs;
  for (size_t j = 0; j < parts.size(); ++j) {
    rle::from_polygon(polys[j].data(), polys[j].size() / 2, h, w, parts[j]);
    ptrs.push_back(&parts[j]);
  }
  rle::merge(ptrs.data(), ptrs.size(), false, out);
}

bool gts_from_records(const Catalog& c, std::vector<ObjectRecord>& anns, bool use_segm, Dataset& ds,
                      std::string& error) {
  std::vector<GtObj> objs;
  std::vector<ObjectRecord*> recs;
  objs.reserve(anns.size());
  recs.reserve(anns.size());
  for (size_t j = 0; j < anns.size(); ++j) {
    ObjectRecord& r = anns[j];
    const std::string a = "annotation " + std::to_string(j);
    if (r.seg_kind == -2) return (error = a + " is not an object", false);
    if (!r.has_image || !r.has_cat) return (error = a + " lacks image_id or category_id", false);
    if (!r.image_is_int) return (error = "image_id of entry " + std::to_string(j) + " is not an integer", false);
    if (!r.cat_is_int) return (error = "category_id of entry " + std::to_string(j) + " is not an integer", false);
    auto ii = c.img_index.find(r.image_id);
    auto ci = c.cat_index.find(r.category_id);
    if (ii == c.img_index.end() || ci == c.cat_index.end()) continue;
    GtObj o;
    o.img = ii->second;
    o.cat = ci->second;
    if (!r.has_area) return (error = a + " lacks 'area'", false);
    o.area = r.area;
    o.crowd = r.crowd;
    if (r.has_id && !r.id_is_int) return (error = "id of entry " + std::to_string(j) + " is not an integer", false);
    o.id = r.has_id ? r.id : static_cast<int64_t>(j + 1);
    if (use_segm) {
      const std::string e = "segmentation of entry " + std::to_string(j);
      if (r.seg_kind == 0) return (error = a + " lacks 'segmentation'", false);
      if (r.seg_kind == -1) return (error = e + " is not a valid RLE", false);
      if ((r.seg_kind == 1 || r.seg_kind == 2) && !r.seg_size_ok) return (error = e + " is not a valid RLE", false);
      if (r.seg_kind == 3 && r.polygon_not_list)
        return (error = "polygon of entry " + std::to_string(j) + " is not a list of numbers", false);
      if (r.seg_kind == 3 && r.polygons.empty()) return (error = e + " is an empty list", false);
    } else {
      if (!(r.has_box && r.box_len > 0)) return (error = a + " lacks 'bbox'", false);
      if (r.box_len != 4) return (error = "bbox of entry " + std::to_string(j) + " must have 4 numbers", false);
      std::copy(r.box, r.box + 4, o.box);
    }
    objs.push_back(std::move(o));
    recs.push_back(&r);
  }
  if (use_segm) {
    parallel_for(0, static_cast<int64_t>(objs.size()), 256, [&](int64_t b, int64_t e) {
      std::string scratch;
      for (int64_t j = b; j < e; ++j) {
        ObjectRecord& r = *recs[j];
        rle::Rle& m = objs[j].rle;
        if (r.seg_kind == 1) {
          const json::Str c = json::unescaped(r.counts, scratch);
          rle::from_string(c.p, c.len, r.seg_h, r.seg_w, m);
        } else if (r.seg_kind == 2) {
          m.h = r.seg_h;
          m.w = r.seg_w;
          m.cnts.swap(r.counts_list);
        } else {
          polygons_to_rle(r.polygons, static_cast<uint32_t>(c.heights[objs[j].img]),
                          static_cast<uint32_t>(c.widths[objs[j].img]), m);
          std::vector<std::vector<double>>().swap(r.polygons);
        }
      }
    });
  }
  for (auto& o : objs) ds.gts.push_back(std::move(o));
  prepare_gt_masks(ds, use_segm);
  return true;
}

bool load_results(const ResultsScanner& sc, const Catalog& c, bool use_segm, int area_mode, Dataset& ds,
                  std::string& error, bool& json_error) {
  size_t first = 0;
  bool empty = false;
  json_error = false;
  if (!sc.open(first, empty, error)) {
    json_error = error.rfind("must hold", 0) != 0;
    return false;
  }
  if (empty) return true;
  if (area_mode == 3) {  // the first result decides (errors are reported by the parts below)
    ObjectRecord r;
    size_t next;
    bool last, not_object;
    std::string err;
    area_mode = (sc.record(first, r, next, last, not_object, err) && r.has_box && r.box_len > 0) ? 1 : 0;
  }
  if (area_mode < 0 || area_mode > 2) return (error = "area_mode must be 0, 1, 2 or 3", false);
  std::vector<size_t> starts = {first};
  const size_t parts_wanted =
      std::max<size_t>(1, std::min<size_t>(static_cast<size_t>(num_threads()), sc.size() / kMinBytesPerPart));
  for (size_t s = 1; s < parts_wanted; ++s) {
    const size_t g = sc.guess_record_start(std::max(sc.size() / parts_wanted * s, starts.back() + 1));
    if (g == std::string::npos) break;
    starts.push_back(g);
  }
  std::vector<Part> parts(starts.size());
  parallel_for(0, static_cast<int64_t>(starts.size()), 1, [&](int64_t b, int64_t e) {
    for (int64_t s = b; s < e; ++s) parse_part(sc, c, ds, use_segm, area_mode, starts, static_cast<size_t>(s), parts[s]);
  });
  // the chain of parts that the parse from the file's start confirmed
  std::vector<size_t> chain;
  size_t entries = 0;
  for (size_t s = 0; s < parts.size(); s = parts[s].stop) {
    Part& pt = parts[s];
    if (pt.failed) {
      error = with_entry(pt.error, entries + pt.count);
      json_error = pt.json_error;
      return false;
    }
    chain.push_back(s);
    entries += pt.count;
  }
  size_t total = ds.dts.size();
  for (size_t s : chain) total += parts[s].dts.size();
  ds.dts.reserve(total);
  for (size_t s : chain) {
    Part& pt = parts[s];
    const int32_t off = static_cast<int32_t>(ds.dt_rles.size());
    const int64_t iou_off = static_cast<int64_t>(ds.dt_ious.size());
    for (DtObj& o : pt.dts) {
      if (o.rle >= 0) o.rle += off;
      if (o.iou_off >= 0) o.iou_off += iou_off;
      o.str = nullptr;  // never decoded later: IoUs computed, or no ground truth in its cell
      ds.dts.push_back(o);
    }
    ds.dt_ious.insert(ds.dt_ious.end(), pt.work.ious.begin(), pt.work.ious.end());
    for (auto& m : pt.rles) ds.dt_rles.push_back(std::move(m));
    std::vector<DtObj>().swap(pt.dts);
  }
  return true;
}

}  // namespace coco
}  // namespace knet
