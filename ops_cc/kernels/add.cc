#include "ops_cc/kernels/add.h"

#include "ops_cc/core/quantization.h"

namespace tflm_train {
namespace {

bool QuantizeBelowOne(double real, int32_t* multiplier, int* shift) {
  if (!(real > 0.0 && real < 1.0)) return false;
  QuantizeMultiplier(real, multiplier, shift);
  return *shift <= 0;
}

int8_t AddOne(const AddParams& p, int8_t a, int8_t b) {
  const int32_t a_shifted = (p.input1_offset + a) * (1 << p.left_shift);
  const int32_t b_shifted = (p.input2_offset + b) * (1 << p.left_shift);
  const int32_t a_scaled = MultiplyByQuantizedMultiplier(
      a_shifted, p.input1_multiplier, p.input1_shift);
  const int32_t b_scaled = MultiplyByQuantizedMultiplier(
      b_shifted, p.input2_multiplier, p.input2_shift);
  int32_t out = MultiplyByQuantizedMultiplier(
                    a_scaled + b_scaled, p.output_multiplier, p.output_shift) +
                p.output_offset;
  if (out < p.act_min) out = p.act_min;
  if (out > p.act_max) out = p.act_max;
  return static_cast<int8_t>(out);
}

// Dimension i of `shape` right-aligned into kMaxRank dimensions.
int32_t AlignedDim(const Shape& shape, int i) {
  const int j = i - (kMaxRank - shape.rank);
  return j < 0 ? 1 : shape.dims[j];
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

bool AddShapesBroadcast(const Shape& input1_shape, const Shape& input2_shape,
                        const Shape& output_shape) {
  if (input1_shape.rank > kMaxRank || input2_shape.rank > kMaxRank ||
      output_shape.rank > kMaxRank) {
    return false;
  }
  const int rank = input1_shape.rank > input2_shape.rank ? input1_shape.rank
                                                         : input2_shape.rank;
  if (output_shape.rank != rank) return false;
  for (int i = 0; i < kMaxRank; ++i) {
    const int32_t a = AlignedDim(input1_shape, i);
    const int32_t b = AlignedDim(input2_shape, i);
    const int32_t o = AlignedDim(output_shape, i);
    if ((a != o && a != 1) || (b != o && b != 1)) return false;
  }
  return true;
}

namespace ref {

void Add(const AddParams& params, const Shape& input1_shape,
         const int8_t* input1, const Shape& input2_shape, const int8_t* input2,
         const Shape& output_shape, int8_t* output) {
  if (input1_shape == input2_shape) {
    const int n = static_cast<int>(output_shape.FlatSize());
    for (int i = 0; i < n; ++i)
      output[i] = AddOne(params, input1[i], input2[i]);
    return;
  }
  // Walk the output in row-major order; an input dimension of 1 has stride 0.
  int32_t dims[kMaxRank], stride1[kMaxRank], stride2[kMaxRank];
  int32_t s1 = 1, s2 = 1;
  for (int i = kMaxRank - 1; i >= 0; --i) {
    dims[i] = AlignedDim(output_shape, i);
    const int32_t d1 = AlignedDim(input1_shape, i);
    const int32_t d2 = AlignedDim(input2_shape, i);
    stride1[i] = d1 == 1 ? 0 : s1;
    stride2[i] = d2 == 1 ? 0 : s2;
    s1 *= d1;
    s2 *= d2;
  }
  const int n = static_cast<int>(output_shape.FlatSize());
  int32_t index[kMaxRank] = {0, 0, 0, 0, 0, 0};
  int32_t off1 = 0, off2 = 0;
  for (int i = 0; i < n; ++i) {
    output[i] = AddOne(params, input1[off1], input2[off2]);
    for (int d = kMaxRank - 1; d >= 0; --d) {
      off1 += stride1[d];
      off2 += stride2[d];
      if (++index[d] < dims[d]) break;
      off1 -= stride1[d] * dims[d];
      off2 -= stride2[d] * dims[d];
      index[d] = 0;
    }
  }
}

}  // namespace ref
}  // namespace tflm_train
