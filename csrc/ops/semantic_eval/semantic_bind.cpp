// pybind11 binding of the mmseg mIoU histograms (knet._C.semantic_accumulate).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "knet/bindings.h"
#include "ops/semantic_eval/semantic_core.h"

namespace py = pybind11;

namespace {

template <typename P, typename L>
void run(py::array pred, py::array label, int64_t C, int64_t ignore, bool rzl, int64_t* i, int64_t* p, int64_t* l) {
  auto pa = py::array_t<P, py::array::c_style | py::array::forcecast>::ensure(pred);
  auto la = py::array_t<L, py::array::c_style | py::array::forcecast>::ensure(label);
  const P* pp = pa.data();
  const L* lp = la.data();
  const size_t n = static_cast<size_t>(pa.size());
  py::gil_scoped_release release;
  knet::semantic::accumulate<P, L>(pp, lp, n, C, ignore, rzl, i, p, l);
}

// Adds one image's counts into inter/pred_area/label_area (int64 [C] arrays, modified in place).
void accumulate(py::array pred, py::array label, int64_t num_classes, int64_t ignore_index, bool reduce_zero_label,
                py::array_t<int64_t> inter, py::array_t<int64_t> pred_area, py::array_t<int64_t> label_area) {
  if (pred.size() != label.size()) throw py::value_error("prediction and label differ in size");
  if (inter.size() != num_classes || pred_area.size() != num_classes || label_area.size() != num_classes)
    throw py::value_error("histogram arrays must have num_classes entries");
  int64_t* i = inter.mutable_data();
  int64_t* p = pred_area.mutable_data();
  int64_t* l = label_area.mutable_data();
  const bool p8 = py::isinstance<py::array_t<uint8_t>>(pred), l8 = py::isinstance<py::array_t<uint8_t>>(label);
  if (p8 && l8)
    run<uint8_t, uint8_t>(pred, label, num_classes, ignore_index, reduce_zero_label, i, p, l);
  else if (!p8 && l8)
    run<int64_t, uint8_t>(pred, label, num_classes, ignore_index, reduce_zero_label, i, p, l);
  else if (p8)
    run<uint8_t, int64_t>(pred, label, num_classes, ignore_index, reduce_zero_label, i, p, l);
  else
    run<int64_t, int64_t>(pred, label, num_classes, ignore_index, reduce_zero_label, i, p, l);
}

void bind_semantic(py::module_& m) {
  m.def("semantic_accumulate", &accumulate, py::arg("pred"), py::arg("label"), py::arg("num_classes"),
        py::arg("ignore_index"), py::arg("reduce_zero_label"), py::arg("inter"), py::arg("pred_area"),
        py::arg("label_area"));
}

}  // namespace

KNET_REGISTER_BINDINGS(bind_semantic);
