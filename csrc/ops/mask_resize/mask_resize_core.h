// Thresholded mask resize of the det post-processing (spec 2.7), torch-free core.
//
// The original code brings every kept mask from its stride-4 probabilities P [h4, w4] to the
// original image with two bilinear resizes (align_corners=False) and a crop in between:
//
//     P -> bilinear to the padded batch shape [Hb, Wb] -> crop to img_shape [Hi, Wi] (top-left)
//       -> bilinear to ori_shape [Ho, Wo] -> (> threshold)
//
// Bilinear resizing is linear and separable, so each output pixel is sum_{r,c} Ay[o,r] Ax[x,c]
// P[r, c] with composite 1-D weights (`Axis`): non-negative, summing to 1, over a window of at
// most 3 consecutive source rows / columns when the batch shape is at least the stride-4 size
// (any window length is handled). The thresholded value is therefore known without
// interpolating wherever the whole window lies on one side of the threshold (by a margin that
// covers float rounding); only the pixels whose window straddles it are interpolated, in double.
//
// Agreement with the float interpolation of the original: identical except at pixels whose
// interpolated probability is within float rounding (about 1e-6) of the threshold.
#pragma once

#include <cstdint>
#include <vector>

namespace knet {
namespace mask_resize {

// Sure-side margin on probabilities in [0, 1]: the original's two float interpolations
// (4-term convex combinations, float weights summing to 1 within an ulp) stay within ~1e-6 of
// the exact value, so a window entirely above threshold + kMargin gives a value above the
// threshold in float as well (and below likewise).
constexpr double kMargin = 1e-5;

// One source index pair and weights of PyTorch's bilinear resize (align_corners=False, output
// size given, no scale factor) for output index `o` of an axis `in` -> `out`, computed in float
// exactly as ATen's area_pixel_compute_source_index / guard_index_and_lambda.
struct Linear1d {
  int64_t i0 = 0, i1 = 0;
  float l0 = 1.0f, l1 = 0.0f;
};
Linear1d linear_source(int64_t in, int64_t out, int64_t o);

// Composite weights of one output axis over the stride-4 axis, in CSR form.
struct Axis {
  int64_t n_src = 0;            // h4 or w4
  int64_t n_out = 0;            // Ho or Wo
  std::vector<int32_t> lo;      // [n_out] first source index of the window
  std::vector<int32_t> hi;      // [n_out] last source index of the window (inclusive)
  std::vector<int64_t> offset;  // [n_out + 1] into w
  std::vector<double> w;        // weights of source lo..hi per output index
  bool monotone = true;         // lo and hi non-decreasing in the output index
};

// n_src (stride 4) -> bilinear to n_batch -> first n_img entries -> bilinear to n_ori.
// Requires 1 <= n_img <= n_batch and n_src, n_ori >= 1.
Axis composite_axis(int64_t n_src, int64_t n_batch, int64_t n_img, int64_t n_ori);

// Per-thread scratch of resize_threshold (reused across maps).
struct Scratch {
  std::vector<uint8_t> cls;       // [h4 * w4] per-cell side: kAbove / kBelow / 0
  std::vector<int32_t> row_min;   // [h4] first column of the row that is not below (w4: none)
  std::vector<int32_t> row_max;   // [h4] last such column (-1: none)
  std::vector<uint8_t> comb;      // [w4] side of the rows of one output row's window
  std::vector<double> vert;       // [w4] vertically interpolated row (exact pixels)
  std::vector<int32_t> run_a, run_b;  // runs of one output row: source columns [a, b]
  std::vector<uint8_t> run_side;
  std::vector<int32_t> first_ge;  // [w4 + 1] first output column whose window starts at >= c
  std::vector<int32_t> last_le;   // [w4] last output column whose window ends at <= c (-1)
};

// One map: probs [ay.n_src, ax.n_src] (row-major, values in [0, 1]) -> out [ay.n_out, ax.n_out]
// bytes (1 where the resized probability is > threshold, else 0).
void resize_threshold(const float* probs, const Axis& ay, const Axis& ax, double threshold, uint8_t* out,
                      Scratch& scratch);

// Reference of the same function: every pixel interpolated in double (tests).
void resize_threshold_exact(const float* probs, const Axis& ay, const Axis& ax, double threshold, uint8_t* out);

// The interpolated probability itself at one output pixel, in double (tests).
double resized_value(const float* probs, const Axis& ay, const Axis& ax, int64_t oy, int64_t ox);

}  // namespace mask_resize
}  // namespace knet
