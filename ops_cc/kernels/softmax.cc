#include "ops_cc/kernels/softmax.h"

#include "ops_cc/core/quantization.h"

// Fixed-point formats: Qm.n is an int32 with m integer bits and n = 31 - m
// fraction bits. Input differences are Q5.26, exponentials Q0.31, their sum
// Q12.19. The operation order below is gemmlowp's, which TFLM uses; any
// change in rounding order changes results.

namespace tflm_train {
namespace {

constexpr int kDiffIntegerBits = 5;
constexpr int kSumIntegerBits = 12;

// x * 2^k for a Q format with k fewer integer bits, saturating (gemmlowp
// saturates already at |x| > 2^(31-k) - 1).
int32_t SaturatingShiftLeft(int32_t x, int k) {
  const int32_t threshold = (int32_t{1} << (31 - k)) - 1;
  if (x > threshold) return INT32_MAX;
  if (x < -threshold) return INT32_MIN;
  return static_cast<int32_t>(static_cast<uint32_t>(x) << k);
}

int32_t Mul(int32_t a, int32_t b) {
  return SaturatingRoundingDoublingHighMul(a, b);
}

// exp(a) for a in [-1/4, 0), Q0.31 in and out: exp(-1/8) * exp(x) with
// x = a + 1/8 and the degree-4 Taylor polynomial of exp(x).
int32_t ExpQuarterInterval(int32_t a) {
  const int32_t kExpMinusOneEighth = 1895147668;  // round(exp(-1/8) * 2^31)
  const int32_t kOneThird = 715827883;            // round(2^31 / 3)
  const int32_t x = a + (int32_t{1} << 28);
  const int32_t x2 = Mul(x, x);
  const int32_t x3 = Mul(x2, x);
  const int32_t x4 = Mul(x2, x2);
  const int32_t x4_over_4 = RoundingDivideByPOT(x4, 2);
  // ((x^4/4 + x^3) / 3 + x^2) / 2 = x^4/24 + x^3/6 + x^2/2
  const int32_t higher_terms =
      RoundingDivideByPOT(Mul(x4_over_4 + x3, kOneThird) + x2, 1);
  return kExpMinusOneEighth + Mul(kExpMinusOneEighth, x + higher_terms);
}

// exp(a) for a <= 0 in Q5.26, result Q0.31. a = r - q with r in [-1/4, 0)
// and q >= 0 a multiple of 1/4: exp(r) times exp(-2^k) for each bit k of q.
int32_t ExpOnNegative(int32_t a) {
  constexpr int kFractionBits = 31 - kDiffIntegerBits;
  const int32_t quarter = int32_t{1} << (kFractionBits - 2);
  const int32_t r = (a & (quarter - 1)) - quarter;
  // r is in [-2^24, 0), so the Q5.26 -> Q0.31 rescale cannot saturate.
  int32_t result = ExpQuarterInterval(r * (1 << kDiffIntegerBits));
  const int32_t q = r - a;
  // round(exp(-2^k) * 2^31) for k = -2 .. 4.
  static const int32_t kExpMinusPow2[7] = {
      1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
  for (int k = -2; k <= 4; ++k) {
    if (q & (int32_t{1} << (kFractionBits + k))) {
      result = Mul(result, kExpMinusPow2[k + 2]);
    }
  }
  return a == 0 ? INT32_MAX : result;
}

// 1 / (1 + a) for a in [0, 1), Q0.31 in and out, by three Newton-Raphson
// steps on d = (1 + a) / 2 from the initial guess 48/17 - 32/17 d (Q2.29).
int32_t OneOverOnePlus(int32_t a) {
  const int32_t kFortyEightSeventeenths = 1515870810;       // 48/17 * 2^29
  const int32_t kMinusThirtyTwoSeventeenths = -1010580540;  // -32/17 * 2^29
  const int32_t kOneQ2 = int32_t{1} << 29;
  // (a + 1) / 2 rounded up, with 1 represented as INT32_MAX (a >= 0).
  const int32_t d =
      static_cast<int32_t>((static_cast<int64_t>(a) + INT32_MAX + 1) >> 1);
  int32_t x = kFortyEightSeventeenths + Mul(d, kMinusThirtyTwoSeventeenths);
  for (int i = 0; i < 3; ++i) {
    const int32_t error = kOneQ2 - Mul(d, x);       // Q2.29
    x = x + SaturatingShiftLeft(Mul(x, error), 2);  // Q4.27 -> Q2.29
  }
  // x ~ 1/d = 2 / (1 + a) in Q2.29 is 1 / (1 + a) in Q1.30.
  return SaturatingShiftLeft(x, 1);
}

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
          RoundingDivideByPOT(ExpOnNegative(scaled), kSumIntegerBits));
    }
    // sum = 2^bits_over_unit * (1 + f), f in [0, 1): reciprocal of (1 + f)
    // in Q0.31, then the 2^-bits_over_unit and the Q0.31 -> 1/256 output
    // scaling combine into one rounding right shift.
    if (sum == 0) return false;  // only after wrapping around 2^32
    const int headroom_plus_one = CountLeadingZeros(sum);
    const int bits_over_unit = kSumIntegerBits - headroom_plus_one;
    const int exponent = bits_over_unit + 31 - 8;
    if (exponent < 0 || exponent > 31) return false;
    const int32_t reciprocal = OneOverOnePlus(
        static_cast<int32_t>((sum << headroom_plus_one) - 0x80000000u));
    for (int c = 0; c < depth; ++c) {
      const int32_t diff = in[c] - max;
      if (diff < params.diff_min) {
        out[c] = -128;
        continue;
      }
      const int32_t scaled = MultiplyByQuantizedMultiplier(
          diff, params.input_multiplier, params.input_left_shift);
      int32_t q = RoundingDivideByPOT(Mul(reciprocal, ExpOnNegative(scaled)),
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
