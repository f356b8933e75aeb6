// pybind11 binding of the per-image panoptic quality core (knet._C.pq_image_stats).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "knet/bindings.h"
#include "ops/pq_eval/pq_core.h"

namespace py = pybind11;

namespace {

using IdArray = py::array_t<uint32_t, py::array::c_style | py::array::forcecast>;
using I64 = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;
using F64 = py::array_t<double, py::array::c_style | py::array::forcecast>;

// Returns (error, bad_id, match_cat, match_iou, fn_cat, fp_cat).
py::tuple image_stats(IdArray gt, IdArray pred, I64 gt_ids, I64 gt_cats, F64 gt_areas, I64 gt_crowd, I64 pred_ids,
                      I64 pred_cats) {
  if (gt.size() != pred.size()) throw py::value_error("ground-truth and prediction PNGs differ in size");
  std::vector<knet::pq::GtSegment> gts(gt_ids.size());
  for (py::ssize_t j = 0; j < gt_ids.size(); ++j)
    gts[j] = {static_cast<uint32_t>(gt_ids.data()[j]), gt_cats.data()[j], gt_areas.data()[j], gt_crowd.data()[j] == 1};
  std::vector<knet::pq::PredSegment> preds(pred_ids.size());
  for (py::ssize_t j = 0; j < pred_ids.size(); ++j)
    preds[j] = {static_cast<uint32_t>(pred_ids.data()[j]), pred_cats.data()[j]};
  knet::pq::ImageStats st;
  {
    py::gil_scoped_release release;
    knet::pq::image_stats(gt.data(), pred.data(), static_cast<size_t>(gt.size()), gts, preds, st);
  }
  auto arr_i = [](const std::vector<int64_t>& v) {
    py::array_t<int64_t> a(static_cast<py::ssize_t>(v.size()));
    std::copy(v.begin(), v.end(), a.mutable_data());
    return a;
  };
  py::array_t<double> ious(static_cast<py::ssize_t>(st.match_iou.size()));
  std::copy(st.match_iou.begin(), st.match_iou.end(), ious.mutable_data());
  return py::make_tuple(st.error, st.bad_id, arr_i(st.match_cat), ious, arr_i(st.fn_cat), arr_i(st.fp_cat));
}

void bind_pq(py::module_& m) {
  m.def("pq_image_stats", &image_stats, py::arg("gt_ids"), py::arg("pred_ids"), py::arg("gt_seg_ids"),
        py::arg("gt_seg_cats"), py::arg("gt_seg_areas"), py::arg("gt_seg_crowd"), py::arg("pred_seg_ids"),
        py::arg("pred_seg_cats"));
}

}  // namespace

KNET_REGISTER_BINDINGS(bind_pq);
