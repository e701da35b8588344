// AVERAGE_POOL_2D and MAX_POOL_2D on int8 NHWC tensors whose input and
// output share one quantization (TFLite Micro's reference numerics).
#ifndef TFLM_TRAIN_KERNELS_POOLING_H_
#define TFLM_TRAIN_KERNELS_POOLING_H_

#include <cstdint>

#include "ops_cc/core/shape.h"

namespace tflm_train {

struct PoolParams {
  int stride_h = 1, stride_w = 1;
  int filter_h = 1, filter_w = 1;
  int pad_h = 0, pad_w = 0;  // window rows above / columns left of the input
  int32_t act_min = -128, act_max = 127;
};

namespace ref {

// Each output is the mean of the window cells that lie inside the input,
// rounded half away from zero. Returns false (TFLM's error) if some window
// has no cell inside the input.
bool AveragePool(const PoolParams& params, const Shape& input_shape,
                 const int8_t* input, const Shape& output_shape,
                 int8_t* output);

// Each output is the maximum over the window cells inside the input (-128
// for a window with none), then clamped to the activation range.
void MaxPool(const PoolParams& params, const Shape& input_shape,
             const int8_t* input, const Shape& output_shape, int8_t* output);

}  // namespace ref
}  // namespace tflm_train

#endif  // TFLM_TRAIN_KERNELS_POOLING_H_
