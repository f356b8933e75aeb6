// mask_conv: device dispatch and pybind11 bindings (knet._C.mask_conv_forward / _backward).
// Python wrapper, twin and torch.library registration: knet/ops/mask_conv.py.
#include <torch/extension.h>

#include <string>

#include "knet/bindings.h"
#include "knet/op_utils.h"
#include "ops/mask_conv/cpu/mask_conv_gemm.h"
#include "ops/mask_conv/mask_conv.h"

namespace knet {
namespace {

void check_inputs(const at::Tensor& feats, const at::Tensor& kernels) {
  TORCH_CHECK(feats.dim() == 4 && kernels.dim() == 3, "mask_conv: expects feats [B,C,H,W] and kernels [B,N,C]");
  TORCH_CHECK(feats.size(0) == kernels.size(0) && feats.size(1) == kernels.size(2),
              "mask_conv: feats ", feats.sizes(), " and kernels ", kernels.sizes(), " do not match");
  check_same_device(feats, kernels, "mask_conv");
}

at::Tensor forward(const at::Tensor& feats, const at::Tensor& kernels) {
  check_inputs(feats, kernels);
  const auto ct = compute_dtype(feats.scalar_type());
  const at::Tensor f = prepare(feats, ct), k = prepare(kernels, ct);
  at::Tensor out;
  if (f.is_cuda()) {
#ifdef WITH_CUDA
    out = mask_conv_forward_cuda(f, k);
#else
    no_cuda("mask_conv");
#endif
  } else {
    out = mask_conv_forward_cpu(f, k);
  }
  return out.to(feats.scalar_type());
}

std::tuple<at::Tensor, at::Tensor> backward(const at::Tensor& grad, const at::Tensor& feats,
                                            const at::Tensor& kernels) {
  check_inputs(feats, kernels);
  const auto ct = compute_dtype(feats.scalar_type());
  const at::Tensor g = prepare(grad, ct), f = prepare(feats, ct), k = prepare(kernels, ct);
  std::tuple<at::Tensor, at::Tensor> out;
  if (f.is_cuda()) {
#ifdef WITH_CUDA
    out = mask_conv_backward_cuda(g, f, k);
#else
    no_cuda("mask_conv");
#endif
  } else {
    out = mask_conv_backward_cpu(g, f, k);
  }
  return {std::get<0>(out).to(feats.scalar_type()), std::get<1>(out).to(kernels.scalar_type())};
}

void bind_mask_conv(pybind11::module_& m) {
  m.def("mask_conv_forward", &forward, "masks[b,n,h,w] = sum_c kernels[b,n,c] feats[b,c,h,w]",
        pybind11::arg("feats"), pybind11::arg("kernels"));
  m.def("mask_conv_backward", &backward, "(grad_feats, grad_kernels) of mask_conv", pybind11::arg("grad"),
        pybind11::arg("feats"), pybind11::arg("kernels"));
  m.def(
      "mask_conv_cpu_isa", [] { return std::string(mask_conv_cpu::avx512_enabled() ? "avx512" : "blas"); },
      "which float32 CPU mask_conv runs: 'avx512' (knet's GEMM, mask_conv_gemm_avx512.cpp) or 'blas' (at::bmm)");
  m.def("mask_conv_set_avx512", &mask_conv_cpu::set_avx512,
        "use knet's AVX-512 float32 GEMM in the CPU mask_conv (where compiled and supported); returns the previous "
        "setting",
        pybind11::arg("enabled"));
}

}  // namespace

KNET_REGISTER_BINDINGS(bind_mask_conv);

}  // namespace knet
