// Fixed-point requantization helpers with TFLite's exact rounding behaviour.
#ifndef TFLM_TRAIN_CORE_QUANTIZATION_H_
#define TFLM_TRAIN_CORE_QUANTIZATION_H_

#include <cstdint>
#include <limits>

namespace tflm_train {

// A quantization scale every kernel accepts: finite and at least the
// smallest normal float. Zero, negative, non-finite and denormal scales are
// rejected, so that divisions by a scale (QAS updates, requantization
// multipliers) and their reciprocals stay finite.
inline bool IsValidScale(float scale) {
  return scale >= 1.17549435e-38f && scale <= 3.40282347e38f;
}

// Splits a positive real multiplier into a Q31 significand and a power-of-two
// shift (positive = left), as TFLite's QuantizeMultiplier does.
void QuantizeMultiplier(double real_multiplier, int32_t* quantized_multiplier,
                        int* shift);

// The int8 output clamp range of a fused activation (TFLite's
// CalculateActivationRangeQuantized for int8 outputs). Returns false for
// activations other than NONE, RELU, RELU_N1_TO_1 and RELU6, and when a bound
// does not fit in int32 or the range is empty.
bool CalculateActivationRangeInt8(int activation, float output_scale,
                                  int32_t output_zero_point, int32_t* act_min,
                                  int32_t* act_max);

// Q0.31 fixed-point primitives with gemmlowp's exact rounding (inline: the
// convolutions requantize every output element).
// round(a * b / 2^31), ties towards +infinity; a == b == INT32_MIN (the one
// overflowing case) gives INT32_MAX.
inline int32_t SaturatingRoundingDoublingHighMul(int32_t a, int32_t b) {
  if (a == b && a == std::numeric_limits<int32_t>::min()) {
    return std::numeric_limits<int32_t>::max();
  }
  const int64_t product = static_cast<int64_t>(a) * b;
  // The nudge plus truncating division rounds ties towards +infinity.
  const int64_t nudge =
      product >= 0 ? (int64_t{1} << 30) : 1 - (int64_t{1} << 30);
  return static_cast<int32_t>((product + nudge) / (int64_t{1} << 31));
}

// round(x / 2^exponent), ties away from zero; exponent in [0, 31].
inline int32_t RoundingDivideByPOT(int32_t x, int exponent) {
  const int32_t mask = static_cast<int32_t>((int64_t{1} << exponent) - 1);
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

// round(x * quantized_multiplier * 2^shift) with TFLite's rounding
// (saturating rounding doubling high multiply, then rounding right shift).
// shift must lie in [-31, 31]; a left shift that overflows int32 wraps.
inline int32_t MultiplyByQuantizedMultiplier(int32_t x,
                                             int32_t quantized_multiplier,
                                             int shift) {
  const int left_shift = shift > 0 ? shift : 0;
  const int right_shift = shift > 0 ? 0 : -shift;
  const int32_t shifted =
      static_cast<int32_t>(static_cast<uint32_t>(x) << left_shift);
  return RoundingDivideByPOT(
      SaturatingRoundingDoublingHighMul(shifted, quantized_multiplier),
      right_shift);
}


// int32 accumulation that wraps on overflow, as TFLM's kernels do on
// two's-complement targets, without undefined behaviour. Overflow happens
// only with extreme biases (a trained bias saturated at the int32 limit) or
// malformed models; wrapping keeps the result identical to TFLM's.
inline int32_t WrappingAdd(int32_t a, int32_t b) {
  return static_cast<int32_t>(static_cast<uint32_t>(a) +
                              static_cast<uint32_t>(b));
}

}  // namespace tflm_train

#endif  // TFLM_TRAIN_CORE_QUANTIZATION_H_
