#include "ops_cc/kernels/softmax.h"

#include "ops_cc/core/fixed_point.h"
#include "ops_cc/core/quantization.h"

// Fixed-point formats: Qm.n is an int32 with m integer bits and n = 31 - m
// fraction bits. Input differences are Q5.26, exponentials Q0.31, their sum
// Q12.19. The operation order below is gemmlowp's, which TFLM uses; any
// change in rounding order changes results.

namespace tflm_train {
namespace {

constexpr int kDiffIntegerBits = 5;
constexpr int kSumIntegerBits = 12;

int CountLeadingZeros(uint32_t x) {
  int n = 0;
  while (n < 32 && (x & (0x80000000u >> n)) == 0) ++n;
  return n;
}

}  // namespace

bool ComputeSoftmaxParams(float beta, float input_scale,
                          SoftmaxParams* params) {
  double real = static_cast<double>(beta) * static_cast<double>(input_scale) *
                static_cast<double>(1 << (31 - kDiffIntegerBits));
  const double kMaxMultiplier = 2147483647.0;
  if (real > kMaxMultiplier) real = kMaxMultiplier;
  if (!(real > 1.0)) return false;
  int shift = 0;
  QuantizeMultiplier(real, &params->input_multiplier, &shift);
  // floor((2^5 - 1) * 2^26 / 2^shift): larger differences would overflow
  // Q5.26 after scaling.
  const int64_t radius =
      (((int64_t{1} << kDiffIntegerBits) - 1) << (31 - kDiffIntegerBits)) >>
      shift;
  params->diff_min = -static_cast<int32_t>(radius);
  // At shift >= 31 only a zero difference passes diff_min, which scales to 0
  // for any shift, so capping the shift changes no result.
  params->input_left_shift = shift > 31 ? 31 : shift;
  return true;
}

namespace ref {

bool Softmax(const SoftmaxParams& params, const Shape& shape,
             const int8_t* input, int8_t* output) {
  const int depth = shape.rank > 0 ? shape.dims[shape.rank - 1] : 1;
  if (depth == 0) return true;
  const int rows = static_cast<int>(shape.FlatSize()) / depth;
  for (int r = 0; r < rows; ++r) {
    const int8_t* in = input + r * depth;
    int8_t* out = output + r * depth;
    int32_t max = -128;
    for (int c = 0; c < depth; ++c) {
      if (in[c] > max) max = in[c];
    }
    uint32_t sum = 0;  // Q12.19; wraps like the reference's int32 sum
    for (int c = 0; c < depth; ++c) {
      const int32_t diff = in[c] - max;
      if (diff < params.diff_min) continue;
      const int32_t scaled = MultiplyByQuantizedMultiplier(
          diff, params.input_multiplier, params.input_left_shift);
      sum += static_cast<uint32_t>(
          RoundingDivideByPOT(ExpOnNegativeValues(scaled, kDiffIntegerBits),
                              kSumIntegerBits));
    }
    // sum = 2^bits_over_unit * (1 + f), f in [0, 1): reciprocal of (1 + f)
    // in Q0.31, then the 2^-bits_over_unit and the Q0.31 -> 1/256 output
    // scaling combine into one rounding right shift.
    if (sum == 0) return false;  // only after wrapping around 2^32
    const int headroom_plus_one = CountLeadingZeros(sum);
    const int bits_over_unit = kSumIntegerBits - headroom_plus_one;
    const int exponent = bits_over_unit + 31 - 8;
    if (exponent < 0 || exponent > 31) return false;
    const int32_t reciprocal = OneOverOnePlusX(
        static_cast<int32_t>((sum << headroom_plus_one) - 0x80000000u));
    for (int c = 0; c < depth; ++c) {
      const int32_t diff = in[c] - max;
      if (diff < params.diff_min) {
        out[c] = -128;
        continue;
      }
      const int32_t scaled = MultiplyByQuantizedMultiplier(
          diff, params.input_multiplier, params.input_left_shift);
      int32_t q = RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(
                              reciprocal,
                              ExpOnNegativeValues(scaled, kDiffIntegerBits)),
                                      exponent) -
                  128;
      if (q < -128) q = -128;
      if (q > 127) q = 127;
      out[c] = static_cast<int8_t>(q);
    }
  }
  return true;
}

}  // namespace ref
}  // namespace tflm_train
