// MEAN of an int8 tensor over any set of axes (TFLite Micro's reference
// integer mean, including different input/output quantization).
#ifndef TFLM_TRAIN_KERNELS_MEAN_H_
#define TFLM_TRAIN_KERNELS_MEAN_H_

#include <cstdint>

#include "ops_cc/core/shape.h"

namespace tflm_train {

struct MeanParams {
  int32_t input_zero_point = 0;
  int32_t output_zero_point = 0;
  // QuantizeMultiplier(input_scale / output_scale); the kernel folds in the
  // division by the number of elements averaged.
  int32_t multiplier = 0;
  int shift = 0;
};

namespace ref {

// Averages `input` over the axes whose bit is set in `axis_mask` (bit d for
// dimension d). The output holds the remaining dimensions in row-major order
// (the same bytes whether the reduced dimensions are kept as 1 or dropped).
// An empty input gives zeros.
void Mean(const MeanParams& params, const Shape& input_shape,
          uint32_t axis_mask, const int8_t* input, int8_t* output);

// input [N, H, W, C]; output [N, C]: Mean over axes 1 and 2.
void MeanOverHeightWidth(const MeanParams& params, const Shape& input_shape,
                         const int8_t* input, int8_t* output);

}  // namespace ref
}  // namespace tflm_train

#endif  // TFLM_TRAIN_KERNELS_MEAN_H_
