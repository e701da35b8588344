// MEAN over the spatial axes (1, 2) of an int8 NHWC tensor (TFLite Micro's
// reference integer mean, including different input/output quantization).
#ifndef TFLM_TRAIN_KERNELS_MEAN_H_
#define TFLM_TRAIN_KERNELS_MEAN_H_

#include <cstdint>

#include "ops_cc/core/shape.h"

namespace tflm_train {

struct MeanParams {
  int32_t input_zero_point = 0;
  int32_t output_zero_point = 0;
  // QuantizeMultiplier(input_scale / output_scale); the kernel folds in the
  // division by H * W.
  int32_t multiplier = 0;
  int shift = 0;
};

namespace ref {

// input [N, H, W, C]; output [N, C] in row-major order (the same bytes as
// [N, 1, 1, C]).
void MeanOverHeightWidth(const MeanParams& params, const Shape& input_shape,
                         const int8_t* input, int8_t* output);

}  // namespace ref
}  // namespace tflm_train

#endif  // TFLM_TRAIN_KERNELS_MEAN_H_
