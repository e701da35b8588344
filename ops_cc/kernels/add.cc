#include "ops_cc/kernels/add.h"

#include "ops_cc/core/quantization.h"
#include "ops_cc/kernels/broadcast.h"

namespace tflm_train {
namespace {

bool QuantizeBelowOne(double real, int32_t* multiplier, int* shift) {
  if (!(real > 0.0 && real < 1.0)) return false;
  QuantizeMultiplier(real, multiplier, shift);
  return *shift <= 0;
}

// Input i rescaled to the common fixed-point scale.
int32_t ScaleInput(int32_t offset, int8_t x, int left_shift,
                   int32_t multiplier, int shift) {
  return MultiplyByQuantizedMultiplier((offset + x) * (1 << left_shift),
                                       multiplier, shift);
}

int8_t Requantize(const AddParams& p, int32_t raw) {
  int32_t out =
      MultiplyByQuantizedMultiplier(raw, p.output_multiplier, p.output_shift) +
      p.output_offset;
  if (out < p.act_min) out = p.act_min;
  if (out > p.act_max) out = p.act_max;
  return static_cast<int8_t>(out);
}

}  // namespace

bool ComputeAddParams(float input1_scale, int32_t input1_zero_point,
                      float input2_scale, int32_t input2_zero_point,
                      float output_scale, int32_t output_zero_point,
                      AddParams* params) {
  if (!(input1_scale > 0.0f && input2_scale > 0.0f && output_scale > 0.0f)) {
    return false;
  }
  params->input1_offset = -input1_zero_point;
  params->input2_offset = -input2_zero_point;
  params->output_offset = output_zero_point;
  params->left_shift = 20;
  const double twice_max_input_scale =
      2.0 * static_cast<double>(input1_scale > input2_scale ? input1_scale
                                                            : input2_scale);
  const double real1 =
      static_cast<double>(input1_scale) / twice_max_input_scale;
  const double real2 =
      static_cast<double>(input2_scale) / twice_max_input_scale;
  const double real_out =
      twice_max_input_scale /
      ((1 << params->left_shift) * static_cast<double>(output_scale));
  return QuantizeBelowOne(real1, &params->input1_multiplier,
                          &params->input1_shift) &&
         QuantizeBelowOne(real2, &params->input2_multiplier,
                          &params->input2_shift) &&
         QuantizeBelowOne(real_out, &params->output_multiplier,
                          &params->output_shift);
}

namespace ref {

void Add(const AddParams& params, const Shape& input1_shape,
         const int8_t* input1, const Shape& input2_shape, const int8_t* input2,
         const Shape& output_shape, int8_t* output) {
  const AddParams& p = params;
  BroadcastBinary(input1_shape, input1, input2_shape, input2, output_shape,
                  output, [&p](int8_t a, int8_t b) {
                    return Requantize(
                        p, ScaleInput(p.input1_offset, a, p.left_shift,
                                      p.input1_multiplier, p.input1_shift) +
                               ScaleInput(p.input2_offset, b, p.left_shift,
                                          p.input2_multiplier,
                                          p.input2_shift));
                  });
}

void Sub(const AddParams& params, const Shape& input1_shape,
         const int8_t* input1, const Shape& input2_shape, const int8_t* input2,
         const Shape& output_shape, int8_t* output) {
  const AddParams& p = params;
  BroadcastBinary(input1_shape, input1, input2_shape, input2, output_shape,
                  output, [&p](int8_t a, int8_t b) {
                    return Requantize(
                        p, ScaleInput(p.input1_offset, a, p.left_shift,
                                      p.input1_multiplier, p.input1_shift) -
                               ScaleInput(p.input2_offset, b, p.left_shift,
                                          p.input2_multiplier,
                                          p.input2_shift));
                  });
}

}  // namespace ref
}  // namespace tflm_train
