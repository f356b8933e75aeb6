// pybind11 binding of the COCO evaluation core: knet._C.CocoEvalCore.
// Python side: knet/evaluation/coco.py (loading rules, summarize with numpy).
//
// Objects are read from Python dicts with the GIL held (fields + pointers to the RLE strings /
// polygon coordinates), then decoded and evaluated without the GIL on at::parallel_for threads.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <fstream>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "knet/bindings.h"
#include "ops/coco_eval/parallel.h"
#include "ops/coco_eval/results_json.h"
#include "ops/coco_eval/coco_eval_core.h"
#include "ops/rle/rle_py.h"

namespace py = pybind11;
using knet::rle::Rle;

namespace {

// A segmentation waiting to be decoded off the GIL.
struct PendingSegm {
  enum Kind { kNone, kString, kCounts, kPolygons } kind = kNone;
  const char* str = nullptr;  // borrowed from a live Python str/bytes
  size_t len = 0;
  uint32_t h = 0, w = 0;
  std::vector<uint32_t> counts;
  std::vector<std::vector<double>> polys;
};

double get_double(PyObject* v, const char* what, size_t idx) {
  const double x = PyFloat_AsDouble(v);
  if (x == -1.0 && PyErr_Occurred()) {
    PyErr_Clear();
    throw py::value_error(std::string(what) + " of entry " + std::to_string(idx) + " is not a number");
  }
  return x;
}

int64_t get_int(PyObject* v, const char* what, size_t idx) {
  if (PyFloat_Check(v)) {  // ids written as 12.0 by some tools
    const double d = PyFloat_AsDouble(v);
    if (d != static_cast<double>(static_cast<int64_t>(d)))
      throw py::value_error(std::string(what) + " of entry " + std::to_string(idx) + " is not an integer");
    return static_cast<int64_t>(d);
  }
  const long long x = PyLong_AsLongLong(v);
  if (x == -1 && PyErr_Occurred()) {
    PyErr_Clear();
    throw py::value_error(std::string(what) + " of entry " + std::to_string(idx) + " is not an integer");
  }
  return x;
}

bool read_box(PyObject* v, double box[4], size_t idx) {
  if (v == nullptr || !PySequence_Check(v)) return false;
  py::sequence s = py::reinterpret_borrow<py::sequence>(v);
  if (py::len(s) == 0) return false;
  if (py::len(s) != 4) throw py::value_error("bbox of entry " + std::to_string(idx) + " must have 4 numbers");
  for (int j = 0; j < 4; ++j) box[j] = get_double(py::object(s[j]).ptr(), "bbox", idx);
  return true;
}

void read_segm(PyObject* seg, uint32_t h, uint32_t w, size_t idx, PendingSegm& out) {
  if (PyDict_Check(seg)) {
    PyObject* size = PyDict_GetItemString(seg, "size");
    PyObject* counts = PyDict_GetItemString(seg, "counts");
    if (size == nullptr || counts == nullptr || !PySequence_Check(size) || PySequence_Size(size) != 2)
      throw py::value_error("segmentation of entry " + std::to_string(idx) + " is not a valid RLE");
    py::sequence sz = py::reinterpret_borrow<py::sequence>(size);
    out.h = static_cast<uint32_t>(get_int(py::object(sz[0]).ptr(), "RLE size", idx));
    out.w = static_cast<uint32_t>(get_int(py::object(sz[1]).ptr(), "RLE size", idx));
    if (PyUnicode_Check(counts)) {
      Py_ssize_t len = 0;
      out.str = PyUnicode_AsUTF8AndSize(counts, &len);
      if (out.str == nullptr) throw py::error_already_set();
      out.len = static_cast<size_t>(len);
      out.kind = PendingSegm::kString;
    } else if (PyBytes_Check(counts)) {
      char* s = nullptr;
      Py_ssize_t len = 0;
      PyBytes_AsStringAndSize(counts, &s, &len);
      out.str = s;
      out.len = static_cast<size_t>(len);
      out.kind = PendingSegm::kString;
    } else if (PyList_Check(counts) || PyTuple_Check(counts)) {
      py::sequence s = py::reinterpret_borrow<py::sequence>(counts);
      out.counts.resize(py::len(s));
      for (size_t j = 0; j < out.counts.size(); ++j)
        out.counts[j] = static_cast<uint32_t>(get_int(py::object(s[j]).ptr(), "RLE counts", idx));
      out.kind = PendingSegm::kCounts;
    } else {
      throw py::value_error("segmentation counts of entry " + std::to_string(idx) + " must be a string or a list");
    }
  } else if (PyList_Check(seg) || PyTuple_Check(seg)) {
    py::sequence polys = py::reinterpret_borrow<py::sequence>(seg);
    if (py::len(polys) == 0) throw py::value_error("segmentation of entry " + std::to_string(idx) + " is an empty list");
    out.polys.resize(py::len(polys));
    for (size_t j = 0; j < out.polys.size(); ++j) {
      py::object pj = polys[j];
      if (!PySequence_Check(pj.ptr()))
        throw py::value_error("polygon of entry " + std::to_string(idx) + " is not a list of numbers");
      py::sequence p = py::reinterpret_borrow<py::sequence>(pj);
      out.polys[j].resize(py::len(p));
      for (size_t q = 0; q < out.polys[j].size(); ++q)
        out.polys[j][q] = get_double(py::object(p[q]).ptr(), "polygon coordinate", idx);
    }
    out.h = h;
    out.w = w;
    out.kind = PendingSegm::kPolygons;
  } else {
    throw py::value_error("segmentation of entry " + std::to_string(idx) + " must be a polygon list or an RLE dict");
  }
}

void decode_pending(PendingSegm& p, Rle& out) {
  switch (p.kind) {
    case PendingSegm::kString:
      knet::rle::from_string(p.str, p.len, p.h, p.w, out);
      break;
    case PendingSegm::kCounts:
      out.h = p.h;
      out.w = p.w;
      out.cnts.swap(p.counts);
      break;
    case PendingSegm::kPolygons: {
      std::vector<Rle> parts(p.polys.size());
      std::vector<const Rle*> ptrs;
      for (size_t j = 0; j < parts.size(); ++j) {
        knet::rle::from_polygon(p.polys[j].data(), p.polys[j].size() / 2, p.h, p.w, parts[j]);
        ptrs.push_back(&parts[j]);
      }
      knet::rle::merge(ptrs.data(), ptrs.size(), false, out);
      std::vector<std::vector<double>>().swap(p.polys);
      break;
    }
    case PendingSegm::kNone:
      break;
  }
}

class CocoEvalCore {
 public:
  // img_ids / cat_ids sorted unique; heights/widths per image (for polygons). use_segm: IoU type.
  CocoEvalCore(std::vector<int64_t> img_ids, std::vector<int64_t> heights, std::vector<int64_t> widths,
               std::vector<int64_t> cat_ids, bool use_segm)
      : img_ids_(std::move(img_ids)), heights_(std::move(heights)), widths_(std::move(widths)),
        cat_ids_(std::move(cat_ids)), use_segm_(use_segm) {
    for (size_t i = 0; i < img_ids_.size(); ++i) img_index_[img_ids_[i]] = static_cast<int32_t>(i);
    for (size_t i = 0; i < cat_ids_.size(); ++i) cat_index_[cat_ids_[i]] = static_cast<int32_t>(i);
    ds_.num_images = static_cast<int32_t>(img_ids_.size());
    ds_.num_cats = static_cast<int32_t>(cat_ids_.size());
  }

  // Ground-truth annotations (COCO "annotations" list). Unknown images/categories are skipped,
  // as pycocotools' getAnnIds(imgIds, catIds) does.
  void add_gts(py::sequence anns) {
    const size_t n = py::len(anns);
    std::vector<PendingSegm> pending;
    std::vector<knet::coco::GtObj> objs;
    pending.reserve(n);
    objs.reserve(n);
    for (size_t j = 0; j < n; ++j) {
      py::object a = anns[j];
      PyObject* d = a.ptr();
      if (!PyDict_Check(d)) throw py::value_error("annotation " + std::to_string(j) + " is not an object");
      PyObject* img = PyDict_GetItemString(d, "image_id");
      PyObject* cat = PyDict_GetItemString(d, "category_id");
      if (img == nullptr || cat == nullptr)
        throw py::value_error("annotation " + std::to_string(j) + " lacks image_id or category_id");
      auto ii = img_index_.find(get_int(img, "image_id", j));
      auto ci = cat_index_.find(get_int(cat, "category_id", j));
      if (ii == img_index_.end() || ci == cat_index_.end()) continue;
      knet::coco::GtObj o;
      o.img = ii->second;
      o.cat = ci->second;
      PyObject* area = PyDict_GetItemString(d, "area");
      if (area == nullptr) throw py::value_error("annotation " + std::to_string(j) + " lacks 'area'");
      o.area = get_double(area, "area", j);
      PyObject* crowd = PyDict_GetItemString(d, "iscrowd");
      if (crowd != nullptr) {
        const int t = PyObject_IsTrue(crowd);
        if (t < 0) throw py::error_already_set();
        o.crowd = t == 1;
      }
      PyObject* id = PyDict_GetItemString(d, "id");
      o.id = id ? get_int(id, "id", j) : static_cast<int64_t>(j + 1);
      PendingSegm ps;
      if (use_segm_) {
        PyObject* seg = PyDict_GetItemString(d, "segmentation");
        if (seg == nullptr) throw py::value_error("annotation " + std::to_string(j) + " lacks 'segmentation'");
        read_segm(seg, static_cast<uint32_t>(heights_[o.img]), static_cast<uint32_t>(widths_[o.img]), j, ps);
      } else if (!read_box(PyDict_GetItemString(d, "bbox"), o.box, j)) {
        throw py::value_error("annotation " + std::to_string(j) + " lacks 'bbox'");
      }
      objs.push_back(std::move(o));
      pending.push_back(std::move(ps));
    }
    finish(objs, pending, ds_.gts, nullptr);
  }

  // Results. area_mode: 0 = mask area (knet default for segm), 1 = area of the given box w*h
  // (bbox field required; pycocotools' branch when the first result has a bbox), 2 = area of the
  // given box or, when absent, of the mask's box (knet default for bbox). Image ids must be known.
  void add_dts(py::sequence anns, int area_mode) {
    const size_t n = py::len(anns);
    std::vector<PendingSegm> pending;
    std::vector<knet::coco::DtObj> objs;
    std::vector<uint8_t> has_box;
    pending.reserve(n);
    objs.reserve(n);
    has_box.reserve(n);
    for (size_t j = 0; j < n; ++j) {
      py::object a = anns[j];
      PyObject* d = a.ptr();
      if (!PyDict_Check(d)) throw py::value_error("result " + std::to_string(j) + " is not an object");
      PyObject* img = PyDict_GetItemString(d, "image_id");
      PyObject* cat = PyDict_GetItemString(d, "category_id");
      PyObject* score = PyDict_GetItemString(d, "score");
      if (img == nullptr || cat == nullptr || score == nullptr)
        throw py::value_error("result " + std::to_string(j) + " lacks image_id, category_id or score");
      const int64_t img_id = get_int(img, "image_id", j);
      auto ii = img_index_.find(img_id);
      if (ii == img_index_.end())
        throw py::value_error("result " + std::to_string(j) + " has image_id " + std::to_string(img_id) +
                              ", which is not in the ground truth");
      auto ci = cat_index_.find(get_int(cat, "category_id", j));
      knet::coco::DtObj o;
      o.img = ii->second;
      o.score = get_double(score, "score", j);
      const bool box_given = read_box(PyDict_GetItemString(d, "bbox"), o.box, j);
      if (area_mode == 1 && !box_given) throw py::value_error("result " + std::to_string(j) + " lacks 'bbox'");
      PendingSegm ps;
      PyObject* seg = PyDict_GetItemString(d, "segmentation");
      const bool need_rle = use_segm_ || area_mode == 0 || !box_given;
      if (area_mode < 0 || area_mode > 2) throw py::value_error("area_mode must be 0, 1 or 2");
      if (need_rle) {
        const uint32_t h = static_cast<uint32_t>(heights_[o.img]), w = static_cast<uint32_t>(widths_[o.img]);
        if (seg != nullptr) {
          read_segm(seg, h, w, j, ps);
        } else if (box_given) {  // pycocotools: segmentation = the box as a polygon
          const double x1 = o.box[0], x2 = o.box[0] + o.box[2], y1 = o.box[1], y2 = o.box[1] + o.box[3];
          ps.kind = PendingSegm::kPolygons;
          ps.h = h;
          ps.w = w;
          ps.polys = {{x1, y1, x1, y2, x2, y2, x2, y1}};
        } else {
          throw py::value_error("result " + std::to_string(j) + " has neither 'segmentation' nor 'bbox'");
        }
      }
      if (area_mode == 1) o.area = o.box[2] * o.box[3];
      if (ci == cat_index_.end()) continue;  // category not evaluated (pycocotools drops it)
      o.cat = ci->second;
      objs.push_back(std::move(o));
      pending.push_back(std::move(ps));
      has_box.push_back(box_given);
    }
    finish(objs, pending, ds_.dts, &has_box, area_mode);
  }

  // A results file read by the C++ JSON reader (no Python objects per detection). area_mode as
  // add_dts, plus 3 = pycocotools' first-entry rule (1 if the first result has a bbox, else 0).
  void add_dts_file(const std::string& path, int area_mode) {
    // the buffer stays alive (in bufs_) until this object dies: lazy RLE strings point into it
    bufs_.push_back(std::make_unique<std::string>());
    std::string& buf = *bufs_.back();
    {
      std::ifstream f(path, std::ios::binary | std::ios::ate);
      if (!f) throw py::value_error("cannot open " + path);
      const std::streamsize size = f.tellg();
      f.seekg(0);
      buf.resize(static_cast<size_t>(size));
      if (size > 0 && !f.read(&buf[0], size)) throw py::value_error("cannot read " + path);
    }
    std::vector<knet::coco::ResultRecord> recs;
    std::string err;
    bool ok;
    {
      py::gil_scoped_release release;
      ok = knet::coco::parse_results_json(buf.data(), buf.size(), recs, err);
    }
    if (!ok) {
      if (err.rfind("must hold", 0) == 0 || err.rfind("entry", 0) == 0) throw py::value_error(err);
      throw py::value_error("not valid JSON (" + err + ")");
    }
    if (area_mode == 3) area_mode = (!recs.empty() && recs[0].has_box && recs[0].box_len > 0) ? 1 : 0;
    if (area_mode < 0 || area_mode > 2) throw py::value_error("area_mode must be 0, 1, 2 or 3");
    std::vector<PendingSegm> pending;
    std::vector<knet::coco::DtObj> objs;
    std::vector<uint8_t> has_box;
    pending.reserve(recs.size());
    objs.reserve(recs.size());
    has_box.reserve(recs.size());
    for (size_t j = 0; j < recs.size(); ++j) {
      knet::coco::ResultRecord& r = recs[j];
      const std::string at = "result " + std::to_string(j);
      if (!r.has_image || !r.has_cat || !r.has_score) throw py::value_error(at + " lacks image_id, category_id or score");
      if (!r.image_is_int) throw py::value_error("image_id of entry " + std::to_string(j) + " is not an integer");
      auto ii = img_index_.find(r.image_id);
      if (ii == img_index_.end())
        throw py::value_error(at + " has image_id " + std::to_string(r.image_id) + ", which is not in the ground truth");
      knet::coco::DtObj o;
      o.img = ii->second;
      o.score = r.score;
      const bool box_given = r.has_box && r.box_len > 0;
      if (box_given && r.box_len != 4) throw py::value_error("bbox of entry " + std::to_string(j) + " must have 4 numbers");
      if (box_given) std::copy(r.box, r.box + 4, o.box);
      if (area_mode == 1 && !box_given) throw py::value_error(at + " lacks 'bbox'");
      PendingSegm ps;
      const bool need_rle = use_segm_ || area_mode == 0 || !box_given;
      if (need_rle) {
        const uint32_t h = static_cast<uint32_t>(heights_[o.img]), w = static_cast<uint32_t>(widths_[o.img]);
        if (r.seg_kind == 1 || r.seg_kind == 2) {
          if (!r.seg_size_ok) throw py::value_error("segmentation of entry " + std::to_string(j) + " is not a valid RLE");
          ps.h = r.seg_h;
          ps.w = r.seg_w;
          if (r.seg_kind == 1) {
            ps.kind = PendingSegm::kString;
            ps.str = r.counts;
            ps.len = r.counts_len;
          } else {
            ps.kind = PendingSegm::kCounts;
            ps.counts.swap(r.counts_list);
          }
        } else if (r.seg_kind == 3) {
          if (r.polygons.empty()) throw py::value_error("segmentation of entry " + std::to_string(j) + " is an empty list");
          ps.kind = PendingSegm::kPolygons;
          ps.h = h;
          ps.w = w;
          ps.polys.swap(r.polygons);
        } else if (r.seg_kind == -1) {
          throw py::value_error("segmentation of entry " + std::to_string(j) + " is not a valid RLE");
        } else if (box_given) {
          const double x1 = o.box[0], x2 = o.box[0] + o.box[2], y1 = o.box[1], y2 = o.box[1] + o.box[3];
          ps.kind = PendingSegm::kPolygons;
          ps.h = h;
          ps.w = w;
          ps.polys = {{x1, y1, x1, y2, x2, y2, x2, y1}};
        } else {
          throw py::value_error(at + " has neither 'segmentation' nor 'bbox'");
        }
      }
      if (area_mode == 1) o.area = o.box[2] * o.box[3];
      if (!r.cat_is_int) continue;
      auto ci = cat_index_.find(r.category_id);
      if (ci == cat_index_.end()) continue;
      o.cat = ci->second;
      objs.push_back(std::move(o));
      pending.push_back(std::move(ps));
      has_box.push_back(box_given);
    }
    std::vector<knet::coco::ResultRecord>().swap(recs);
    finish(objs, pending, ds_.dts, &has_box, area_mode, /*lazy=*/true);
  }

  py::tuple evaluate(std::vector<double> iou_thrs, std::vector<double> rec_thrs, std::vector<double> area_lo,
                     std::vector<double> area_hi, std::vector<int> max_dets) {
    knet::coco::Params p;
    p.iou_thrs = std::move(iou_thrs);
    p.rec_thrs = std::move(rec_thrs);
    p.area_lo = std::move(area_lo);
    p.area_hi = std::move(area_hi);
    p.max_dets = std::move(max_dets);
    p.use_segm = use_segm_;
    if (p.max_dets.empty() || p.area_lo.size() != p.area_hi.size()) throw py::value_error("bad evaluation parameters");
    const size_t T = p.iou_thrs.size(), R = p.rec_thrs.size(), K = cat_ids_.size(), A = p.area_lo.size(),
                 M = p.max_dets.size();
    py::array_t<double> precision({T, R, K, A, M}), recall({T, K, A, M}), scores({T, R, K, A, M});
    double* pp = precision.mutable_data();
    double* rp = recall.mutable_data();
    double* sp = scores.mutable_data();
    {
      py::gil_scoped_release release;
      std::fill(pp, pp + precision.size(), -1.0);
      std::fill(rp, rp + recall.size(), -1.0);
      std::fill(sp, sp + scores.size(), -1.0);
      const knet::coco::Groups g = knet::coco::group(ds_);
      std::vector<knet::coco::Cell> cells(static_cast<size_t>(K) * ds_.num_images);
      knet::parallel_for(0, static_cast<int64_t>(K), 1, [&](int64_t b, int64_t e) {
        knet::coco::evaluate_cats(ds_, g, p, cells, static_cast<int32_t>(b), static_cast<int32_t>(e));
      });
      knet::parallel_for(0, static_cast<int64_t>(K), 1, [&](int64_t b, int64_t e) {
        knet::coco::accumulate_cats(p, ds_.num_images, ds_.num_cats, cells, pp, rp, sp, static_cast<int32_t>(b),
                                    static_cast<int32_t>(e));
      });
    }
    return py::make_tuple(precision, recall, scores);
  }

  size_t num_gts() const { return ds_.gts.size(); }
  size_t num_dts() const { return ds_.dts.size(); }

 private:
  template <typename Obj>
  void finish(std::vector<Obj>& objs, std::vector<PendingSegm>& pending, std::vector<Obj>& dest,
              const std::vector<uint8_t>* has_box, int area_mode = 0, bool lazy = false) {
    const bool is_dt = has_box != nullptr;
    {
      py::gil_scoped_release release;
      knet::parallel_for(0, static_cast<int64_t>(objs.size()), 256, [&](int64_t b, int64_t e) {
        for (int64_t j = b; j < e; ++j) {
          Obj& o = objs[j];
          const bool has_rle = pending[j].kind != PendingSegm::kNone;
          if (is_dt && lazy && use_segm_ && pending[j].kind == PendingSegm::kString) {
            // lazy: only the area now; counts and box when the detection's cell needs its IoUs
            if (area_mode == 0) setarea(o, static_cast<double>(knet::rle::string_area(pending[j].str, pending[j].len)));
            o.rle.h = pending[j].h;
            o.rle.w = pending[j].w;
            set_lazy(o, pending[j]);
            if (area_mode == 2) setarea(o, o.box[2] * o.box[3]);
            continue;
          }
          decode_pending(pending[j], o.rle);
          if (has_rle) {
            if (is_dt && area_mode == 0) setarea(o, static_cast<double>(knet::rle::area(o.rle)));
            // segm IoU prefilters on the RLE's own box; bbox IoU uses the given box (or the RLE's)
            if (use_segm_ || (is_dt && !(*has_box)[j])) knet::rle::to_bbox(o.rle, o.box);
            if (!use_segm_) std::vector<uint32_t>().swap(o.rle.cnts);
            if (use_segm_ && lazy && pending[j].kind == PendingSegm::kString) set_lazy(o, pending[j]);
          }
          if (is_dt && area_mode == 2) setarea(o, o.box[2] * o.box[3]);
        }
      });
    }
    std::vector<PendingSegm>().swap(pending);
    if (dest.empty()) {
      dest.swap(objs);
    } else {
      dest.reserve(dest.size() + objs.size());
      for (auto& o : objs) dest.push_back(std::move(o));
    }
  }
  static void set_lazy(knet::coco::DtObj& o, const PendingSegm& ps) {
    o.lazy_str = ps.str;
    o.lazy_len = static_cast<uint32_t>(ps.len);
    std::vector<uint32_t>().swap(o.rle.cnts);
  }
  static void set_lazy(knet::coco::GtObj&, const PendingSegm&) {}
  static void setarea(knet::coco::DtObj& o, double a) { o.area = a; }
  static void setarea(knet::coco::GtObj&, double) {}

  std::vector<int64_t> img_ids_, heights_, widths_, cat_ids_;
  bool use_segm_;
  std::unordered_map<int64_t, int32_t> img_index_, cat_index_;
  knet::coco::Dataset ds_;
  std::vector<std::unique_ptr<std::string>> bufs_;
};

void bind_coco_eval(py::module_& m) {
  py::class_<CocoEvalCore>(m, "CocoEvalCore")
      .def(py::init<std::vector<int64_t>, std::vector<int64_t>, std::vector<int64_t>, std::vector<int64_t>, bool>(),
           py::arg("img_ids"), py::arg("heights"), py::arg("widths"), py::arg("cat_ids"), py::arg("use_segm"))
      .def("add_gts", &CocoEvalCore::add_gts, py::arg("anns"))
      .def("add_dts", &CocoEvalCore::add_dts, py::arg("anns"), py::arg("area_mode"))
      .def("add_dts_file", &CocoEvalCore::add_dts_file, py::arg("path"), py::arg("area_mode"))
      .def("evaluate", &CocoEvalCore::evaluate, py::arg("iou_thrs"), py::arg("rec_thrs"), py::arg("area_lo"),
           py::arg("area_hi"), py::arg("max_dets"))
      .def_property_readonly("num_gts", &CocoEvalCore::num_gts)
      .def_property_readonly("num_dts", &CocoEvalCore::num_dts);
}

}  // namespace

KNET_REGISTER_BINDINGS(bind_coco_eval);
