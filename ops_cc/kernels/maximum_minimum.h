// MAXIMUM and MINIMUM of two int8 tensors, with numpy-style broadcasting
// (ops_cc/kernels/broadcast.h). TFLM compares the raw int8 values without
// requantizing; the converter gives both inputs the output's quantization
// (the op wrapper requires it), so that is also the real-valued max/min.
#ifndef TFLM_TRAIN_KERNELS_MAXIMUM_MINIMUM_H_
#define TFLM_TRAIN_KERNELS_MAXIMUM_MINIMUM_H_

#include <cstdint>

#include "ops_cc/core/shape.h"

namespace tflm_train {
namespace ref {

// Shapes must satisfy ShapesBroadcast.
void Maximum(const Shape& input1_shape, const int8_t* input1,
             const Shape& input2_shape, const int8_t* input2,
             const Shape& output_shape, int8_t* output);

void Minimum(const Shape& input1_shape, const int8_t* input1,
             const Shape& input2_shape, const int8_t* input2,
             const Shape& output_shape, int8_t* output);

}  // namespace ref
}  // namespace tflm_train

#endif  // TFLM_TRAIN_KERNELS_MAXIMUM_MINIMUM_H_
