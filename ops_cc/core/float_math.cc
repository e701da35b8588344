#include "ops_cc/core/float_math.h"

namespace tflm_train {
namespace {

// ln 2 split so that k * kLn2Hi is exact for |k| < 2^9 (kLn2Hi has 15
// significant bits).
constexpr float kLn2Hi = 0.693145751953125f;
constexpr float kLn2Lo = 1.42860682e-06f;
constexpr float kLog2E = 1.44269502f;

// 2^e for e in [-126, 127].
inline float Pow2(int e) {
  return BitsToFloat(static_cast<uint32_t>(e + 127) << 23);
}

}  // namespace

float ExpF(float x) {
  if (x != x) return x;
  if (x > 89.0f) return BitsToFloat(0x7f800000u);
  if (x < -104.0f) return 0.0f;

  // x = k ln2 + r with |r| <= ln2 / 2 (Cody-Waite reduction).
  const float kf = x * kLog2E;
  const int k = static_cast<int>(kf < 0.0f ? kf - 0.5f : kf + 0.5f);
  const float kk = static_cast<float>(k);
  const float r = (x - kk * kLn2Hi) - kk * kLn2Lo;

  // e^r = 1 + r + r^2 P(r), P fitted (relative error < 3.1e-9 on the range).
  const float p =
      0.49999994f +
      r * (0.166665211f +
           r * (0.041668389f + r * (0.00836871006f + r * 0.00138146128f)));
  const float er = 1.0f + (r + (r * r) * p);

  // Scale by 2^k; the last multiply does the only rounding near overflow or
  // into the subnormal range.
  if (k > 127) return er * Pow2(k - 1) * 2.0f;
  if (k < -126) return er * Pow2(k + 126) * Pow2(-126);
  return er * Pow2(k);
}

float LogF(float x) {
  uint32_t bits = FloatBits(x);
  if (x != x) return x;
  if (bits == 0u || bits == 0x80000000u) return BitsToFloat(0xff800000u);
  if (bits & 0x80000000u) return BitsToFloat(0x7fc00000u);
  if (bits == 0x7f800000u) return x;

  int e = static_cast<int>(bits >> 23) - 127;
  if ((bits >> 23) == 0) {  // subnormal: normalise exactly
    bits = FloatBits(x * 8388608.0f);
    e = static_cast<int>(bits >> 23) - 127 - 23;
  }
  // x = 2^e * m with m in [sqrt(2)/2, sqrt(2)).
  uint32_t mantissa = bits & 0x007fffffu;
  if (mantissa > 0x3504f3u) {  // m >= sqrt(2): halve it
    mantissa |= 0x3f000000u;
    ++e;
  } else {
    mantissa |= 0x3f800000u;
  }
  const float f = BitsToFloat(mantissa) - 1.0f;  // exact

  // log(1 + f) = 2 atanh(s), s = f / (2 + f), written as
  // f - (f^2/2 - s (f^2/2 + R)) with R = 2 s^2/3 + 2 s^4/5 + ... .
  const float s = f / (2.0f + f);
  const float z = s * s;
  const float poly =
      z * (0.666666667f +
           z * (0.4f + z * (0.285714286f + z * 0.222222222f)));
  const float hfsq = 0.5f * f * f;
  const float ef = static_cast<float>(e);
  const float lo = s * (hfsq + poly) + ef * kLn2Lo;
  return ef * kLn2Hi + (f - (hfsq - lo));
}

int64_t FloorToInt64(float x) {
  constexpr float kLimit = 4611686018427387904.0f;  // 2^62
  if (x != x) return 0;
  if (x >= kLimit) return int64_t{1} << 62;
  if (x <= -kLimit) return -(int64_t{1} << 62);
  // Within int32 the hardware conversion gives the same truncation as the
  // 64-bit one (a library call on 32-bit cores); beyond 2^24 x is an integer.
  if (x > -2147483648.0f && x < 2147483648.0f) {
    const int32_t t = static_cast<int32_t>(x);  // truncates toward zero
    return static_cast<float>(t) > x ? int64_t{t} - 1 : int64_t{t};
  }
  const int64_t t = static_cast<int64_t>(x);
  return static_cast<float>(t) > x ? t - 1 : t;
}

namespace {

// Taylor series on |t| <= pi/4 (truncation error below 1e-9).
float CosSmall(float t) {
  const float t2 = t * t;
  return 1.0f +
         t2 * (-0.5f + t2 * (4.16666679e-02f +
                             t2 * (-1.38888892e-03f +
                                   t2 * (2.48015876e-05f +
                                         t2 * -2.75573188e-07f))));
}

float SinSmall(float t) {
  const float t2 = t * t;
  return t * (1.0f + t2 * (-1.66666672e-01f +
                           t2 * (8.33333377e-03f +
                                 t2 * (-1.98412701e-04f +
                                       t2 * 2.75573188e-06f))));
}

constexpr float kPi = 3.14159265f;

}  // namespace

float CosPi(float u) {
  if (!(u > 0.0f)) u = 0.0f;  // also NaN
  if (u > 1.0f) u = 1.0f;
  // cos(pi u) = -cos(pi (1 - u)): fold to [0, 1/2], then use cos or sin on
  // an argument of at most pi/4.
  float sign = 1.0f;
  if (u > 0.5f) {
    u = 1.0f - u;
    sign = -1.0f;
  }
  const float c = u <= 0.25f ? CosSmall(kPi * u) : SinSmall(kPi * (0.5f - u));
  return sign * c;
}

float SqrtF(float x) {
  if (!(x > 0.0f)) return 0.0f;
  if (!IsFinite(x)) return x;
  // Initial guess from halving the exponent (within 6 %), then Newton's
  // method, which converges quadratically to within an ulp.
  float r = BitsToFloat((FloatBits(x) >> 1) + 0x1fc00000u);
  for (int i = 0; i < 5; ++i) r = 0.5f * (r + x / r);
  return r;
}

}  // namespace tflm_train
