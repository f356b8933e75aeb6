// CPU mask_conv: the dynamic 1x1 convolution is a batched GEMM, [N, C] x [C, H*W] per image.
//
// float32 on CPUs with AVX-512 runs knet's own GEMM (mask_conv_gemm_avx512.cpp: packed
// micro-panels, a 6 x 32 register-blocked FMA micro-tile, runs of 32-pixel units over
// at::parallel_for). On the development machine (AMD Zen 4, AVX-512) the MKL sgemm behind at::bmm
// and the einsum twin reaches ~65-80 GFLOPS per core on these shapes, the micro-tile ~118 on
// cached data (the FMA peak) and the whole GEMM ~100: README "Kernels" has the measured ratios.
// The same GEMM computes the backward's dX = K^T G; dK = G X^T (a reduction over the pixels into
// a small N x C matrix) stays on at::bmm. float16 / bfloat16 inputs arrive here upcast to float32
// (op_utils.h) and take the float32 path. float64, CPUs without AVX-512 and KNET_NO_AVX512=1 use
// at::bmm, writing straight into the output (no einsum permutes / copies).
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "ops/mask_conv/cpu/mask_conv_gemm.h"
#include "ops/mask_conv/mask_conv.h"

namespace knet {
namespace {

constexpr int64_t kTaskFlops = int64_t{1} << 22;  // multiply-adds per thread task at least

bool use_own_gemm(const at::Tensor& t) { return t.scalar_type() == at::kFloat && mask_conv_cpu::avx512_enabled(); }

// out[b] = A[b] rows[b]: A [B, M, K] (any strides), rows [B, K, P] and out [B, M, P] contiguous.
void own_gemm(const at::Tensor& a, const at::Tensor& rows, at::Tensor& out) {
  TORCH_CHECK(rows.is_contiguous() && out.is_contiguous(), "mask_conv: GEMM rows and output must be contiguous");
  mask_conv_cpu::Gemm g;
  g.batch = a.size(0);
  g.m = a.size(1);
  g.k = a.size(2);
  g.p = rows.size(2);
  g.a = a.data_ptr<float>();
  g.a_batch = a.stride(0);
  g.a_row = a.stride(1);
  g.a_col = a.stride(2);
  g.b = rows.data_ptr<float>();
  g.b_batch = g.k * g.p;
  g.ldb = g.p;
  g.c = out.data_ptr<float>();
  g.c_batch = g.m * g.p;
  g.ldc = g.p;
  const mask_conv_cpu::GemmPlan plan = mask_conv_cpu::gemm_plan(g);
  std::vector<float> packed(static_cast<size_t>(plan.packed_a_floats));
  mask_conv_cpu::gemm_pack_a_avx512(g, plan, packed.data());
  // threads take contiguous runs of 32-pixel units (at::parallel_for: one run per thread)
  const int64_t grain = std::max<int64_t>(1, kTaskFlops / std::max<int64_t>(plan.unit_flops, 1));
  at::parallel_for(0, plan.units, grain, [&](int64_t u0, int64_t u1) {
    mask_conv_cpu::gemm_units_avx512(g, plan, packed.data(), u0, u1);
  });
}

}  // namespace

at::Tensor mask_conv_forward_cpu(const at::Tensor& feats, const at::Tensor& kernels) {
  const int64_t b = feats.size(0), c = feats.size(1), h = feats.size(2), w = feats.size(3);
  const int64_t n = kernels.size(1);
  at::Tensor out = at::empty({b, n, h, w}, feats.options());
  if (out.numel() == 0) return out;
  if (c == 0) return out.zero_();
  at::Tensor out3 = out.view({b, n, h * w});
  if (use_own_gemm(feats)) {
    own_gemm(kernels, feats.view({b, c, h * w}), out3);  // [B,N,C] x [B,C,HW]
  } else {
    at::bmm_out(out3, kernels, feats.view({b, c, h * w}));
  }
  return out;
}

std::tuple<at::Tensor, at::Tensor> mask_conv_backward_cpu(const at::Tensor& grad, const at::Tensor& feats,
                                                          const at::Tensor& kernels) {
  const int64_t b = feats.size(0), c = feats.size(1), h = feats.size(2), w = feats.size(3);
  const int64_t n = kernels.size(1);
  if (n == 0 || c == 0 || h * w == 0 || b == 0) {
    return {at::zeros({b, c, h, w}, feats.options()), at::zeros({b, n, c}, kernels.options())};
  }
  at::Tensor grad_feats = at::empty({b, c, h, w}, feats.options());
  at::Tensor grad_kernels = at::empty({b, n, c}, kernels.options());
  const at::Tensor g = grad.view({b, n, h * w});
  // dX[b] = K[b]^T G[b]: [C, N] x [N, HW]
  at::Tensor grad_feats3 = grad_feats.view({b, c, h * w});
  if (use_own_gemm(feats)) {
    own_gemm(kernels.transpose(1, 2), g, grad_feats3);
  } else {
    at::bmm_out(grad_feats3, kernels.transpose(1, 2), g);
  }
  // dK[b] = G[b] X[b]^T: [N, HW] x [HW, C]
  at::bmm_out(grad_kernels, g, feats.view({b, c, h * w}).transpose(1, 2));
  return {grad_feats, grad_kernels};
}

}  // namespace knet
