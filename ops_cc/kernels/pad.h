// PAD of an int8 tensor (rank <= kMaxRank) with a constant value.
#ifndef TFLM_TRAIN_KERNELS_PAD_H_
#define TFLM_TRAIN_KERNELS_PAD_H_

#include <cstdint>

#include "ops_cc/core/shape.h"

namespace tflm_train {

struct PadParams {
  // Elements added before / after each dimension of the input (>= 0).
  int32_t before[kMaxRank] = {0, 0, 0, 0, 0, 0};
  int32_t after[kMaxRank] = {0, 0, 0, 0, 0, 0};
};

namespace ref {

// output dims = input dims + before + after; cells outside the input get
// `pad_value` (TFLite pads with the output zero point).
void Pad(const PadParams& params, const Shape& input_shape, const int8_t* input,
         int8_t pad_value, const Shape& output_shape, int8_t* output);

}  // namespace ref
}  // namespace tflm_train

#endif  // TFLM_TRAIN_KERNELS_PAD_H_
