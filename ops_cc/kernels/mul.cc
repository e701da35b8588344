#include "ops_cc/kernels/mul.h"

#include "ops_cc/core/quantization.h"
#include "ops_cc/kernels/broadcast.h"

namespace tflm_train {

bool ComputeMulParams(float input1_scale, int32_t input1_zero_point,
                      float input2_scale, int32_t input2_zero_point,
                      float output_scale, int32_t output_zero_point,
                      MulParams* params) {
  if (!(input1_scale > 0.0f && input2_scale > 0.0f && output_scale > 0.0f)) {
    return false;
  }
  params->input1_offset = -input1_zero_point;
  params->input2_offset = -input2_zero_point;
  params->output_offset = output_zero_point;
  const double real = static_cast<double>(input1_scale) *
                      static_cast<double>(input2_scale) /
                      static_cast<double>(output_scale);
  QuantizeMultiplier(real, &params->output_multiplier, &params->output_shift);
  return params->output_shift <= 31;
}

namespace ref {

void Mul(const MulParams& params, const Shape& input1_shape,
         const int8_t* input1, const Shape& input2_shape, const int8_t* input2,
         const Shape& output_shape, int8_t* output) {
  const MulParams& p = params;
  BroadcastBinary(
      input1_shape, input1, input2_shape, input2, output_shape, output,
      [&p](int8_t a, int8_t b) {
        // |product| <= 256 * 256: no overflow before the requantization.
        const int32_t product = (p.input1_offset + a) * (p.input2_offset + b);
        // Wraps like TFLM's int32 arithmetic when a huge multiplier
        // overflows (a malformed model), without undefined behaviour.
        int32_t out = WrappingAdd(
            p.output_offset,
            MultiplyByQuantizedMultiplier(product, p.output_multiplier,
                                          p.output_shift));
        if (out < p.act_min) out = p.act_min;
        if (out > p.act_max) out = p.act_max;
        return static_cast<int8_t>(out);
      });
}

}  // namespace ref
}  // namespace tflm_train
