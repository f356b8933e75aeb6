// knet/fast_math.h: exp and sigmoid that the CPU compiler can vectorise, shared with CUDA.
//
// On the host, float exp is the Cephes polynomial (the sse_mathfun / Cephes `expf` scheme:
// n = round(x log2 e), r = x - n ln2 split in two constants, degree-5 minimax polynomial for
// e^r, times 2^n built in the exponent bits). It is written with plain arithmetic so loops
// calling it are auto-vectorised (glibc's expf is not), and is accurate to ~2 ulp.
// On the device and for double, the libm functions are used.
#pragma once

#include <math.h>

#include <cstdint>
#include <cstring>

#include "knet/host_device.h"

namespace knet {

KNET_HOST_DEVICE float exp_approx(float x) {
#if defined(__CUDA_ARCH__)
  return expf(x);
#else
  x = x < 88.3762626647949f ? x : 88.3762626647949f;
  x = x > -87.3365447504019f ? x : -87.3365447504019f;
  float n = x * 1.44269504088896341f + 0.5f;
  // floor without a libm call (vectorises): truncate, then correct negatives
  float t = static_cast<float>(static_cast<int32_t>(n));
  n = t > n ? t - 1.0f : t;
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  const float z = r * r;
  float y = 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * z + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;  // 2^n, n in [-126, 127]
  float scale;
  std::memcpy(&scale, &bits, sizeof(float));
  return y * scale;
#endif
}

KNET_HOST_DEVICE double exp_approx(double x) { return exp(x); }

// logistic sigmoid 1 / (1 + e^-x); saturates to 0 / 1 without NaN
template <typename T>
KNET_HOST_DEVICE T sigmoid(T x) {
  return T(1) / (T(1) + exp_approx(-x));
}

}  // namespace knet
