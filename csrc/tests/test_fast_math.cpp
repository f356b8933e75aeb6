// Tests of the per-element math headers shared by the CPU and CUDA kernels (torch-free).
#include <cmath>
#include <limits>

#include "knet/assemble_math.h"
#include "knet/fast_math.h"
#include "knet/gating_math.h"
#include "tests/harness.h"

KNET_TEST(exp_approx_relative_error) {
  double worst = 0.0;
  for (float x = -87.0f; x <= 88.0f; x += 0.001953125f) {
    const double ref = std::exp(static_cast<double>(x));
    worst = std::fmax(worst, std::fabs(knet::exp_approx(x) - ref) / ref);
  }
  KNET_CHECK(worst < 4e-7);  // a few float ulps
}

KNET_TEST(exp_approx_saturates) {
  KNET_CHECK(std::isfinite(knet::exp_approx(1000.0f)));
  KNET_CHECK(knet::exp_approx(-1000.0f) >= 0.0f);
  KNET_CHECK(knet::exp_approx(-1000.0f) < 1e-37f);
  KNET_CHECK_EQ(knet::exp_approx(0.0f), 1.0f);
}

KNET_TEST(sigmoid_limits_and_symmetry) {
  KNET_CHECK_EQ(knet::sigmoid(0.0f), 0.5f);
  KNET_CHECK_NEAR(knet::sigmoid(200.0f), 1.0, 0.0);
  KNET_CHECK_NEAR(knet::sigmoid(-200.0f), 0.0, 1e-30);
  for (double x = -10; x <= 10; x += 0.25) {
    KNET_CHECK_NEAR(knet::sigmoid(x) + knet::sigmoid(-x), 1.0, 1e-15);
    KNET_CHECK_NEAR(knet::sigmoid(static_cast<float>(x)), 1.0 / (1.0 + std::exp(-x)), 2e-7);
  }
}

KNET_TEST(binary_gate_is_positive_logit) {
  KNET_CHECK(knet::binary_gate(1e-30f));
  KNET_CHECK(!knet::binary_gate(0.0f));
  KNET_CHECK(!knet::binary_gate(-0.0f));
  KNET_CHECK(!knet::binary_gate(std::numeric_limits<float>::quiet_NaN()));
}

KNET_TEST(adaptive_gate_elem_backward_matches_finite_difference) {
  const double y[4] = {0.3, -1.2, 0.7, 2.0};
  double d[4];
  knet::adaptive_gate_elem_backward(1.0, y[0], y[1], y[2], y[3], d[0], d[1], d[2], d[3]);
  for (int j = 0; j < 4; ++j) {
    double yp[4] = {y[0], y[1], y[2], y[3]}, ym[4] = {y[0], y[1], y[2], y[3]};
    yp[j] += 1e-6;
    ym[j] -= 1e-6;
    const double fd = (knet::adaptive_gate_elem(yp[0], yp[1], yp[2], yp[3]) -
                       knet::adaptive_gate_elem(ym[0], ym[1], ym[2], ym[3])) / 2e-6;
    KNET_CHECK_NEAR(d[j], fd, 1e-8);
  }
}
