// pybind11 bindings of the per-image panoptic quality core (knet._C / knet._eval_C
// pq_image_stats, pq_image_stats_files). Segments come in and statistics go out as plain Python
// lists, so that `knet eval panoptic` never needs numpy.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "knet/bindings.h"
#include "ops/pq_eval/pq_core.h"

namespace py = pybind11;

namespace {

using IdArray = py::array_t<uint32_t, py::array::c_style | py::array::forcecast>;
using I64s = std::vector<int64_t>;

std::vector<knet::pq::GtSegment> gt_segments(const I64s& ids, const I64s& cats, const std::vector<double>& areas,
                                             const I64s& crowd) {
  if (cats.size() != ids.size() || areas.size() != ids.size() || crowd.size() != ids.size())
    throw py::value_error("ground-truth segment lists differ in length");
  std::vector<knet::pq::GtSegment> gts(ids.size());
  for (size_t j = 0; j < ids.size(); ++j) gts[j] = {static_cast<uint32_t>(ids[j]), cats[j], areas[j], crowd[j] == 1};
  return gts;
}

std::vector<knet::pq::PredSegment> pred_segments(const I64s& ids, const I64s& cats) {
  if (cats.size() != ids.size()) throw py::value_error("predicted segment lists differ in length");
  std::vector<knet::pq::PredSegment> preds(ids.size());
  for (size_t j = 0; j < ids.size(); ++j) preds[j] = {static_cast<uint32_t>(ids[j]), cats[j]};
  return preds;
}

// (error, info, match_cat, match_iou, fn_cat, fp_cat); error 1 / 2: info is the segment id in
// the PNG but not in the JSON / in the JSON but not in the PNG
py::tuple to_python(const knet::pq::ImageStats& st) {
  return py::make_tuple(st.error, st.bad_id, py::cast(st.match_cat), py::cast(st.match_iou), py::cast(st.fn_cat),
                        py::cast(st.fp_cat));
}

py::tuple image_stats(IdArray gt, IdArray pred, I64s gt_ids, I64s gt_cats, std::vector<double> gt_areas, I64s gt_crowd,
                      I64s pred_ids, I64s pred_cats) {
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

// The same from the bytes of two PNG files. Besides errors 1 and 2 (see to_python):
// 3 / 4: the GT / predicted PNG is corrupt, info = the reason; 5: the sizes differ, info =
// (gt_w, gt_h, pred_w, pred_h); 6: not 8-bit RGB/RGBA (decode with PIL), info = None.
py::tuple image_stats_files(py::buffer gt_png, py::buffer pred_png, I64s gt_ids, I64s gt_cats,
                            std::vector<double> gt_areas, I64s gt_crowd, I64s pred_ids, I64s pred_cats) {
  py::buffer_info gi = gt_png.request(), pi = pred_png.request();
  const auto gts = gt_segments(gt_ids, gt_cats, gt_areas, gt_crowd);
  const auto preds = pred_segments(pred_ids, pred_cats);
  knet::pq::ImageStats st;
  knet::pq::FileStatus fs;
  {
    py::gil_scoped_release release;
    fs = knet::pq::image_stats_files(static_cast<const uint8_t*>(gi.ptr), static_cast<size_t>(gi.size * gi.itemsize),
                                     static_cast<const uint8_t*>(pi.ptr), static_cast<size_t>(pi.size * pi.itemsize),
                                     gts, preds, st);
  }
  using FS = knet::pq::FileStatus;
  const py::list none;
  switch (fs.code) {
    case FS::kOk:
      return to_python(st);
    case FS::kCorruptGt:
    case FS::kCorruptPred:
      return py::make_tuple(fs.code == FS::kCorruptGt ? 3 : 4, py::str(fs.message), none, none, none, none);
    case FS::kSizeMismatch:
      return py::make_tuple(5, py::make_tuple(fs.gt_w, fs.gt_h, fs.pred_w, fs.pred_h), none, none, none, none);
    default:
      return py::make_tuple(6, py::none(), none, none, none, none);
  }
}

void bind_pq(py::module_& m) {
  m.def("pq_image_stats", &image_stats, py::arg("gt_ids"), py::arg("pred_ids"), py::arg("gt_seg_ids"),
        py::arg("gt_seg_cats"), py::arg("gt_seg_areas"), py::arg("gt_seg_crowd"), py::arg("pred_seg_ids"),
        py::arg("pred_seg_cats"));
  m.def("pq_image_stats_files", &image_stats_files, py::arg("gt_png"), py::arg("pred_png"), py::arg("gt_seg_ids"),
        py::arg("gt_seg_cats"), py::arg("gt_seg_areas"), py::arg("gt_seg_crowd"), py::arg("pred_seg_ids"),
        py::arg("pred_seg_cats"));
}

}  // namespace

KNET_REGISTER_BINDINGS(bind_pq);
