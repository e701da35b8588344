// RESIZE_NEAREST_NEIGHBOR of an int8 NHWC tensor (TFLite Micro's reference
// arithmetic: single-precision source coordinates).
#ifndef TFLM_TRAIN_KERNELS_RESIZE_NEAREST_NEIGHBOR_H_
#define TFLM_TRAIN_KERNELS_RESIZE_NEAREST_NEIGHBOR_H_

#include <cstdint>

#include "ops_cc/core/shape.h"

namespace tflm_train {

struct ResizeNearestParams {
  bool align_corners = false;
  bool half_pixel_centers = false;
};

namespace ref {

// The input row (or column) output row `out_index` copies, for sizes
// `in_size` -> `out_size` (both >= 1): the source coordinate
// (out_index + 0.5 if half-pixel centres) * scale in float, where scale is
// (in_size - 1) / (out_size - 1) with aligned corners (out_size > 1) and
// in_size / out_size otherwise; rounded half away from zero with aligned
// corners, else truncated; at most in_size - 1.
int32_t NearestSourceIndex(const ResizeNearestParams& params, int32_t out_index,
                           int32_t in_size, int32_t out_size);

// input [N, H, W, C] -> output [N, H', W', C].
void ResizeNearestNeighbor(const ResizeNearestParams& params,
                           const Shape& input_shape, const int8_t* input,
                           const Shape& output_shape, int8_t* output);

}  // namespace ref
}  // namespace tflm_train

#endif  // TFLM_TRAIN_KERNELS_RESIZE_NEAREST_NEIGHBOR_H_
