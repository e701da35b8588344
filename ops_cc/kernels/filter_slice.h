// A channel-sliced trainable filter (docs/format.md, "Channel-sliced
// weights"): the layer's full filter stays a frozen constant and a variable
// `rows` holds the trained output channels, row j = channel channels[j].
// The layer's weights are the merged filter: row o comes from `rows` when o
// is a trained channel, else from the frozen filter.
#ifndef TFLM_TRAIN_KERNELS_FILTER_SLICE_H_
#define TFLM_TRAIN_KERNELS_FILTER_SLICE_H_

#include <cstdint>

namespace tflm_train {

struct FilterSlice {
  int8_t* rows = nullptr;  // [count, row elements]; null: no slice
  const int32_t* channels = nullptr;  // strictly increasing
  int count = 0;
};

// Row o (`row_size` elements) of the merged filter. Callers visit o in
// increasing order with *cursor starting at 0 for each sweep, so the lookup
// is one comparison (no per-channel index table in RAM).
inline const int8_t* MergedFilterRow(const int8_t* filter, int64_t row_size,
                                     const FilterSlice& slice, int o,
                                     int* cursor) {
  if (*cursor < slice.count && slice.channels[*cursor] == o)
    return slice.rows + (*cursor)++ * row_size;
  return filter + o * row_size;
}

}  // namespace tflm_train

#endif  // TFLM_TRAIN_KERNELS_FILTER_SLICE_H_
