// gating: device dispatch and pybind11 bindings (knet._C.adaptive_gate_forward / _backward).
// Python wrapper, twin and torch.library registration: knet/ops/gating.py.
#include <torch/csrc/autograd/custom_function.h>
#include <torch/extension.h>

#include <vector>

#include "knet/bindings.h"
#include "knet/op_utils.h"
#include "ops/gating/cpu/gating_cpu.h"
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

// -> (out, stats [4, M, 2], gates): gates is [2, M, Cf] on CPU (saved sigmoid gates) and empty
// on CUDA (whose backward recomputes them)
std::tuple<at::Tensor, at::Tensor, at::Tensor> forward_dispatch(const std::vector<at::Tensor>& acts_in,
                                                                const std::vector<at::Tensor>& params_in, double eps) {
  GateActs acts;
  GateParams params;
  at::ScalarType ct;
  unpack(acts_in, params_in, acts, params, ct);
  std::tuple<at::Tensor, at::Tensor, at::Tensor> res;
  if (acts[0].is_cuda()) {
#ifdef WITH_CUDA
    auto [out, stats] = adaptive_gate_forward_cuda(acts, params, eps);
    res = {out, stats, at::empty({0}, stats.options())};
#else
    no_cuda("adaptive_gate");
#endif
  } else {
    res = adaptive_gate_forward_cpu(acts, params, eps);
  }
  return {cast_back(std::get<0>(res), acts_in[0].scalar_type()), std::get<1>(res), std::get<2>(res)};
}

std::vector<at::Tensor> backward_dispatch(const at::Tensor& grad, const std::vector<at::Tensor>& acts_in,
                                          const std::vector<at::Tensor>& params_in, const at::Tensor& stats,
                                          const at::Tensor& gates, double /*eps*/) {
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
    const int64_t m = acts[0].size(0), cf = acts[0].size(1);
    TORCH_CHECK(gates.dim() == 3 && gates.size(0) == 2 && gates.size(1) == m && gates.size(2) == cf,
                "adaptive_gate: the saved gates have shape ", gates.sizes(), ", expected [2, ", m, ", ", cf, "]");
    grads = adaptive_gate_backward_cpu(g, acts, params, st, prepare_vec(gates, ct));
  }
  for (int j = 0; j < 4; ++j) grads[j] = cast_back(grads[j], acts_in[j].scalar_type());
  for (int i = 0; i < 8; ++i) grads[4 + i] = cast_back(grads[4 + i], params_in[i].scalar_type());
  return grads;
}

// Eager-mode autograd in C++: the forward and the backward node run without Python (an
// autograd.Function in Python costs about as much per call as the 153-row kernel itself).
// torch.compile goes through the torch.library op of knet/ops/gating.py instead.
struct AdaptiveGateFunction : public torch::autograd::Function<AdaptiveGateFunction> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& gate_in, const at::Tensor& gate_up,
                            const at::Tensor& feat_out, const at::Tensor& kernel_out, const at::Tensor& w0,
                            const at::Tensor& b0, const at::Tensor& w1, const at::Tensor& b1, const at::Tensor& w2,
                            const at::Tensor& b2, const at::Tensor& w3, const at::Tensor& b3, double eps) {
    const std::vector<at::Tensor> acts{gate_in, gate_up, feat_out, kernel_out}, params{w0, b0, w1, b1, w2, b2, w3, b3};
    auto [out, stats, gates] = forward_dispatch(acts, params, eps);
    ctx->save_for_backward({gate_in, gate_up, feat_out, kernel_out, w0, b0, w1, b1, w2, b2, w3, b3, stats, gates});
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_out) {
    const torch::autograd::variable_list saved = ctx->get_saved_variables();
    const std::vector<at::Tensor> acts(saved.begin(), saved.begin() + 4), params(saved.begin() + 4, saved.begin() + 12);
    std::vector<at::Tensor> grads = backward_dispatch(grad_out[0], acts, params, saved[12], saved[13], 0.0);
    grads.emplace_back();  // eps
    return grads;
  }
};

at::Tensor adaptive_gate_autograd(const at::Tensor& gate_in, const at::Tensor& gate_up, const at::Tensor& feat_out,
                                  const at::Tensor& kernel_out, const at::Tensor& w0, const at::Tensor& b0,
                                  const at::Tensor& w1, const at::Tensor& b1, const at::Tensor& w2, const at::Tensor& b2,
                                  const at::Tensor& w3, const at::Tensor& b3, double eps) {
  return AdaptiveGateFunction::apply(gate_in, gate_up, feat_out, kernel_out, w0, b0, w1, b1, w2, b2, w3, b3, eps);
}

void bind_gating(pybind11::module_& m) {
  using pybind11::arg;
  m.def("adaptive_gate_forward", &forward_dispatch,
        "(sigmoid(LN1(x1)) * LN2(x2) + sigmoid(LN0(x0)) * LN3(x3), LayerNorm stats [4, M, 2], "
        "saved gates [2, M, Cf] (CPU) or [0] (CUDA))",
        arg("acts"), arg("params"), arg("eps"));
  m.def("adaptive_gate_backward", &backward_dispatch, "the 12 gradients of adaptive_gate (4 activations, 8 parameters)",
        arg("grad"), arg("acts"), arg("params"), arg("stats"), arg("gates"), arg("eps"));
  m.def(
      "gating_cpu_isa", [] { return std::string(gating_cpu::avx512_enabled() ? "avx512" : "avx2/generic"); },
      "which build of the float32 CPU gating kernels runs: 'avx512' or 'avx2/generic'");
  m.def("gating_set_avx512", &gating_cpu::set_avx512,
        "use the AVX-512 float32 gating kernels (where compiled and supported); returns the previous setting",
        arg("enabled"));
  m.def("adaptive_gate_autograd", &adaptive_gate_autograd,
        "adaptive_gate with its backward recorded by a C++ autograd node (eager mode)", arg("gate_in"),
        arg("gate_up"), arg("feat_out"), arg("kernel_out"), arg("input_norm_in_weight"), arg("input_norm_in_bias"),
        arg("norm_in_weight"), arg("norm_in_bias"), arg("norm_out_weight"), arg("norm_out_bias"),
        arg("input_norm_out_weight"), arg("input_norm_out_bias"), arg("eps"));
}

}  // namespace

KNET_REGISTER_BINDINGS(bind_gating);

}  // namespace knet
