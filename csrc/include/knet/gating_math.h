// knet/gating_math.h: per-element math of the fused adaptive gate (K-Net Eqs. (5)-(6)),
// shared by csrc/ops/gating/cpu and csrc/ops/gating/cuda.
//
// Per row, with y_* = LN_*(x_*) = (x_* - mean_*) * rstd_* * w_* + b_*:
//   out = sigmoid(y_up) * y_fo + sigmoid(y_in) * y_ko
// (up = gate_up / norm_in, fo = feat_out / norm_out, in = gate_in / input_norm_in,
//  ko = kernel_out / input_norm_out).
#pragma once

#include "knet/fast_math.h"
#include "knet/host_device.h"

namespace knet {

// index of the four LayerNorms in the stats / activation order of knet.ops.adaptive_gate
enum GateLn : int { kGateIn = 0, kGateUp = 1, kFeatOut = 2, kKernelOut = 3 };

// the gated sum given the two gates s_in = sigmoid(y_in), s_up = sigmoid(y_up)
template <typename T>
KNET_HOST_DEVICE T adaptive_gate_mix(T s_in, T s_up, T y_fo, T y_ko) {
  return s_up * y_fo + s_in * y_ko;
}

template <typename T>
KNET_HOST_DEVICE T adaptive_gate_elem(T y_in, T y_up, T y_fo, T y_ko) {
  return adaptive_gate_mix(sigmoid(y_in), sigmoid(y_up), y_fo, y_ko);
}

// dL/dy for the four LayerNorm outputs of one element, given dL/dout = g and the two gates
template <typename T>
KNET_HOST_DEVICE void adaptive_gate_mix_backward(T g, T s_in, T s_up, T y_fo, T y_ko, T& d_in, T& d_up, T& d_fo,
                                                 T& d_ko) {
  d_fo = g * s_up;
  d_ko = g * s_in;
  // s (1 - s) written without a constant so that T may also be a SIMD vector type
  d_up = g * y_fo * (s_up - s_up * s_up);
  d_in = g * y_ko * (s_in - s_in * s_in);
}

template <typename T>
KNET_HOST_DEVICE void adaptive_gate_elem_backward(T g, T y_in, T y_up, T y_fo, T y_ko, T& d_in, T& d_up, T& d_fo,
                                                  T& d_ko) {
  adaptive_gate_mix_backward(g, sigmoid(y_in), sigmoid(y_up), y_fo, y_ko, d_in, d_up, d_fo, d_ko);
}

// LayerNorm backward of one element: dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat xhat))
template <typename T>
KNET_HOST_DEVICE T layer_norm_dx(T dxhat, T xhat, T rstd, T mean_dxhat, T mean_dxhat_xhat) {
  return rstd * (dxhat - mean_dxhat - xhat * mean_dxhat_xhat);
}

}  // namespace knet
