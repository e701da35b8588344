// STRIDED_SLICE of a tensor of rank <= 4 with constant begin / end / strides
// and TFLite's begin / end / shrink-axis masks (TFLite Micro's semantics).
#ifndef TFLM_TRAIN_KERNELS_STRIDED_SLICE_H_
#define TFLM_TRAIN_KERNELS_STRIDED_SLICE_H_

#include <cstdint>

#include "ops_cc/core/shape.h"

namespace tflm_train {

// TFLite Micro slices tensors of rank <= 4 only.
constexpr int kMaxStridedSliceRank = 4;

// What the masks and indices of one axis resolve to: the slice visits
// `count` elements, start, start + stride, ... (all inside the axis).
struct SliceAxis {
  int32_t start = 0;
  int32_t stride = 1;
  int32_t count = 1;
};

struct StridedSliceParams {
  int rank = 0;  // of the input
  SliceAxis axes[kMaxStridedSliceRank];
};

namespace ref {

// Resolves one axis of size `axis_size` as TFLite Micro's Eval does:
// negative begin / end count from the end of the axis, then they are clamped
// ([0, size] for a positive stride, [-1, size - 1] for a negative one), then
// a begin / end mask bit replaces them with the full range. A shrunk axis
// takes the one element at begin (none when begin was clamped to the size).
// `stride` must be non-zero.
SliceAxis ResolveSliceAxis(int32_t axis_size, int32_t begin, int32_t end,
                           int32_t stride, bool begin_mask, bool end_mask,
                           bool shrink);

// Writes the slice in row-major order of the visited elements; `input` has
// `input_shape` (rank == params.rank), `output` holds the product of the
// counts.
void StridedSlice(const StridedSliceParams& params, const Shape& input_shape,
                  const int8_t* input, int8_t* output);

}  // namespace ref
}  // namespace tflm_train

#endif  // TFLM_TRAIN_KERNELS_STRIDED_SLICE_H_
