// knet/op_utils.h: small helpers shared by the op bindings (dtype policy, layout, device checks).
//
// Dtype policy: the kernels compute in float32 or float64. float16 / bfloat16 inputs are
// upcast to float32 and the results cast back (error below the twin's own error in that dtype).
#pragma once

#include <ATen/ATen.h>

#include <string>

namespace knet {

inline at::ScalarType compute_dtype(at::ScalarType t) {
  TORCH_CHECK(at::isFloatingType(t), "knet ops need floating-point tensors, got ", t);
  return t == at::kDouble ? at::kDouble : at::kFloat;
}

// contiguous tensor in the compute dtype (no copy when already so)
inline at::Tensor prepare(const at::Tensor& t, at::ScalarType ct) {
  return t.to(ct).contiguous();
}

inline void check_same_device(const at::Tensor& a, const at::Tensor& b, const char* op) {
  TORCH_CHECK(a.device() == b.device(), op, ": tensors on different devices (", a.device(), ", ", b.device(), ")");
}

[[noreturn]] inline void no_cuda(const char* op) {
  TORCH_CHECK(false, op, ": knet._C was built without CUDA kernels; rebuild with FORCE_CUDA=1");
}

}  // namespace knet
