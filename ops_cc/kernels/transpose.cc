#include "ops_cc/kernels/transpose.h"

namespace tflm_train {
namespace ref {

void Transpose(const TransposeParams& params, const Shape& input_shape,
               const int8_t* input, int8_t* output) {
  const int rank = params.rank;
  if (rank < 1 || rank > kMaxTransposeRank || input_shape.FlatSize() == 0)
    return;
  // Walk the output in row-major order; `step[d]` is how far the input
  // position moves when output index d advances (the input stride of
  // dimension perm[d]), `size[d]` the output dimension.
  int32_t input_stride[kMaxTransposeRank] = {1, 1, 1, 1, 1};
  int32_t s = 1;
  for (int d = rank - 1; d >= 0; --d) {
    input_stride[d] = s;
    s *= input_shape.dims[d];
  }
  int32_t step[kMaxTransposeRank] = {0, 0, 0, 0, 0};
  int32_t size[kMaxTransposeRank] = {1, 1, 1, 1, 1};
  for (int d = 0; d < rank; ++d) {
    step[d] = input_stride[params.perm[d]];
    size[d] = input_shape.dims[params.perm[d]];
  }
  const int32_t inner = size[rank - 1];
  const int32_t inner_step = step[rank - 1];
  const int64_t rows = input_shape.FlatSize() / inner;
  int32_t index[kMaxTransposeRank] = {0, 0, 0, 0, 0};
  int32_t offset = 0;  // input position of the row's first element
  for (int64_t r = 0; r < rows; ++r) {
    // Unsigned: one step past the last element may pass INT32_MAX.
    uint32_t in = static_cast<uint32_t>(offset);
    for (int32_t i = 0; i < inner; ++i, in += static_cast<uint32_t>(inner_step)) {
      *output++ = input[in];
    }
    for (int d = rank - 2; d >= 0; --d) {
      offset += step[d];
      if (++index[d] < size[d]) break;
      offset -= step[d] * size[d];
      index[d] = 0;
    }
  }
}

}  // namespace ref
}  // namespace tflm_train
