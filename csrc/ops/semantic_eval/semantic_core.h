// Per-image histograms of the MMSegmentation mIoU protocol (torch-free).
#pragma once

#include <cstddef>
#include <cstdint>

namespace knet {
namespace semantic {

// Adds to inter/pred_area/label_area [num_classes] (int64) the counts of one image, over pixels
// whose (possibly reduced) label != ignore_index. reduce_zero_label: label 0 -> ignore (255),
// others -1 (uint8 arithmetic, as mmseg). Values outside [0, num_classes) are not counted
// (torch.histc's range), but still take part in the mask.
template <typename P, typename L>
void accumulate(const P* pred, const L* label, size_t n, int64_t num_classes, int64_t ignore_index,
                bool reduce_zero_label, int64_t* inter, int64_t* pred_area, int64_t* label_area);

}  // namespace semantic
}  // namespace knet
