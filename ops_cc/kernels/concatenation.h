// CONCATENATION of int8 tensors along one axis. All inputs share the
// output's quantization (TFLM requires it for int8; the TFLite converter
// inserts a requantizing QUANTIZE before an input that differs), so the op
// only copies bytes.
#ifndef TFLM_TRAIN_KERNELS_CONCATENATION_H_
#define TFLM_TRAIN_KERNELS_CONCATENATION_H_

#include <cstdint>

#include "ops_cc/core/shape.h"

namespace tflm_train {

// As many inputs as TFLM's kernel takes.
constexpr int kMaxConcatenationInputs = 10;

// True if `count` inputs of these shapes concatenate along `axis`
// (0 <= axis < output rank) to `output_shape`: equal ranks, equal
// dimensions except along the axis, where they add up to the output's.
bool ConcatenationShapesMatch(int axis, int count, const Shape* input_shapes,
                              const Shape& output_shape);

namespace ref {

// Shapes must satisfy ConcatenationShapesMatch.
void Concatenation(int axis, int count, const Shape* input_shapes,
                   const int8_t* const* inputs, const Shape& output_shape,
                   int8_t* output);

}  // namespace ref
}  // namespace tflm_train

#endif  // TFLM_TRAIN_KERNELS_CONCATENATION_H_
