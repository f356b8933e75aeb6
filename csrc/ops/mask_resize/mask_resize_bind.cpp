// pybind11 binding of the thresholded mask resize (knet._C.mask_resize_threshold), CPU only.
// Python wrapper, device choice and PyTorch twin: knet/ops/mask_resize.py.
#include <ATen/Parallel.h>
#include <torch/extension.h>

#include <cstring>
#include <vector>

#include "knet/bindings.h"
#include "ops/mask_resize/mask_resize_core.h"

namespace py = pybind11;
namespace mr = knet::mask_resize;

namespace {

void check_shape(const std::vector<int64_t>& s, const char* name) {
  TORCH_CHECK(s.size() == 2 && s[0] >= 1 && s[1] >= 1, "mask_resize_threshold: ", name,
              " must be two positive sizes (height, width)");
}

// probs [N, h4, w4] in [0, 1] -> bool [K, Ho, Wo]: out[i] = resize(probs[index[i]]) > threshold
at::Tensor resize_threshold(const at::Tensor& probs_in, const at::Tensor& index_in, std::vector<int64_t> batch_shape,
                            std::vector<int64_t> img_shape, std::vector<int64_t> ori_shape, double threshold) {
  TORCH_CHECK(probs_in.device().is_cpu() && index_in.device().is_cpu(),
              "mask_resize_threshold: CPU tensors only (the PyTorch twin serves other devices)");
  TORCH_CHECK(probs_in.dim() == 3, "mask_resize_threshold expects probabilities [N, h, w], got ", probs_in.sizes());
  TORCH_CHECK(index_in.dim() == 1, "mask_resize_threshold expects a 1-D index");
  check_shape(batch_shape, "batch_shape");
  check_shape(img_shape, "img_shape");
  check_shape(ori_shape, "ori_shape");
  TORCH_CHECK(img_shape[0] <= batch_shape[0] && img_shape[1] <= batch_shape[1],
              "mask_resize_threshold: img_shape must fit inside batch_shape");
  const at::Tensor probs = probs_in.to(at::kFloat).contiguous();
  const at::Tensor index = index_in.to(at::kLong).contiguous();
  const int64_t n = probs.size(0), h4 = probs.size(1), w4 = probs.size(2), k = index.numel();
  TORCH_CHECK((h4 >= 1 && w4 >= 1) || n == 0, "mask_resize_threshold: empty probability maps");
  const int64_t ho = ori_shape[0], wo = ori_shape[1];
  at::Tensor out = at::empty({k, ho, wo}, probs.options().dtype(at::kBool));
  if (k == 0) return out;

  const int64_t* idx = index.data_ptr<int64_t>();
  std::vector<int64_t> first(n, -1), todo, dups;  // each distinct map is resized once
  for (int64_t i = 0; i < k; ++i) {
    TORCH_CHECK(idx[i] >= 0 && idx[i] < n, "mask_resize_threshold: index ", idx[i], " out of range for ", n, " maps");
    if (first[idx[i]] < 0) {
      first[idx[i]] = i;
      todo.push_back(i);
    } else {
      dups.push_back(i);
    }
  }
  const mr::Axis ay = mr::composite_axis(h4, batch_shape[0], img_shape[0], ho);
  const mr::Axis ax = mr::composite_axis(w4, batch_shape[1], img_shape[1], wo);
  const float* p = probs.data_ptr<float>();
  uint8_t* o = reinterpret_cast<uint8_t*>(out.data_ptr<bool>());
  const int64_t plane = ho * wo;
  {
    py::gil_scoped_release release;
    at::parallel_for(0, static_cast<int64_t>(todo.size()), 1, [&](int64_t b, int64_t e) {
      mr::Scratch scratch;
      for (int64_t t = b; t < e; ++t) {
        const int64_t i = todo[t];
        mr::resize_threshold(p + idx[i] * h4 * w4, ay, ax, threshold, o + i * plane, scratch);
      }
    });
    at::parallel_for(0, static_cast<int64_t>(dups.size()), 4, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        const int64_t i = dups[t];
        std::memcpy(o + i * plane, o + first[idx[i]] * plane, static_cast<size_t>(plane));
      }
    });
  }
  return out;
}

void bind_mask_resize(py::module_& m) {
  m.def("mask_resize_threshold", &resize_threshold, py::arg("probs"), py::arg("index"), py::arg("batch_shape"),
        py::arg("img_shape"), py::arg("ori_shape"), py::arg("threshold"),
        "probs [N, h, w] -> bool [K, H, W]: bilinear to batch_shape, crop to img_shape, bilinear to ori_shape, "
        "> threshold, for maps index[0..K)");
}

}  // namespace

KNET_REGISTER_BINDINGS(bind_mask_resize);
