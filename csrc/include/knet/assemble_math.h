// knet/assemble_math.h: per-element gates of group feature assembling (K-Net Eq. (3)),
// shared by csrc/ops/assemble/cpu and csrc/ops/assemble/cuda.
#pragma once

#include "knet/fast_math.h"
#include "knet/host_device.h"

namespace knet {

enum class GateMode : int { kBinary = 0, kSoftmax = 1, kSigmoid = 2 };

// binary gate: sigmoid(m) > 0.5  <=>  m > 0 (NaN -> 0). Not differentiable.
template <typename T>
KNET_HOST_DEVICE bool binary_gate(T m) {
  return m > T(0);
}

// softmax gate over N, given the pixel's max logit and 1 / sum_n exp(m_n - max)
template <typename T>
KNET_HOST_DEVICE T softmax_gate(T m, T max_m, T inv_sum) {
  return exp_approx(m - max_m) * inv_sum;
}

// d sigmoid: dL/dm = dL/dg * s (1 - s)
template <typename T>
KNET_HOST_DEVICE T sigmoid_gate_backward(T dgate, T s) {
  return dgate * s * (T(1) - s);
}

// d softmax over N: dL/dm_n = s_n (dL/dg_n - sum_n' s_n' dL/dg_n')
template <typename T>
KNET_HOST_DEVICE T softmax_gate_backward(T dgate, T s, T dot) {
  return s * (dgate - dot);
}

}  // namespace knet
