#include "ops_cc/kernels/maximum_minimum.h"

#include "ops_cc/kernels/broadcast.h"

namespace tflm_train {
namespace ref {

void Maximum(const Shape& input1_shape, const int8_t* input1,
             const Shape& input2_shape, const int8_t* input2,
             const Shape& output_shape, int8_t* output) {
  BroadcastBinary(input1_shape, input1, input2_shape, input2, output_shape,
                  output, [](int8_t a, int8_t b) { return a > b ? a : b; });
}

void Minimum(const Shape& input1_shape, const int8_t* input1,
             const Shape& input2_shape, const int8_t* input2,
             const Shape& output_shape, int8_t* output) {
  BroadcastBinary(input1_shape, input1, input2_shape, input2, output_shape,
                  output, [](int8_t a, int8_t b) { return a < b ? a : b; });
}

}  // namespace ref
}  // namespace tflm_train
