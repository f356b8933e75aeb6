// mmseg intersect_and_union as integer histograms (see semantic_core.h).
#include "ops/semantic_eval/semantic_core.h"

namespace knet {
namespace semantic {

template <typename P, typename L>
void accumulate(const P* pred, const L* label, size_t n, int64_t C, int64_t ignore_index, bool reduce_zero_label,
                int64_t* inter, int64_t* pred_area, int64_t* label_area) {
  for (size_t i = 0; i < n; ++i) {
    int64_t l = static_cast<int64_t>(label[i]);
    if (reduce_zero_label) {  // uint8: 0 -> 255; l - 1; 254 -> 255
      l = l == 0 ? 255 : l - 1;
      if (l == 254) l = 255;
    }
    if (l == ignore_index) continue;
    const int64_t p = static_cast<int64_t>(pred[i]);
    const bool p_in = p >= 0 && p < C, l_in = l >= 0 && l < C;
    if (p_in) ++pred_area[p];
    if (l_in) ++label_area[l];
    if (p_in && p == l) ++inter[p];
  }
}

template void accumulate<uint8_t, uint8_t>(const uint8_t*, const uint8_t*, size_t, int64_t, int64_t, bool, int64_t*, int64_t*, int64_t*);
template void accumulate<int64_t, uint8_t>(const int64_t*, const uint8_t*, size_t, int64_t, int64_t, bool, int64_t*, int64_t*, int64_t*);
template void accumulate<int64_t, int64_t>(const int64_t*, const int64_t*, size_t, int64_t, int64_t, bool, int64_t*, int64_t*, int64_t*);
template void accumulate<uint8_t, int64_t>(const uint8_t*, const int64_t*, size_t, int64_t, int64_t, bool, int64_t*, int64_t*, int64_t*);

}  // namespace semantic
}  // namespace knet
