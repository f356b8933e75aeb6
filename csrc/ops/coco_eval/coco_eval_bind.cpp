// pybind11 binding of the COCO evaluation core: knet._C.CocoEvalCore.
// Python side: knet/evaluation/coco.py (loading rules, summarize with numpy).
//
// Objects are read from Python dicts with the GIL held (fields + pointers to the RLE strings /
// polygon coordinates), or from files by the C++ readers (coco_load.h), then decoded and
// evaluated without the GIL on knet::parallel_for threads.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "knet/bindings.h"
#include "ops/coco_eval/parallel.h"
#include "ops/coco_eval/coco_eval_core.h"
#include "ops/coco_eval/coco_load.h"
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
    case PendingSegm::kPolygons:
      knet::coco::polygons_to_rle(p.polys, p.h, p.w, out);
      std::vector<std::vector<double>>().swap(p.polys);
      break;
    case PendingSegm::kNone:
      break;
  }
}

// The whole file in memory (the results' counts strings stay views into it until evaluation).
std::unique_ptr<std::string> read_file(const std::string& path) {
  auto buf = std::make_unique<std::string>();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw py::value_error("cannot open " + path);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    throw py::value_error("cannot read " + path);
  }
  buf->resize(static_cast<size_t>(st.st_size));
  size_t got = 0;
  while (got < buf->size()) {
    const ssize_t r = ::read(fd, &(*buf)[got], buf->size() - got);
    if (r <= 0) break;
    got += static_cast<size_t>(r);
  }
  ::close(fd);
  if (got != buf->size()) throw py::value_error("cannot read " + path);
  return buf;
}

class CocoEvalCore {
 public:
  // img_ids / cat_ids sorted unique; heights/widths per image (for polygons). use_segm: IoU type.
  CocoEvalCore(std::vector<int64_t> img_ids, std::vector<int64_t> heights, std::vector<int64_t> widths,
               std::vector<int64_t> cat_ids, bool use_segm)
      : use_segm_(use_segm) {
    cat_.img_ids = std::move(img_ids);
    cat_.heights = std::move(heights);
    cat_.widths = std::move(widths);
    cat_.cat_ids = std::move(cat_ids);
    for (int64_t c : cat_.cat_ids) cat_.cat_names.push_back(std::to_string(c));
    cat_.index();
    sizes();
  }

  // A COCO instances file read by the C++ reader: images, categories and annotations. Errors:
  // ValueError whose message follows "ground-truth file PATH" ("is not valid JSON (...)",
  // "is not a COCO instances file (...)", ": annotation 3 lacks 'area'", ...).
  static std::unique_ptr<CocoEvalCore> from_gt_file(const std::string& path, bool use_segm) {
    std::unique_ptr<std::string> buf = read_file(path);
    auto core = std::make_unique<CocoEvalCore>(std::vector<int64_t>{}, std::vector<int64_t>{},
                                               std::vector<int64_t>{}, std::vector<int64_t>{}, use_segm);
    std::string err;
    bool ok;
    {
      py::gil_scoped_release release;
      knet::coco::GtFile f;
      bool json_error = false;
      ok = knet::coco::parse_gt_json(buf->data(), buf->size(), f, err, json_error);
      if (!ok && json_error) err = "is not valid JSON (" + err + ")";
      if (ok) {
        core->cat_ = knet::coco::catalog_from(f);
        core->sizes();
        ok = knet::coco::gts_from_records(core->cat_, f.anns, use_segm, core->ds_, err);
        if (!ok) err = ": " + err;
      } else if (!json_error && err.rfind("is ", 0) != 0) {
        err = ": " + err;
      }
    }
    if (!ok) throw py::value_error(err);
    return core;
  }

  // Ground-truth annotations (COCO "annotations" list). Unknown images/categories are skipped,
  // as pycocotools' getAnnIds(imgIds, catIds) does.
  void add_gts(py::sequence anns) {
    // results read from files carry IoUs with the ground truth present at that time
    if (!ds_.dts.empty()) throw py::value_error("add the ground truth before the results");
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
      auto ii = cat_.img_index.find(get_int(img, "image_id", j));
      auto ci = cat_.cat_index.find(get_int(cat, "category_id", j));
      if (ii == cat_.img_index.end() || ci == cat_.cat_index.end()) continue;
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
        read_segm(seg, static_cast<uint32_t>(cat_.heights[o.img]), static_cast<uint32_t>(cat_.widths[o.img]), j, ps);
      } else if (!read_box(PyDict_GetItemString(d, "bbox"), o.box, j)) {
        throw py::value_error("annotation " + std::to_string(j) + " lacks 'bbox'");
      }
      objs.push_back(std::move(o));
      pending.push_back(std::move(ps));
    }
    py::gil_scoped_release release;
    if (use_segm_) {
      knet::parallel_for(0, static_cast<int64_t>(objs.size()), 256, [&](int64_t b, int64_t e) {
        for (int64_t j = b; j < e; ++j) decode_pending(pending[j], objs[j].rle);
      });
    }
    for (auto& o : objs) ds_.gts.push_back(std::move(o));
    knet::coco::prepare_gt_masks(ds_, use_segm_);
  }

  // Results. area_mode: 0 = mask area (knet default for segm), 1 = area of the given box w*h
  // (bbox field required; pycocotools' branch when the first result has a bbox), 2 = area of the
  // given box or, when absent, of the mask's box (knet default for bbox). Image ids must be known.
  // Compressed strings are borrowed from the list's dicts (alive until evaluation ends).
  void add_dts(py::sequence anns, int area_mode) {
    if (area_mode < 0 || area_mode > 2) throw py::value_error("area_mode must be 0, 1 or 2");
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
      auto ii = cat_.img_index.find(img_id);
      if (ii == cat_.img_index.end())
        throw py::value_error("result " + std::to_string(j) + " has image_id " + std::to_string(img_id) +
                              ", which is not in the ground truth");
      auto ci = cat_.cat_index.find(get_int(cat, "category_id", j));
      knet::coco::DtObj o;
      o.img = ii->second;
      o.score = get_double(score, "score", j);
      const bool box_given = read_box(PyDict_GetItemString(d, "bbox"), o.box, j);
      if (area_mode == 1 && !box_given) throw py::value_error("result " + std::to_string(j) + " lacks 'bbox'");
      PendingSegm ps;
      PyObject* seg = PyDict_GetItemString(d, "segmentation");
      if (use_segm_ || area_mode == 0 || !box_given) {
        const uint32_t h = static_cast<uint32_t>(cat_.heights[o.img]), w = static_cast<uint32_t>(cat_.widths[o.img]);
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
      if (ci == cat_.cat_index.end()) continue;  // category not evaluated (pycocotools drops it)
      o.cat = ci->second;
      objs.push_back(std::move(o));
      pending.push_back(std::move(ps));
      has_box.push_back(box_given);
    }
    py::gil_scoped_release release;
    std::vector<Rle> masks(objs.size());
    knet::parallel_for(0, static_cast<int64_t>(objs.size()), 256, [&](int64_t b, int64_t e) {
      for (int64_t j = b; j < e; ++j) {
        knet::coco::DtObj& o = objs[j];
        PendingSegm& ps = pending[j];
        if (ps.kind == PendingSegm::kString && use_segm_) {  // lazy: the area now, the rest if needed
          o.str = ps.str;
          o.len = static_cast<uint32_t>(ps.len);
          o.h = ps.h;
          o.w = ps.w;
          if (area_mode == 0) o.area = static_cast<double>(knet::rle::string_area(ps.str, ps.len));
        } else if (ps.kind != PendingSegm::kNone) {
          decode_pending(ps, masks[j]);
          if (area_mode == 0) o.area = static_cast<double>(knet::rle::area(masks[j]));
          if (!use_segm_ && !has_box[j]) knet::rle::to_bbox(masks[j], o.box);
          o.h = masks[j].h;
          o.w = masks[j].w;
        }
        if (area_mode != 0) o.area = o.box[2] * o.box[3];
      }
    });
    ds_.dts.reserve(ds_.dts.size() + objs.size());
    for (size_t j = 0; j < objs.size(); ++j) {
      if (use_segm_ && pending[j].kind != PendingSegm::kString && pending[j].kind != PendingSegm::kNone) {
        objs[j].rle = static_cast<int32_t>(ds_.dt_rles.size());
        ds_.dt_rles.push_back(std::move(masks[j]));
      }
      ds_.dts.push_back(objs[j]);
    }
  }

  // A results file read by the C++ JSON reader (no Python objects per detection), on several
  // threads. area_mode as add_dts, plus 3 = pycocotools' first-entry rule (1 if the first result
  // has a bbox, else 0).
  void add_dts_file(const std::string& path, int area_mode) {
    std::unique_ptr<std::string> buf;
    std::string err;
    bool ok = false, json_error = false;
    {
      py::gil_scoped_release release;
      try {
        buf = read_file(path);
      } catch (...) {
        buf.reset();
      }
      if (buf) {
        knet::coco::ResultsScanner sc(buf->data(), buf->size());
        ok = knet::coco::load_results(sc, cat_, use_segm_, area_mode, ds_, err, json_error);
      }
    }
    if (!buf) throw py::value_error("cannot read " + path);
    if (!ok) throw py::value_error(json_error ? "not valid JSON (" + err + ")" : err);
    // no detection points into the buffer any more (IoUs computed while parsing): freed here
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
    if (p.max_dets.empty() || p.area_lo.size() != p.area_hi.size() || !std::is_sorted(p.max_dets.begin(), p.max_dets.end()))
      throw py::value_error("bad evaluation parameters");
    const size_t T = p.iou_thrs.size(), R = p.rec_thrs.size(), K = cat_.cat_ids.size(), A = p.area_lo.size(),
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
      const knet::coco::Index index = knet::coco::build_index(ds_);
      knet::parallel_for(0, static_cast<int64_t>(K), 1, [&](int64_t b, int64_t e) {
        knet::coco::evaluate_cats(ds_, index, p, pp, rp, sp, static_cast<int32_t>(b), static_cast<int32_t>(e));
      });
    }
    return py::make_tuple(precision, recall, scores);
  }

  size_t num_gts() const { return ds_.gts.size(); }
  size_t num_dts() const { return ds_.dts.size(); }
  const std::vector<int64_t>& img_ids() const { return cat_.img_ids; }
  const std::vector<int64_t>& cat_ids() const { return cat_.cat_ids; }
  const std::vector<std::string>& cat_names() const { return cat_.cat_names; }

 private:
  void sizes() {
    ds_.num_images = static_cast<int32_t>(cat_.img_ids.size());
    ds_.num_cats = static_cast<int32_t>(cat_.cat_ids.size());
  }

  bool use_segm_;
  knet::coco::Catalog cat_;
  knet::coco::Dataset ds_;
};

void bind_coco_eval(py::module_& m) {
  py::class_<CocoEvalCore>(m, "CocoEvalCore")
      .def(py::init<std::vector<int64_t>, std::vector<int64_t>, std::vector<int64_t>, std::vector<int64_t>, bool>(),
           py::arg("img_ids"), py::arg("heights"), py::arg("widths"), py::arg("cat_ids"), py::arg("use_segm"))
      .def_static("from_gt_file", &CocoEvalCore::from_gt_file, py::arg("path"), py::arg("use_segm"))
      .def("add_gts", &CocoEvalCore::add_gts, py::arg("anns"))
      .def("add_dts", &CocoEvalCore::add_dts, py::arg("anns"), py::arg("area_mode"))
      .def("add_dts_file", &CocoEvalCore::add_dts_file, py::arg("path"), py::arg("area_mode"))
      .def("evaluate", &CocoEvalCore::evaluate, py::arg("iou_thrs"), py::arg("rec_thrs"), py::arg("area_lo"),
           py::arg("area_hi"), py::arg("max_dets"))
      .def_property_readonly("img_ids", &CocoEvalCore::img_ids)
      .def_property_readonly("cat_ids", &CocoEvalCore::cat_ids)
      .def_property_readonly("cat_names", &CocoEvalCore::cat_names)
      .def_property_readonly("num_gts", &CocoEvalCore::num_gts)
      .def_property_readonly("num_dts", &CocoEvalCore::num_dts);
}

}  // namespace

KNET_REGISTER_BINDINGS(bind_coco_eval);
