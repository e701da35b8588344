// LOGISTIC and TANH from int8 to int8 with TFLite Micro's fixed-point
// algorithm (gemmlowp's logistic / tanh on a Q4.27 input), bit for bit.
// Outputs are in the fixed quantizations TFLite gives these ops: LOGISTIC
// scale 1/256 zero point -128, TANH scale 1/128 zero point 0.
#ifndef TFLM_TRAIN_KERNELS_LOGISTIC_TANH_H_
#define TFLM_TRAIN_KERNELS_LOGISTIC_TANH_H_

#include <cstdint>

namespace tflm_train {

struct LogisticTanhParams {
  int32_t input_zero_point = 0;
  // Inputs (q - zero point) at or beyond +-radius saturate the output.
  int32_t input_range_radius = 0;
  // input_scale * 2^27 as (Q31 significand, left shift): maps q - zero
  // point to Q4.27.
  int32_t input_multiplier = 0;
  int input_left_shift = 0;
};

// What TFLM's Prepare computes (frexp of input_scale * 2^27, not
// QuantizeMultiplier). Returns false for input scales below 2^-28 or at
// least 2^36, where TFLM's radius computation shifts by a negative or
// too large amount (undefined).
bool ComputeLogisticTanhParams(float input_scale, int32_t input_zero_point,
                               LogisticTanhParams* params);

namespace ref {

void Logistic(const LogisticTanhParams& params, const int8_t* input, int size,
              int8_t* output);

void Tanh(const LogisticTanhParams& params, const int8_t* input, int size,
          int8_t* output);

}  // namespace ref
}  // namespace tflm_train

#endif  // TFLM_TRAIN_KERNELS_LOGISTIC_TANH_H_
