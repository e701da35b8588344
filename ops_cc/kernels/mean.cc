#include "ops_cc/kernels/mean.h"

#include "ops_cc/core/quantization.h"

namespace tflm_train {
namespace ref {

void MeanOverHeightWidth(const MeanParams& params, const Shape& input_shape,
                         const int8_t* input, int8_t* output) {
  const int batches = input_shape.dims[0];
  const int height = input_shape.dims[1];
  const int width = input_shape.dims[2];
  const int depth = input_shape.dims[3];
  const int32_t count = height * width;
  if (count == 0) {
    for (int i = 0; i < batches * depth; ++i) output[i] = 0;
    return;
  }
  // Fold 1/count into the multiplier: scale it up by 2^k with
  // k = floor(log2(count)) (so the quotient keeps ~31 significant bits),
  // divide by count with truncation, and shift right k more bits. k is capped
  // so that the final right shift stays within 31.
  int k = 0;
  while ((count >> (k + 1)) != 0) ++k;
  if (k > 31 + params.shift) k = 31 + params.shift;
  const int32_t multiplier = static_cast<int32_t>(
      (static_cast<int64_t>(params.multiplier) << k) / count);
  const int shift = params.shift - k;
  const int32_t zero_sum = params.input_zero_point * count;

  for (int b = 0; b < batches; ++b) {
    const int8_t* in_batch = input + b * count * depth;
    for (int c = 0; c < depth; ++c) {
      int32_t sum = 0;
      for (int i = 0; i < count; ++i) sum += in_batch[i * depth + c];
      int32_t out =
          MultiplyByQuantizedMultiplier(sum - zero_sum, multiplier, shift) +
          params.output_zero_point;
      if (out < -128) out = -128;
      if (out > 127) out = 127;
      output[b * depth + c] = static_cast<int8_t>(out);
    }
  }
}

}  // namespace ref
}  // namespace tflm_train
