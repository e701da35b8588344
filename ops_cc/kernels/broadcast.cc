#include "ops_cc/kernels/broadcast.h"

namespace tflm_train {

bool ShapesBroadcast(const Shape& input1_shape, const Shape& input2_shape,
                     const Shape& output_shape) {
  if (input1_shape.rank < 0 || input1_shape.rank > kMaxRank ||
      input2_shape.rank < 0 || input2_shape.rank > kMaxRank ||
      output_shape.rank < 0 || output_shape.rank > kMaxRank) {
    return false;
  }
  const int rank = input1_shape.rank > input2_shape.rank ? input1_shape.rank
                                                         : input2_shape.rank;
  if (output_shape.rank != rank) return false;
  for (int i = 0; i < kMaxRank; ++i) {
    const int32_t a = AlignedDim(input1_shape, i);
    const int32_t b = AlignedDim(input2_shape, i);
    const int32_t o = AlignedDim(output_shape, i);
    if (a < 0 || b < 0 || o < 0) return false;
    if ((a != o && a != 1) || (b != o && b != 1)) return false;
    if (a != o && b != o) return false;  // 1 and 1 give 1
  }
  return true;
}

}  // namespace tflm_train
