#include "ops_cc/kernels/leaky_relu.h"

#include <cmath>

#include "ops_cc/core/quantization.h"

namespace tflm_train {
namespace {

int32_t Negate(int32_t x) {
  return static_cast<int32_t>(0u - static_cast<uint32_t>(x));
}

}  // namespace

bool ComputeLeakyReluParams(float input_scale, int32_t input_zero_point,
                            float alpha, float output_scale,
                            int32_t output_zero_point,
                            LeakyReluParams* params) {
  const float alpha_ratio = input_scale * alpha / output_scale;
  const float identity_ratio = input_scale / output_scale;
  if (!std::isfinite(alpha_ratio) || !std::isfinite(identity_ratio)) {
    return false;
  }
  QuantizeMultiplier(static_cast<double>(alpha_ratio),
                     &params->alpha_multiplier, &params->alpha_shift);
  QuantizeMultiplier(static_cast<double>(identity_ratio),
                     &params->identity_multiplier, &params->identity_shift);
  if (params->alpha_shift > 31 || params->identity_shift > 31) return false;
  params->input_zero_point = input_zero_point;
  params->output_zero_point = output_zero_point;
  return true;
}

namespace ref {

void LeakyRelu(const LeakyReluParams& params, const int8_t* input, int size,
               int8_t* output) {
  // A negative alpha is applied as the negation of the rescale by |alpha|
  // (the rounding of a rescale is not odd-symmetric: the order matters).
  // Sums wrap like TFLM's on two's-complement targets; only scale ratios
  // of 2^23 or more could overflow.
  const bool negative_alpha = params.alpha_multiplier < 0;
  const int32_t alpha_magnitude =
      negative_alpha ? Negate(params.alpha_multiplier)
                     : params.alpha_multiplier;
  for (int i = 0; i < size; ++i) {
    const int32_t x = input[i] - params.input_zero_point;
    int32_t scaled = 0;
    if (x >= 0) {
      scaled = MultiplyByQuantizedMultiplier(x, params.identity_multiplier,
                                             params.identity_shift);
    } else {
      scaled =
          MultiplyByQuantizedMultiplier(x, alpha_magnitude, params.alpha_shift);
      if (negative_alpha) scaled = Negate(scaled);
    }
    const int32_t q = WrappingAdd(params.output_zero_point, scaled);
    output[i] = static_cast<int8_t>(q < -128 ? -128 : (q > 127 ? 127 : q));
  }
}

}  // namespace ref
}  // namespace tflm_train
