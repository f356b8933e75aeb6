// gating: the fused adaptive gate of the kernel update (K-Net Eqs. (5)-(6)).
//   out = sigmoid(LN_1(x_1)) * LN_2(x_2) + sigmoid(LN_0(x_0)) * LN_3(x_3)
// with x_0 = gate_in, x_1 = gate_up, x_2 = feat_out, x_3 = kernel_out (see knet/gating_math.h),
// all [M, Cf] with unit stride along Cf (rows may be strided); params[2j], params[2j+1] are the
// weight and bias of LN_j ([Cf], contiguous). Tensors are float32 / float64.
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <tuple>
#include <vector>

namespace knet {

using GateActs = std::array<at::Tensor, 4>;
using GateParams = std::array<at::Tensor, 8>;

// What the CPU and CUDA kernels read: the four activations' data and row strides and the four
// LayerNorms' weight and bias, in knet/gating_math.h's GateLn order.
template <typename T>
struct GateRows {
  const T* x[4];
  int64_t stride[4];
  const T* w[4];
  const T* b[4];
};

template <typename T>
GateRows<T> gate_rows(const GateActs& acts, const GateParams& params) {
  GateRows<T> r;
  for (int j = 0; j < 4; ++j) {
    r.x[j] = acts[j].data_ptr<T>();
    r.stride[j] = acts[j].stride(0);
    r.w[j] = params[2 * j].data_ptr<T>();
    r.b[j] = params[2 * j + 1].data_ptr<T>();
  }
  return r;
}

// -> (out [M, Cf], stats [4, M, 2] = (mean, rstd) per LayerNorm and row,
//     gates [2, M, Cf] = (G_K, G_F), saved so that the backward needs no exp)
std::tuple<at::Tensor, at::Tensor, at::Tensor> adaptive_gate_forward_cpu(const GateActs& acts,
                                                                         const GateParams& params, double eps);
// -> 12 gradients: the 4 activations ([M, Cf]) then the 8 parameters ([Cf])
std::vector<at::Tensor> adaptive_gate_backward_cpu(const at::Tensor& grad, const GateActs& acts,
                                                   const GateParams& params, const at::Tensor& stats,
                                                   const at::Tensor& gates);

#ifdef WITH_CUDA
// (the CUDA kernels recompute the gates in the backward: no gates tensor)
std::tuple<at::Tensor, at::Tensor> adaptive_gate_forward_cuda(const GateActs& acts, const GateParams& params,
                                                              double eps);
std::vector<at::Tensor> adaptive_gate_backward_cuda(const at::Tensor& grad, const GateActs& acts,
                                                    const GateParams& params, const at::Tensor& stats);
#endif

}  // namespace knet
