// Transcendental functions on int32 fixed-point numbers with gemmlowp's
// exact operation order and rounding, which TFLite's integer SOFTMAX,
// LOGISTIC and TANH kernels use; any reordering changes results.
//
// Qm.n is an int32 with m integer bits and n = 31 - m fraction bits; "one"
// in Q0.31 is represented as INT32_MAX. Functions taking `integer_bits`
// read their argument in that Q format and return Q0.31.
#ifndef TFLM_TRAIN_CORE_FIXED_POINT_H_
#define TFLM_TRAIN_CORE_FIXED_POINT_H_

#include <cstdint>

namespace tflm_train {

// x * 2^k for a Q format with k fewer integer bits (k in [0, 30]),
// saturating to INT32_MIN / INT32_MAX (from |x| > 2^(31-k) - 1 on).
int32_t SaturatingShiftLeft(int32_t x, int k);

// (a + b) / 2 rounded to nearest, ties away from zero.
int32_t RoundingHalfSum(int32_t a, int32_t b);

// exp(a) for a <= 0 given in Q`integer_bits` (integer_bits in [0, 29]).
// exp(0) is one (INT32_MAX).
int32_t ExpOnNegativeValues(int32_t a, int integer_bits);

// 1 / (1 + a) for a in Q0.31 [0, 1]: three Newton-Raphson steps.
int32_t OneOverOnePlusX(int32_t a);

// (1 - a) / (1 + a) for a in Q0.31 [0, 1]: three Newton-Raphson steps.
int32_t OneMinusXOverOnePlusX(int32_t a);

// 1 / (1 + exp(-a)) for a in Q`integer_bits` (integer_bits in [0, 29],
// a > INT32_MIN).
int32_t FixedPointLogistic(int32_t a, int integer_bits);

// tanh(a) for a in Q`integer_bits` (integer_bits in [0, 28],
// a > INT32_MIN), as (1 - exp(-2|a|)) / (1 + exp(-2|a|)) with the sign of a.
int32_t FixedPointTanh(int32_t a, int integer_bits);

}  // namespace tflm_train

#endif  // TFLM_TRAIN_CORE_FIXED_POINT_H_
