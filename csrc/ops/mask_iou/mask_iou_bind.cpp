// Device dispatch + pybind11 bindings of the mask IoU op (knet._C.mask_iou_*).
// Python wrapper and PyTorch twin: knet/ops/mask_iou.py.
#include <ATen/Parallel.h>
#include <torch/extension.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "knet/bindings.h"
#include "ops/mask_iou/mask_iou.h"
#include "ops/rle/rle_py.h"
#ifdef WITH_CUDA
#include "ops/mask_iou/cuda/mask_iou_cuda.h"
#endif

namespace py = pybind11;
using knet::mask_iou::RunMask;
using knet::rle::Rle;

namespace {

// One RLE as handed over from Python: a compressed string (borrowed from the dict, which the
// caller's list keeps alive) or, for list counts, counts already converted under the GIL.
struct RleSource {
  const char* s = nullptr;
  size_t len = 0;
  uint32_t h = 0, w = 0;
  Rle owned;  // list-count RLEs (and anything rle_from_py had to convert)
  bool is_string = false;
};

PyObject* interned(const char* name) {
  PyObject* k = PyUnicode_InternFromString(name);  // kept for the process lifetime
  if (k == nullptr) throw py::error_already_set();
  return k;
}

// Fast path for {"size": [h, w], "counts": str | bytes}: borrowed pointers, no copies, no
// temporary Python objects; everything else (list counts, errors) goes through rle_from_py.
void source_from_py(py::handle obj, RleSource& src) {
  static PyObject* const k_size = interned("size");
  static PyObject* const k_counts = interned("counts");
  PyObject* o = obj.ptr();
  if (PyDict_Check(o)) {
    PyObject* size = PyDict_GetItemWithError(o, k_size);
    PyObject* counts = size != nullptr ? PyDict_GetItemWithError(o, k_counts) : nullptr;
    if (counts != nullptr && PyList_Check(size) && PyList_GET_SIZE(size) == 2 &&
        (PyUnicode_Check(counts) || PyBytes_Check(counts))) {
      const long long hh = PyLong_AsLongLong(PyList_GET_ITEM(size, 0));
      const long long ww = PyLong_AsLongLong(PyList_GET_ITEM(size, 1));
      if (PyErr_Occurred()) PyErr_Clear();
      if (hh >= 0 && ww >= 0 && hh <= 0xffffffffLL && ww <= 0xffffffffLL) {
        Py_ssize_t len = 0;
        const char* s = nullptr;
        if (PyUnicode_Check(counts)) {
          s = PyUnicode_AsUTF8AndSize(counts, &len);
          if (s == nullptr) throw py::error_already_set();
        } else {
          char* b = nullptr;
          if (PyBytes_AsStringAndSize(counts, &b, &len) != 0) throw py::error_already_set();
          s = b;
        }
        src.s = s;
        src.len = static_cast<size_t>(len);
        src.h = static_cast<uint32_t>(hh);
        src.w = static_cast<uint32_t>(ww);
        src.is_string = true;
        return;
      }
    }
    if (PyErr_Occurred()) throw py::error_already_set();
  }
  knet::rle::rle_from_py(obj, src.owned);  // validates and raises the one-line ValueError
  src.h = src.owned.h;
  src.w = src.owned.w;
}

// Interval buffer entries needed by one source (counts <= string length; +2 for the pair slack).
size_t interval_capacity(const RleSource& src) { return (src.is_string ? src.len : src.owned.cnts.size()) + 2; }

constexpr uint32_t kMaxProfileWidth = 1u << 15;

// Decode one source into its RunMask (box, area, intervals at `iv`) in one pass.
void decode_source(const RleSource& src, uint32_t* iv, RunMask& out) {
  if (src.is_string)
    knet::mask_iou::runs_from_string(src.s, src.len, src.h, src.w, iv, out);
  else
    knet::mask_iou::runs_from_counts(src.owned.cnts.data(), src.owned.cnts.size(), src.h, src.w, iv, out);
}

py::array_t<double> iou_rle(py::sequence dt_objs, py::sequence gt_objs, py::object iscrowd_obj) {
  const size_t m = py::len(dt_objs), n = py::len(gt_objs);
  std::vector<RleSource> src(m + n);
  {
    const bool dt_list = PyList_Check(dt_objs.ptr()), gt_list = PyList_Check(gt_objs.ptr());
    for (size_t i = 0; i < m; ++i)
      source_from_py(dt_list ? py::handle(PyList_GET_ITEM(dt_objs.ptr(), i)) : py::handle(dt_objs[i]), src[i]);
    for (size_t i = 0; i < n; ++i)
      source_from_py(gt_list ? py::handle(PyList_GET_ITEM(gt_objs.ptr(), i)) : py::handle(gt_objs[i]), src[m + i]);
  }
  std::vector<uint8_t> crowd(n, 0);
  if (!iscrowd_obj.is_none()) {
    py::sequence seq = py::reinterpret_borrow<py::sequence>(iscrowd_obj);
    if (py::len(seq) != n) throw py::value_error("iscrowd must have one entry per ground truth");
    for (size_t i = 0; i < n; ++i) {
      const int t = PyObject_IsTrue(seq[i].ptr());
      if (t < 0) throw py::error_already_set();
      crowd[i] = static_cast<uint8_t>(t);
    }
  }
  py::array_t<double> out({static_cast<py::ssize_t>(m), static_cast<py::ssize_t>(n)});
  double* o = out.mutable_data();
  if (m == 0 || n == 0) return out;
  {
    py::gil_scoped_release release;
    std::vector<size_t> off(m + n + 1, 0);
    for (size_t i = 0; i < m + n; ++i) off[i + 1] = off[i] + interval_capacity(src[i]);
    std::unique_ptr<uint32_t[]> iv(new uint32_t[off[m + n]]);
    std::vector<RunMask> runs(m + n);
    // column profiles (2 x w int32 per mask, zeroed) for masks of moderate width
    std::vector<size_t> coff(m + n + 1, 0);
    for (size_t i = 0; i < m + n; ++i) coff[i + 1] = coff[i] + (src[i].w <= kMaxProfileWidth ? 2 * size_t(src[i].w) : 0);
    std::unique_ptr<int32_t[]> cols(new int32_t[coff[m + n] + 1]());
    for (size_t i = 0; i < m + n; ++i) {
      if (coff[i + 1] == coff[i]) continue;
      runs[i].col_start = cols.get() + coff[i];
      runs[i].col_end = cols.get() + coff[i] + src[i].w;
    }
    // Decoding the strings is about half the work: split it over the threads too, and only
    // when there are enough pairs (small calls stay on the calling thread).
    const int64_t total = static_cast<int64_t>(m + n);
    const int64_t grain = static_cast<int64_t>(m * n) >= 256 ? 8 : total;
    at::parallel_for(0, total, grain, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) decode_source(src[i], iv.get() + off[i], runs[i]);
    });
    // masks with zero-length runs keep their literal counts for the exact walk (rare: never
    // produced by encoders); every mask of a pair must then have them
    bool any_zero = false;
    for (const RunMask& r : runs) any_zero |= r.zero_run;
    std::vector<Rle> exact(any_zero ? m + n : 0);
    if (any_zero) {
      for (size_t i = 0; i < m + n; ++i) {
        if (src[i].is_string)
          knet::rle::from_string(src[i].s, src[i].len, src[i].h, src[i].w, exact[i]);
        else
          exact[i] = src[i].owned;
        runs[i].exact = &exact[i];
      }
    }
    const int64_t row_grain = std::max<int64_t>(1, 2048 / static_cast<int64_t>(n));
    at::parallel_for(0, static_cast<int64_t>(m), row_grain, [&](int64_t b, int64_t e) {
      knet::mask_iou::run_iou_rows(runs.data(), runs.data() + m, n, crowd.data(), o, static_cast<size_t>(b),
                                   static_cast<size_t>(e));
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
