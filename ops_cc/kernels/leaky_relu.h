// LEAKY_RELU, x > 0 ? x : alpha * x, from int8 to int8 with TFLite's
// reference requantization: each branch is one fixed-point rescale.
#ifndef TFLM_TRAIN_KERNELS_LEAKY_RELU_H_
#define TFLM_TRAIN_KERNELS_LEAKY_RELU_H_

#include <cstdint>

namespace tflm_train {

struct LeakyReluParams {
  int32_t input_zero_point = 0;
  int32_t output_zero_point = 0;
  // QuantizeMultiplier(input_scale * alpha / output_scale); negative for a
  // negative alpha.
  int32_t alpha_multiplier = 0;
  int alpha_shift = 0;
  // QuantizeMultiplier(input_scale / output_scale).
  int32_t identity_multiplier = 0;
  int identity_shift = 0;
};

// The multipliers as TFLM's Prepare forms them (the ratios in single
// precision, then widened). Returns false when a ratio is not finite or a
// left shift exceeds 31 (a ratio of 2^31 or more).
bool ComputeLeakyReluParams(float input_scale, int32_t input_zero_point,
                            float alpha, float output_scale,
                            int32_t output_zero_point, LeakyReluParams* params);

namespace ref {

void LeakyRelu(const LeakyReluParams& params, const int8_t* input, int size,
               int8_t* output);

}  // namespace ref
}  // namespace tflm_train

#endif  // TFLM_TRAIN_KERNELS_LEAKY_RELU_H_
