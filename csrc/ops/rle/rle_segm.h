// COCO "segmentation" objects (polygon list, uncompressed RLE, compressed RLE) -> Rle, with
// pycocotools' COCO.annToRLE semantics: polygons are rasterised with frPyObjects and merged
// (union); uncompressed and compressed RLEs keep their own "size". (pycocotools crashes on a
// list whose first polygon has exactly 4 numbers, reading it as a box; knet rasterises it as
// the degenerate 2-point polygon it is.)
#pragma once

#include <pybind11/pybind11.h>

#include <vector>

#include "ops/rle/rle_core.h"
#include "ops/rle/rle_py.h"

namespace knet {
namespace rle {

inline void polygons_from_py(py::sequence polys, uint32_t h, uint32_t w, Rle& out) {
  const size_t n = py::len(polys);
  if (n == 0) throw py::value_error("polygon segmentation is an empty list");
  std::vector<Rle> parts(n);
  std::vector<double> xy;
  for (size_t i = 0; i < n; ++i) {
    py::sequence p = py::reinterpret_borrow<py::sequence>(polys[i]);
    const size_t len = py::len(p);
    xy.resize(len);
    for (size_t j = 0; j < len; ++j) {
      py::object v = p[j];
      xy[j] = PyFloat_AsDouble(v.ptr());
      if (xy[j] == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        throw py::value_error("polygon coordinates must be numbers");
      }
    }
    from_polygon(xy.data(), len / 2, h, w, parts[i]);
  }
  std::vector<const Rle*> ptrs;
  for (const Rle& r : parts) ptrs.push_back(&r);
  merge(ptrs.data(), ptrs.size(), false, out);
}

inline void segmentation_from_py(py::handle segm, uint32_t h, uint32_t w, Rle& out) {
  if (py::isinstance<py::list>(segm) || py::isinstance<py::tuple>(segm)) {
    polygons_from_py(py::reinterpret_borrow<py::sequence>(segm), h, w, out);
  } else if (py::isinstance<py::dict>(segm)) {
    rle_from_py(segm, out);
  } else {
    throw py::value_error("segmentation must be a polygon list or an RLE dict");
  }
}

}  // namespace rle
}  // namespace knet
