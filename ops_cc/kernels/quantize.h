// QUANTIZE (float32 -> int8, int8 -> int8) and DEQUANTIZE (int8 -> float32)
// with per-tensor quantization (TFLite Micro's reference numerics).
#ifndef TFLM_TRAIN_KERNELS_QUANTIZE_H_
#define TFLM_TRAIN_KERNELS_QUANTIZE_H_

#include <cstdint>

namespace tflm_train {

struct RequantizeParams {
  int32_t input_zero_point = 0;
  int32_t output_zero_point = 0;
  // QuantizeMultiplier(input_scale / output_scale).
  int32_t multiplier = 0;
  int shift = 0;
};

namespace ref {

// q = clamp(round(x / scale) + zero_point, -128, 127), the division and the
// round-half-away-from-zero in single precision. Beyond TFLite's defined
// range, |x / scale| >= 2^31 saturates and NaN maps to the zero point.
void Quantize(const float* input, int size, float scale, int32_t zero_point,
              int8_t* output);

// x = scale * (q - zero_point), rounded once to single precision.
void Dequantize(const int8_t* input, int size, float scale, int32_t zero_point,
                float* output);

// Re-expresses int8 values in another int8 quantization.
void Requantize(const RequantizeParams& params, const int8_t* input, int size,
                int8_t* output);

}  // namespace ref
}  // namespace tflm_train

#endif  // TFLM_TRAIN_KERNELS_QUANTIZE_H_
