// Deterministic single-precision helpers for the training kernels.
//
// Everything here uses only IEEE float + - * / and integer bit manipulation
// (no libm), so that x86 and Cortex-M produce bit-identical results when
// compiled with -ffp-contract=off.
#ifndef TFLM_TRAIN_CORE_FLOAT_MATH_H_
#define TFLM_TRAIN_CORE_FLOAT_MATH_H_

#include <cstdint>
#include <cstring>

namespace tflm_train {

inline uint32_t FloatBits(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof(bits));
  return bits;
}

inline float BitsToFloat(uint32_t bits) {
  float x;
  std::memcpy(&x, &bits, sizeof(x));
  return x;
}

// False for NaN and +-inf.
inline bool IsFinite(float x) {
  return (FloatBits(x) & 0x7f800000u) != 0x7f800000u;
}

// e^x within about 1 ulp; +inf above ~88.72, +0 below ~-103.97, NaN -> NaN.
float ExpF(float x);

// Natural logarithm within about 1 ulp; log(0) = -inf, log(+inf) = +inf,
// negative or NaN -> NaN. Subnormal inputs are handled.
float LogF(float x);

// cos(pi * u) for u in [0, 1], within a few ulp; u outside is clamped.
float CosPi(float u);

// sqrt(x) for x >= 0 within 1 ulp (Newton steps, no libm); 0 for x <= 0 or
// NaN, +inf for +inf.
float SqrtF(float x);

// floor(x) as an integer, saturated to [-2^62, 2^62]; NaN -> 0.
int64_t FloorToInt64(float x);

// One step of Marsaglia's xorshift32 (shifts 13, 17, 5); returns the new
// state, which is also stored back. A zero state stays zero.
inline uint32_t Xorshift32Next(uint32_t* state) {
  uint32_t x = *state;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  *state = x;
  return x;
}

// Advances the generator and returns u = (x >> 8) * 2^-24, uniform in [0, 1).
inline float Xorshift32Uniform(uint32_t* state) {
  return static_cast<float>(Xorshift32Next(state) >> 8) *
         5.9604644775390625e-8f;
}

}  // namespace tflm_train

#endif  // TFLM_TRAIN_CORE_FLOAT_MATH_H_
