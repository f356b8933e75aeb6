// pybind11 bindings of the RLE codec (knet._C.rle_*). Python wrapper: knet/ops/rle.py.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <vector>

#include "knet/bindings.h"
#include "ops/coco_eval/parallel.h"
#include "ops/rle/rle_core.h"
#include "ops/rle/rle_py.h"
#include "ops/rle/rle_segm.h"

namespace py = pybind11;
using knet::rle::Rle;

namespace {

std::vector<Rle> parse_list(py::sequence objs) {
  std::vector<Rle> out(py::len(objs));
  for (size_t i = 0; i < out.size(); ++i) knet::rle::rle_from_py(objs[i], out[i]);
  return out;
}

// masks: [N, H, W] uint8/bool array with any strides.
py::list encode(py::array masks) {
  if (masks.ndim() != 3) throw py::value_error("rle_encode expects an [N, H, W] array");
  if (masks.itemsize() != 1) throw py::value_error("rle_encode expects a uint8 or bool array");
  const int64_t n = masks.shape(0), h = masks.shape(1), w = masks.shape(2);
  const int64_t sn = masks.strides(0), sy = masks.strides(1), sx = masks.strides(2);
  const uint8_t* base = static_cast<const uint8_t*>(masks.data());
  std::vector<Rle> rles(n);
  {
    py::gil_scoped_release release;
    knet::parallel_for(0, n, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i)
        knet::rle::encode_strided(base + i * sn, static_cast<uint32_t>(h), static_cast<uint32_t>(w), sy, sx, rles[i]);
    });
  }
  py::list out;
  for (const Rle& r : rles) out.append(knet::rle::rle_to_py(r));
  return out;
}

py::array_t<uint8_t> decode(py::sequence objs) {
  std::vector<Rle> rles = parse_list(objs);
  const int64_t n = static_cast<int64_t>(rles.size());
  uint32_t h = 0, w = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (i == 0) {
      h = rles[i].h;
      w = rles[i].w;
    } else if (rles[i].h != h || rles[i].w != w) {
      throw py::value_error("rle_decode: all RLEs must have the same size");
    }
  }
  py::array_t<uint8_t> out({n, static_cast<int64_t>(h), static_cast<int64_t>(w)});
  uint8_t* dst = out.mutable_data();
  const int64_t plane = static_cast<int64_t>(h) * w;
  std::vector<uint8_t> ok(n, 1);
  {
    py::gil_scoped_release release;
    knet::parallel_for(0, n, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) ok[i] = knet::rle::decode_rowmajor(rles[i], dst + i * plane);
    });
  }
  for (int64_t i = 0; i < n; ++i)
    if (!ok[i]) throw py::value_error("rle_decode: RLE " + std::to_string(i) + " counts do not sum to height*width");
  return out;
}

py::array_t<uint32_t> area(py::sequence objs) {
  std::vector<Rle> rles = parse_list(objs);
  py::array_t<uint32_t> out(static_cast<py::ssize_t>(rles.size()));
  for (size_t i = 0; i < rles.size(); ++i) out.mutable_data()[i] = knet::rle::area(rles[i]);
  return out;
}

py::array_t<double> to_bbox(py::sequence objs) {
  std::vector<Rle> rles = parse_list(objs);
  py::array_t<double> out({static_cast<py::ssize_t>(rles.size()), static_cast<py::ssize_t>(4)});
  for (size_t i = 0; i < rles.size(); ++i) knet::rle::to_bbox(rles[i], out.mutable_data() + 4 * i);
  return out;
}

py::dict merge(py::sequence objs, bool intersect) {
  std::vector<Rle> rles = parse_list(objs);
  std::vector<const Rle*> ptrs;
  for (const Rle& r : rles) ptrs.push_back(&r);
  Rle out;
  knet::rle::merge(ptrs.data(), ptrs.size(), intersect, out);
  return knet::rle::rle_to_py(out);
}

py::dict from_polygons(py::sequence polys, uint32_t h, uint32_t w) {
  Rle out;
  knet::rle::polygons_from_py(polys, h, w, out);
  return knet::rle::rle_to_py(out);
}

py::dict to_rle(py::handle segm, uint32_t h, uint32_t w) {
  Rle out;
  knet::rle::segmentation_from_py(segm, h, w, out);
  return knet::rle::rle_to_py(out);
}

py::list from_bbox(py::array_t<double, py::array::c_style | py::array::forcecast> boxes, uint32_t h, uint32_t w) {
  if (boxes.ndim() != 2 || boxes.shape(1) != 4) throw py::value_error("rle_from_bbox expects [N, 4] boxes");
  py::list out;
  for (py::ssize_t i = 0; i < boxes.shape(0); ++i) {
    Rle r;
    knet::rle::from_bbox(boxes.data() + 4 * i, h, w, r);
    out.append(knet::rle::rle_to_py(r));
  }
  return out;
}

// Counts (as a uint32 array) of one RLE object, for tests and debugging.
py::array_t<uint32_t> counts(py::handle obj) {
  Rle r;
  knet::rle::rle_from_py(obj, r);
  py::array_t<uint32_t> out(static_cast<py::ssize_t>(r.cnts.size()));
  std::copy(r.cnts.begin(), r.cnts.end(), out.mutable_data());
  return out;
}

void bind_rle(py::module_& m) {
  m.def("rle_encode", &encode, py::arg("masks"), "[N,H,W] uint8/bool masks -> list of compressed COCO RLE dicts");
  m.def("rle_decode", &decode, py::arg("rles"), "list of RLE dicts -> [N,H,W] uint8");
  m.def("rle_area", &area, py::arg("rles"));
  m.def("rle_to_bbox", &to_bbox, py::arg("rles"));
  m.def("rle_merge", &merge, py::arg("rles"), py::arg("intersect") = false);
  m.def("rle_from_polygons", &from_polygons, py::arg("polygons"), py::arg("h"), py::arg("w"));
  m.def("rle_to_rle", &to_rle, py::arg("segmentation"), py::arg("h"), py::arg("w"));
  m.def("rle_from_bbox", &from_bbox, py::arg("boxes"), py::arg("h"), py::arg("w"));
  m.def("rle_counts", &counts, py::arg("rle"));
}

}  // namespace

KNET_REGISTER_BINDINGS(bind_rle);
