// Device dispatch + pybind11 bindings of the mask IoU op (knet._C.mask_iou_*).
// Python wrapper and PyTorch twin: knet/ops/mask_iou.py.
#include <ATen/Parallel.h>
#include <torch/extension.h>

#include <vector>

#include "knet/bindings.h"
#include "ops/mask_iou/mask_iou.h"
#include "ops/rle/rle_py.h"
#ifdef WITH_CUDA
#include "ops/mask_iou/cuda/mask_iou_cuda.h"
#endif

namespace py = pybind11;
using knet::rle::Rle;

namespace {

py::array_t<double> iou_rle(py::sequence dt_objs, py::sequence gt_objs, py::object iscrowd_obj) {
  const size_t m = py::len(dt_objs), n = py::len(gt_objs);
  std::vector<Rle> dt(m), gt(n);
  for (size_t i = 0; i < m; ++i) knet::rle::rle_from_py(dt_objs[i], dt[i]);
  for (size_t i = 0; i < n; ++i) knet::rle::rle_from_py(gt_objs[i], gt[i]);
  std::vector<uint8_t> crowd(n, 0);
  if (!iscrowd_obj.is_none()) {
    py::sequence seq = py::reinterpret_borrow<py::sequence>(iscrowd_obj);
    if (py::len(seq) != n) throw py::value_error("iscrowd must have one entry per ground truth");
    for (size_t i = 0; i < n; ++i) crowd[i] = py::cast<bool>(py::bool_(seq[i]));
  }
  py::array_t<double> out({static_cast<py::ssize_t>(m), static_cast<py::ssize_t>(n)});
  double* o = out.mutable_data();
  {
    py::gil_scoped_release release;
    std::vector<double> db(4 * m), gb(4 * n);
    for (size_t i = 0; i < m; ++i) knet::rle::to_bbox(dt[i], db.data() + 4 * i);
    for (size_t i = 0; i < n; ++i) knet::rle::to_bbox(gt[i], gb.data() + 4 * i);
    std::vector<const Rle*> dp(m), gp(n);
    for (size_t i = 0; i < m; ++i) dp[i] = &dt[i];
    for (size_t i = 0; i < n; ++i) gp[i] = &gt[i];
    at::parallel_for(0, static_cast<int64_t>(m), 16, [&](int64_t b, int64_t e) {
      knet::mask_iou::rle_iou_matrix(dp.data(), m, gp.data(), n, crowd.data(), db.data(), gb.data(), o,
                                     static_cast<size_t>(b), static_cast<size_t>(e));
    });
  }
  return out;
}

at::Tensor pack(const at::Tensor& masks_in) {
  TORCH_CHECK(masks_in.dim() == 3, "mask_pack expects [N, H, W] masks");
#ifdef WITH_CUDA
  if (masks_in.is_cuda()) return knet::mask_iou::pack_cuda(masks_in);
#endif
  TORCH_CHECK(masks_in.device().is_cpu(), "mask_pack: knet._C was built without CUDA");
  at::Tensor masks = masks_in.to(at::kByte).contiguous();
  const int64_t n = masks.size(0), npix = masks.size(1) * masks.size(2);
  const int64_t nwords = (npix + 63) / 64;
  at::Tensor out = at::empty({n, nwords}, masks.options().dtype(at::kLong));
  const uint8_t* src = masks.data_ptr<uint8_t>();
  uint64_t* dst = reinterpret_cast<uint64_t*>(out.data_ptr<int64_t>());
  at::parallel_for(0, n, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) knet::mask_iou::pack_bits(src + i * npix, npix, dst + i * nwords);
  });
  return out;
}

at::Tensor iou_packed(const at::Tensor& dt_in, const at::Tensor& gt_in, const at::Tensor& crowd_in) {
  TORCH_CHECK(dt_in.dim() == 2 && gt_in.dim() == 2 && dt_in.size(1) == gt_in.size(1),
              "mask_iou_packed expects [M, K] and [N, K] packed words");
  TORCH_CHECK(dt_in.scalar_type() == at::kLong && gt_in.scalar_type() == at::kLong, "packed masks must be int64");
  TORCH_CHECK(crowd_in.numel() == gt_in.size(0), "iscrowd must have one entry per ground truth");
#ifdef WITH_CUDA
  if (dt_in.is_cuda()) return knet::mask_iou::packed_iou_cuda(dt_in, gt_in, crowd_in);
#endif
  TORCH_CHECK(dt_in.device().is_cpu(), "mask_iou_packed: knet._C was built without CUDA");
  at::Tensor dt = dt_in.contiguous(), gt = gt_in.contiguous();
  at::Tensor crowd = crowd_in.to(at::kByte).contiguous();
  const int64_t m = dt.size(0), n = gt.size(0), nwords = dt.size(1);
  at::Tensor out = at::zeros({m, n}, dt.options().dtype(at::kDouble));
  if (m == 0 || n == 0) return out;
  const uint64_t* dp = reinterpret_cast<const uint64_t*>(dt.data_ptr<int64_t>());
  const uint64_t* gp = reinterpret_cast<const uint64_t*>(gt.data_ptr<int64_t>());
  std::vector<int64_t> da(m), ga(n);
  for (int64_t i = 0; i < m; ++i) da[i] = knet::mask_iou::packed_area(dp + i * nwords, nwords);
  for (int64_t i = 0; i < n; ++i) ga[i] = knet::mask_iou::packed_area(gp + i * nwords, nwords);
  const uint8_t* cp = crowd.data_ptr<uint8_t>();
  double* o = out.data_ptr<double>();
  at::parallel_for(0, m, 1, [&](int64_t b, int64_t e) {
    knet::mask_iou::packed_iou_rows(dp, gp, n, nwords, da.data(), ga.data(), cp, o, b, e);
  });
  return out;
}

void bind_mask_iou(py::module_& m) {
  m.def("mask_iou_rle", &iou_rle, py::arg("dt"), py::arg("gt"), py::arg("iscrowd") = py::none(),
        "IoU [M, N] of COCO RLE dicts, exactly pycocotools maskUtils.iou (dt rows)");
  m.def("mask_pack", &pack, py::arg("masks"), "[N, H, W] masks -> [N, ceil(H*W/64)] int64 bit-packed");
  m.def("mask_iou_packed", &iou_packed, py::arg("dt_bits"), py::arg("gt_bits"), py::arg("iscrowd"),
        "IoU [M, N] float64 of bit-packed masks (crowd: intersection / dt area)");
}

}  // namespace

KNET_REGISTER_BINDINGS(bind_mask_iou);
