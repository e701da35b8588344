// TRANSPOSE of an int8 tensor of rank 1..5 (TFLite Micro's limit).
#ifndef TFLM_TRAIN_KERNELS_TRANSPOSE_H_
#define TFLM_TRAIN_KERNELS_TRANSPOSE_H_

#include <cstdint>

#include "ops_cc/core/shape.h"

namespace tflm_train {

constexpr int kMaxTransposeRank = 5;

struct TransposeParams {
  int rank = 0;
  // Output dimension d is input dimension perm[d] (a permutation).
  int32_t perm[kMaxTransposeRank] = {0, 1, 2, 3, 4};
};

namespace ref {

// output[i_0, ..., i_{r-1}] = input[j] with j[perm[d]] = i_d; the output
// shape is the input's permuted.
void Transpose(const TransposeParams& params, const Shape& input_shape,
               const int8_t* input, int8_t* output);

}  // namespace ref
}  // namespace tflm_train

#endif  // TFLM_TRAIN_KERNELS_TRANSPOSE_H_
