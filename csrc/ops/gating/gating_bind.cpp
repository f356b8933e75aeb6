// gating: device dispatch and pybind11 bindings (knet._C.adaptive_gate_forward / _backward).
// Python wrapper, twin and torch.library registration: knet/ops/gating.py.
#include <torch/extension.h>

#include <vector>

#include "knet/bindings.h"
#include "knet/op_utils.h"
#include "ops/gating/gating.h"

namespace knet {
namespace {

// rows may be strided (slices of the linear layers' outputs); the Cf axis must be unit-stride
// (the checks skip the dispatcher calls of no-op .to()/.contiguous(): this op is tiny per call)
at::Tensor prepare_rows(const at::Tensor& t, at::ScalarType ct) {
  at::Tensor r = t.scalar_type() == ct ? t : t.to(ct);
  return r.stride(1) == 1 && r.stride(0) >= r.size(1) ? r : r.contiguous();
}

at::Tensor prepare_vec(const at::Tensor& t, at::ScalarType ct) {
  return t.scalar_type() == ct && t.is_contiguous() ? t : prepare(t, ct);
}

at::Tensor cast_back(const at::Tensor& t, at::ScalarType dt) { return t.scalar_type() == dt ? t : t.to(dt); }

void unpack(const std::vector<at::Tensor>& acts_in, const std::vector<at::Tensor>& params_in, GateActs& acts,
            GateParams& params, at::ScalarType& ct) {
  TORCH_CHECK(acts_in.size() == 4 && params_in.size() == 8, "adaptive_gate: expects 4 activations and 8 parameters");
  TORCH_CHECK(acts_in[0].dim() == 2, "adaptive_gate: activations must be [M, Cf]");
  ct = compute_dtype(acts_in[0].scalar_type());
  const int64_t m = acts_in[0].size(0), cf = acts_in[0].size(1);
  for (int j = 0; j < 4; ++j) {
    TORCH_CHECK(acts_in[j].dim() == 2 && acts_in[j].size(0) == m && acts_in[j].size(1) == cf,
                "adaptive_gate: activation ", j, " has shape ", acts_in[j].sizes(), ", expected [", m, ", ", cf, "]");
    check_same_device(acts_in[0], acts_in[j], "adaptive_gate");
    acts[j] = prepare_rows(acts_in[j], ct);
  }
  for (int i = 0; i < 8; ++i) {
    TORCH_CHECK(params_in[i].dim() == 1 && params_in[i].size(0) == cf, "adaptive_gate: parameter ", i, " has shape ",
                params_in[i].sizes(), ", expected [", cf, "]");
    check_same_device(acts_in[0], params_in[i], "adaptive_gate");
    params[i] = prepare_vec(params_in[i], ct);
  }
}

std::tuple<at::Tensor, at::Tensor> forward(const std::vector<at::Tensor>& acts_in,
                                           const std::vector<at::Tensor>& params_in, double eps) {
  GateActs acts;
  GateParams params;
  at::ScalarType ct;
  unpack(acts_in, params_in, acts, params, ct);
  std::tuple<at::Tensor, at::Tensor> res;
  if (acts[0].is_cuda()) {
#ifdef WITH_CUDA
    res = adaptive_gate_forward_cuda(acts, params, eps);
#else
    no_cuda("adaptive_gate");
#endif
  } else {
    res = adaptive_gate_forward_cpu(acts, params, eps);
  }
  return {cast_back(std::get<0>(res), acts_in[0].scalar_type()), std::get<1>(res)};
}

std::vector<at::Tensor> backward(const at::Tensor& grad, const std::vector<at::Tensor>& acts_in,
                                 const std::vector<at::Tensor>& params_in, const at::Tensor& stats, double /*eps*/) {
  GateActs acts;
  GateParams params;
  at::ScalarType ct;
  unpack(acts_in, params_in, acts, params, ct);
  const at::Tensor g = prepare_vec(grad, ct), st = prepare_vec(stats, ct);
  TORCH_CHECK(g.sizes() == acts[0].sizes(), "adaptive_gate: grad has shape ", g.sizes());
  std::vector<at::Tensor> grads;
  if (acts[0].is_cuda()) {
#ifdef WITH_CUDA
    grads = adaptive_gate_backward_cuda(g, acts, params, st);
#else
    no_cuda("adaptive_gate");
#endif
  } else {
    grads = adaptive_gate_backward_cpu(g, acts, params, st);
  }
  for (int j = 0; j < 4; ++j) grads[j] = cast_back(grads[j], acts_in[j].scalar_type());
  for (int i = 0; i < 8; ++i) grads[4 + i] = cast_back(grads[4 + i], params_in[i].scalar_type());
  return grads;
}

void bind_gating(pybind11::module_& m) {
  using pybind11::arg;
  m.def("adaptive_gate_forward", &forward,
        "(sigmoid(LN1(x1)) * LN2(x2) + sigmoid(LN0(x0)) * LN3(x3), LayerNorm stats [4, M, 2])", arg("acts"),
        arg("params"), arg("eps"));
  m.def("adaptive_gate_backward", &backward, "the 12 gradients of adaptive_gate (4 activations, 8 parameters)",
        arg("grad"), arg("acts"), arg("params"), arg("stats"), arg("eps"));
}

}  // namespace

KNET_REGISTER_BINDINGS(bind_gating);

}  // namespace knet
