// SOFTMAX from int8 to int8 (output scale 1/256, zero point -128) with
// TFLite Micro's fixed-point algorithm, bit for bit.
#ifndef TFLM_TRAIN_KERNELS_SOFTMAX_H_
#define TFLM_TRAIN_KERNELS_SOFTMAX_H_

#include <cstdint>

#include "ops_cc/core/shape.h"

namespace tflm_train {

struct SoftmaxParams {
  // beta * input_scale * 2^26 as (Q31 significand, left shift): maps an
  // input difference to Q5.26.
  int32_t input_multiplier = 0;
  int input_left_shift = 0;
  // Differences below this (<= 0) contribute exp() = 0.
  int32_t diff_min = 0;
};

// Returns false if beta * input_scale is not positive or is too small for
// the Q5.26 scaling (the multiplier must exceed 1).
bool ComputeSoftmaxParams(float beta, float input_scale, SoftmaxParams* params);

namespace ref {

// Softmax along the last dimension of `shape`. Returns false (TFLM aborts
// there) when a row's sum of exponentials is too large for the 8-bit output
// rescaling, which needs about 512 or more equal maxima in one row.
bool Softmax(const SoftmaxParams& params, const Shape& shape,
             const int8_t* input, int8_t* output);

}  // namespace ref
}  // namespace tflm_train

#endif  // TFLM_TRAIN_KERNELS_SOFTMAX_H_
