#include "ops_cc/kernels/pad.h"

#include <cstring>

namespace tflm_train {
namespace ref {

void Pad(const PadParams& params, const Shape& input_shape, const int8_t* input,
         int8_t pad_value, const Shape& output_shape, int8_t* output) {
  std::memset(output, pad_value, static_cast<size_t>(output_shape.FlatSize()));
  const int rank = input_shape.rank;
  if (rank == 0) {
    output[0] = input[0];
    return;
  }
  const int32_t in_size = static_cast<int32_t>(input_shape.FlatSize());
  if (in_size == 0) return;
  // Copy the input one innermost row at a time; `index` walks the outer
  // dimensions and `out_offset` tracks where that row lands in the output.
  int32_t stride[kMaxRank];
  int32_t s = 1;
  for (int d = rank - 1; d >= 0; --d) {
    stride[d] = s;
    s *= output_shape.dims[d];
  }
  int32_t out_offset = 0;
  for (int d = 0; d < rank; ++d) out_offset += params.before[d] * stride[d];
  const int32_t row = input_shape.dims[rank - 1];
  const int32_t rows = in_size / row;
  int32_t index[kMaxRank] = {0, 0, 0, 0, 0, 0};
  for (int32_t r = 0; r < rows; ++r) {
    std::memcpy(output + out_offset, input + r * row, static_cast<size_t>(row));
    for (int d = rank - 2; d >= 0; --d) {
      out_offset += stride[d];
      if (++index[d] < input_shape.dims[d]) break;
      out_offset -= stride[d] * input_shape.dims[d];
      index[d] = 0;
    }
  }
}

}  // namespace ref
}  // namespace tflm_train
