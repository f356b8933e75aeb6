// assemble: device dispatch and pybind11 bindings (knet._C.assemble_forward / _grad_feats /
// _grad_masks). Python wrapper, twin and torch.library registration: knet/ops/assemble.py.
#include <torch/extension.h>

#include <string>

#include "knet/bindings.h"
#include "knet/op_utils.h"
#include "ops/assemble/assemble.h"

namespace knet {
namespace {

GateMode parse_mode(const std::string& mode) {
  if (mode == "binary") return GateMode::kBinary;
  if (mode == "softmax") return GateMode::kSoftmax;
  if (mode == "sigmoid") return GateMode::kSigmoid;
  TORCH_CHECK(false, "assemble: mode must be binary, softmax or sigmoid, got '", mode, "'");
}

void check_inputs(const at::Tensor& mask_logits, const at::Tensor& feats) {
  TORCH_CHECK(mask_logits.dim() == 4 && feats.dim() == 4, "assemble: expects mask_logits [B,N,H,W] and feats [B,C,H,W]");
  TORCH_CHECK(mask_logits.size(0) == feats.size(0) && mask_logits.size(2) == feats.size(2) &&
                  mask_logits.size(3) == feats.size(3),
              "assemble: mask_logits ", mask_logits.sizes(), " and feats ", feats.sizes(), " do not match");
  check_same_device(mask_logits, feats, "assemble");
}

at::Tensor forward(const at::Tensor& mask_logits, const at::Tensor& feats, const std::string& mode) {
  check_inputs(mask_logits, feats);
  const GateMode gm = parse_mode(mode);
  const auto ct = compute_dtype(feats.scalar_type());
  const at::Tensor m = prepare(mask_logits, ct), f = prepare(feats, ct);
  at::Tensor out;
  if (f.is_cuda()) {
#ifdef WITH_CUDA
    out = assemble_forward_cuda(m, f, gm);
#else
    no_cuda("assemble");
#endif
  } else {
    out = assemble_forward_cpu(m, f, gm);
  }
  return out.to(feats.scalar_type());
}

at::Tensor grad_feats(const at::Tensor& grad, const at::Tensor& mask_logits, const at::Tensor& feats,
                      const std::string& mode) {
  check_inputs(mask_logits, feats);
  const GateMode gm = parse_mode(mode);
  const auto ct = compute_dtype(feats.scalar_type());
  const at::Tensor g = prepare(grad, ct), m = prepare(mask_logits, ct), f = prepare(feats, ct);
  at::Tensor out;
  if (f.is_cuda()) {
#ifdef WITH_CUDA
    out = assemble_grad_feats_cuda(g, m, f, gm);
#else
    no_cuda("assemble");
#endif
  } else {
    out = assemble_grad_feats_cpu(g, m, f, gm);
  }
  return out.to(feats.scalar_type());
}

at::Tensor grad_masks(const at::Tensor& grad, const at::Tensor& mask_logits, const at::Tensor& feats,
                      const std::string& mode) {
  check_inputs(mask_logits, feats);
  const GateMode gm = parse_mode(mode);
  const auto ct = compute_dtype(feats.scalar_type());
  const at::Tensor g = prepare(grad, ct), m = prepare(mask_logits, ct), f = prepare(feats, ct);
  at::Tensor out;
  if (f.is_cuda()) {
#ifdef WITH_CUDA
    out = assemble_grad_masks_cuda(g, m, f, gm);
#else
    no_cuda("assemble");
#endif
  } else {
    out = assemble_grad_masks_cpu(g, m, f, gm);
  }
  return out.to(mask_logits.scalar_type());
}

void bind_assemble(pybind11::module_& m) {
  using pybind11::arg;
  m.def("assemble_forward", &forward, "F[b,n,c] = sum_p gate(M)[b,n,p] X[b,c,p]", arg("mask_logits"), arg("feats"),
        arg("mode"));
  m.def("assemble_grad_feats", &grad_feats, "dL/dfeats of assemble", arg("grad"), arg("mask_logits"), arg("feats"),
        arg("mode"));
  m.def("assemble_grad_masks", &grad_masks, "dL/dmask_logits of assemble (softmax / sigmoid)", arg("grad"),
        arg("mask_logits"), arg("feats"), arg("mode"));
}

}  // namespace

KNET_REGISTER_BINDINGS(bind_assemble);

}  // namespace knet
