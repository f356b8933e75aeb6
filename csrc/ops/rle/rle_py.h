// Conversions between Python COCO segmentation objects and knet::rle::Rle (pybind11 side).
// Shared by the rle, mask_iou and coco_eval bindings.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>

#include "ops/rle/rle_core.h"

namespace knet {
namespace rle {

namespace py = pybind11;

inline long long as_int(py::handle v, const char* what) {
  const long long x = PyLong_AsLongLong(v.ptr());
  if (x == -1 && PyErr_Occurred()) {
    PyErr_Clear();
    throw py::value_error(std::string(what) + " must be integers");
  }
  return x;
}

// {"size": [h, w], "counts": str | bytes | list[int]} -> Rle. Throws ValueError on bad input.
inline void rle_from_py(py::handle obj, Rle& out) {
  if (!py::isinstance<py::dict>(obj)) throw py::value_error("RLE must be a dict with 'size' and 'counts'");
  py::dict d = py::reinterpret_borrow<py::dict>(obj);
  if (!d.contains("size") || !d.contains("counts")) throw py::value_error("RLE dict needs 'size' and 'counts'");
  py::handle size_obj = d["size"];
  if (!(py::isinstance<py::list>(size_obj) || py::isinstance<py::tuple>(size_obj)) || py::len(size_obj) != 2)
    throw py::value_error("RLE 'size' must be [height, width]");
  py::sequence size = py::reinterpret_borrow<py::sequence>(size_obj);
  const long long hh = as_int(size[0], "RLE 'size'"), ww = as_int(size[1], "RLE 'size'");
  if (hh < 0 || ww < 0 || hh > 0xffffffffLL || ww > 0xffffffffLL) throw py::value_error("RLE 'size' out of range");
  const uint32_t h = static_cast<uint32_t>(hh), w = static_cast<uint32_t>(ww);
  py::handle counts = d["counts"];
  if (py::isinstance<py::str>(counts)) {
    Py_ssize_t len = 0;
    const char* s = PyUnicode_AsUTF8AndSize(counts.ptr(), &len);
    if (s == nullptr) throw py::error_already_set();
    from_string(s, static_cast<size_t>(len), h, w, out);
  } else if (py::isinstance<py::bytes>(counts)) {
    char* s = nullptr;
    Py_ssize_t len = 0;
    if (PyBytes_AsStringAndSize(counts.ptr(), &s, &len) != 0) throw py::error_already_set();
    from_string(s, static_cast<size_t>(len), h, w, out);
  } else if (py::isinstance<py::list>(counts) || py::isinstance<py::tuple>(counts)) {
    py::sequence seq = py::reinterpret_borrow<py::sequence>(counts);
    out.h = h;
    out.w = w;
    out.cnts.resize(py::len(seq));
    for (size_t i = 0; i < out.cnts.size(); ++i) {
      const long long c = as_int(seq[i], "RLE 'counts'");
      out.cnts[i] = static_cast<uint32_t>(c);  // np.array(counts, dtype=np.uint32) semantics
    }
  } else {
    throw py::value_error("RLE 'counts' must be a string, bytes or a list of ints");
  }
}

inline py::dict rle_to_py(const Rle& r) {
  py::dict d;
  py::list size;
  size.append(r.h);
  size.append(r.w);
  d["size"] = size;
  const std::string s = to_string(r);
  d["counts"] = py::str(s);
  return d;
}

}  // namespace rle
}  // namespace knet
