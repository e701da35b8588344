// HARD_SWISH, x * relu6(x + 3) / 6, from int8 to int8 with TFLite's
// reference algorithm: 16-bit fixed point throughout, bit for bit
// (including its int16 wrap-arounds).
#ifndef TFLM_TRAIN_KERNELS_HARD_SWISH_H_
#define TFLM_TRAIN_KERNELS_HARD_SWISH_H_

#include <cstdint>

namespace tflm_train {

struct HardSwishParams {
  int16_t input_zero_point = 0;
  int16_t output_zero_point = 0;
  // (input_scale / 128) / (3 / 32768): the input on a scale where 3.0 is
  // 32768, as a Q15 significand and a power-of-two exponent.
  int16_t reluish_multiplier = 0;
  int reluish_exponent = 0;
  // (input_scale / 128) / output_scale, likewise; the exponent is <= 0.
  int16_t output_multiplier = 0;
  int output_exponent = 0;
};

// The multipliers as TFLM's Prepare forms them (single-precision ratios,
// QuantizeMultiplier, then rounded to 16 bits). Returns false when the
// output multiplier is 1 or more (TFLM refuses it) or the relu-ish
// exponent exceeds 31 (TFLM's shifts are undefined there).
bool ComputeHardSwishParams(float input_scale, int32_t input_zero_point,
                            float output_scale, int32_t output_zero_point,
                            HardSwishParams* params);

namespace ref {

void HardSwish(const HardSwishParams& params, const int8_t* input, int size,
               int8_t* output);

}  // namespace ref
}  // namespace tflm_train

#endif  // TFLM_TRAIN_KERNELS_HARD_SWISH_H_
