#include "ops_cc/kernels/concatenation.h"

#include <cstring>

namespace tflm_train {

bool ConcatenationShapesMatch(int axis, int count, const Shape* input_shapes,
                              const Shape& output_shape) {
  const int rank = output_shape.rank;
  if (rank < 1 || rank > kMaxRank || axis < 0 || axis >= rank) return false;
  if (count < 1) return false;
  int64_t along_axis = 0;
  for (int i = 0; i < count; ++i) {
    const Shape& s = input_shapes[i];
    if (s.rank != rank) return false;
    for (int d = 0; d < rank; ++d) {
      if (s.dims[d] < 0) return false;
      if (d != axis && s.dims[d] != output_shape.dims[d]) return false;
    }
    along_axis += s.dims[axis];
  }
  return along_axis == output_shape.dims[axis];
}

namespace ref {

void Concatenation(int axis, int count, const Shape* input_shapes,
                   const int8_t* const* inputs, const Shape& output_shape,
                   int8_t* output) {
  // Each input is `outer` blocks of dims[axis] * inner bytes; the output
  // takes one block of every input in turn.
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < axis; ++d) outer *= output_shape.dims[d];
  for (int d = axis + 1; d < output_shape.rank; ++d)
    inner *= output_shape.dims[d];
  int8_t* out = output;
  for (int64_t k = 0; k < outer; ++k) {
    for (int i = 0; i < count; ++i) {
      const int64_t block = input_shapes[i].dims[axis] * inner;
      if (block == 0) continue;
      std::memcpy(out, inputs[i] + k * block, static_cast<size_t>(block));
      out += block;
    }
  }
}

}  // namespace ref
}  // namespace tflm_train
