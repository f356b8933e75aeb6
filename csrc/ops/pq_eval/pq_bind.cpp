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

std::vector<knet::pq::GtSegment> gt_segments(const I64& ids, const I64& cats, const F64& areas, const I64& crowd) {
  std::vector<knet::pq::GtSegment> gts(ids.size());
  for (py::ssize_t j = 0; j < ids.size(); ++j)
    gts[j] = {static_cast<uint32_t>(ids.data()[j]), cats.data()[j], areas.data()[j], crowd.data()[j] == 1};
  return gts;
}

std::vector<knet::pq::PredSegment> pred_segments(const I64& ids, const I64& cats) {
  std::vector<knet::pq::PredSegment> preds(ids.size());
  for (py::ssize_t j = 0; j < ids.size(); ++j) preds[j] = {static_cast<uint32_t>(ids.data()[j]), cats.data()[j]};
  return preds;
}

py::tuple to_python(const knet::pq::ImageStats& st) {
  auto arr_i = [](const std::vector<int64_t>& v) {
    py::array_t<int64_t> a(static_cast<py::ssize_t>(v.size()));
    std::copy(v.begin(), v.end(), a.mutable_data());
    return a;
  };
  py::array_t<double> ious(static_cast<py::ssize_t>(st.match_iou.size()));
  std::copy(st.match_iou.begin(), st.match_iou.end(), ious.mutable_data());
  return py::make_tuple(st.error, st.bad_id, arr_i(st.match_cat), ious, arr_i(st.fn_cat), arr_i(st.fp_cat));
}

// Returns (error, bad_id, match_cat, match_iou, fn_cat, fp_cat).
py::tuple image_stats(IdArray gt, IdArray pred, I64 gt_ids, I64 gt_cats, F64 gt_areas, I64 gt_crowd, I64 pred_ids,
                      I64 pred_cats) {
  if (gt.size() != pred.size()) throw py::value_error("ground-truth and prediction PNGs differ in size");
  const auto gts = gt_segments(gt_ids, gt_cats, gt_areas, gt_crowd);
  const auto preds = pred_segments(pred_ids, pred_cats);
  knet::pq::ImageStats st;
  {
    py::gil_scoped_release release;
    knet::pq::image_stats(gt.data(), pred.data(), static_cast<size_t>(gt.size()), gts, preds, st);
  }
  return to_python(st);
}

// The same from the inflated IDAT bytes of two 8-bit RGB/RGBA PNGs of h x w pixels.
py::tuple image_stats_png(py::buffer gt_raw, uint32_t gt_channels, py::buffer pred_raw, uint32_t pred_channels,
                          uint32_t h, uint32_t w, I64 gt_ids, I64 gt_cats, F64 gt_areas, I64 gt_crowd, I64 pred_ids,
                          I64 pred_cats) {
  if (gt_channels < 3 || pred_channels < 3) throw py::value_error("panoptic PNGs must be RGB or RGBA");
  py::buffer_info gi = gt_raw.request(), pi = pred_raw.request();
  const auto gts = gt_segments(gt_ids, gt_cats, gt_areas, gt_crowd);
  const auto preds = pred_segments(pred_ids, pred_cats);
  knet::pq::ImageStats st;
  bool ok;
  {
    py::gil_scoped_release release;
    ok = knet::pq::image_stats_png(static_cast<const uint8_t*>(gi.ptr), static_cast<size_t>(gi.size * gi.itemsize),
                                   gt_channels, static_cast<const uint8_t*>(pi.ptr),
                                   static_cast<size_t>(pi.size * pi.itemsize), pred_channels, h, w, gts, preds, st);
  }
  if (!ok) throw py::value_error("corrupt PNG data (bad filter type or truncated image data)");
  return to_python(st);
}

void bind_pq(py::module_& m) {
  m.def("pq_image_stats", &image_stats, py::arg("gt_ids"), py::arg("pred_ids"), py::arg("gt_seg_ids"),
        py::arg("gt_seg_cats"), py::arg("gt_seg_areas"), py::arg("gt_seg_crowd"), py::arg("pred_seg_ids"),
        py::arg("pred_seg_cats"));
  m.def("pq_image_stats_png", &image_stats_png, py::arg("gt_raw"), py::arg("gt_channels"), py::arg("pred_raw"),
        py::arg("pred_channels"), py::arg("h"), py::arg("w"), py::arg("gt_seg_ids"), py::arg("gt_seg_cats"),
        py::arg("gt_seg_areas"), py::arg("gt_seg_crowd"), py::arg("pred_seg_ids"), py::arg("pred_seg_cats"));
}

}  // namespace

KNET_REGISTER_BINDINGS(bind_pq);
