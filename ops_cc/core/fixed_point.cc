#include "ops_cc/core/fixed_point.h"

#include "ops_cc/core/quantization.h"

namespace tflm_train {
namespace {

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

// x ~ 2 / (1 + a) in Q2.29 for a in Q0.31 [0, 1]: three Newton-Raphson
// steps on d = (1 + a) / 2 from the initial guess 48/17 - 32/17 d.
int32_t TwoOverOnePlusX(int32_t a) {
  const int32_t kFortyEightSeventeenths = 1515870810;       // 48/17 * 2^29
  const int32_t kMinusThirtyTwoSeventeenths = -1010580540;  // -32/17 * 2^29
  const int32_t kOneQ2 = int32_t{1} << 29;
  const int32_t d = RoundingHalfSum(a, INT32_MAX);
  int32_t x = kFortyEightSeventeenths + Mul(d, kMinusThirtyTwoSeventeenths);
  for (int i = 0; i < 3; ++i) {
    const int32_t error = kOneQ2 - Mul(d, x);       // Q2.29
    x = x + SaturatingShiftLeft(Mul(x, error), 2);  // Q4.27 -> Q2.29
  }
  return x;
}

}  // namespace

int32_t SaturatingShiftLeft(int32_t x, int k) {
  if (k == 0) return x;
  const int32_t threshold = (int32_t{1} << (31 - k)) - 1;
  if (x > threshold) return INT32_MAX;
  if (x < -threshold) return INT32_MIN;
  return static_cast<int32_t>(static_cast<uint32_t>(x) << k);
}

int32_t RoundingHalfSum(int32_t a, int32_t b) {
  const int64_t sum = static_cast<int64_t>(a) + b;
  return static_cast<int32_t>((sum + (sum >= 0 ? 1 : -1)) / 2);
}

int32_t ExpOnNegativeValues(int32_t a, int integer_bits) {
  const int fraction_bits = 31 - integer_bits;
  // a = r - q with r in [-1/4, 0) and q >= 0 a multiple of 1/4: exp(r) by
  // the polynomial, times exp(-2^k) for each bit k of q.
  const int32_t quarter = int32_t{1} << (fraction_bits - 2);
  const int32_t r = (a & (quarter - 1)) - quarter;
  int32_t result = ExpQuarterInterval(SaturatingShiftLeft(r, integer_bits));
  const int32_t q = r - a;
  // round(exp(-2^k) * 2^31) for k = -2 .. 4; bits from 2^integer_bits on
  // are outside the format.
  static const int32_t kExpMinusPow2[7] = {
      1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
  for (int k = -2; k <= 4 && k < integer_bits; ++k) {
    if (q & (int32_t{1} << (fraction_bits + k))) {
      result = Mul(result, kExpMinusPow2[k + 2]);
    }
  }
  // Below -32 the product has underflowed to about zero; make it exact.
  if (integer_bits > 5 && a < -(int32_t{1} << (36 - integer_bits))) {
    result = 0;
  }
  return a == 0 ? INT32_MAX : result;
}

int32_t OneOverOnePlusX(int32_t a) {
  // 2 / (1 + a) in Q2.29 is 1 / (1 + a) in Q1.30.
  return SaturatingShiftLeft(TwoOverOnePlusX(a), 1);
}

int32_t OneMinusXOverOnePlusX(int32_t a) {
  // 2 / (1 + a) - 1 = (1 - a) / (1 + a), Q2.29 -> Q0.31.
  return SaturatingShiftLeft(TwoOverOnePlusX(a) - (int32_t{1} << 29), 2);
}

int32_t FixedPointLogistic(int32_t a, int integer_bits) {
  if (a == 0) return int32_t{1} << 30;  // one half
  const int32_t magnitude = a > 0 ? a : -a;
  const int32_t positive =
      OneOverOnePlusX(ExpOnNegativeValues(-magnitude, integer_bits));
  // logistic(-x) = 1 - logistic(x)
  return a > 0 ? positive : INT32_MAX - positive;
}

int32_t FixedPointTanh(int32_t a, int integer_bits) {
  if (a == 0) return 0;
  const int32_t negative_magnitude = a < 0 ? a : -a;
  // exp(-2|a|): the same raw value read with one more integer bit.
  const int32_t t = OneMinusXOverOnePlusX(
      ExpOnNegativeValues(negative_magnitude, integer_bits + 1));
  return a < 0 ? -t : t;
}

}  // namespace tflm_train
