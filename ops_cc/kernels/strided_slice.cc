#include "ops_cc/kernels/strided_slice.h"

#include <cstring>

namespace tflm_train {
namespace ref {
namespace {

int32_t Clamp(int32_t v, int32_t lo, int32_t hi) {
  return v < lo ? lo : (v > hi ? hi : v);
}

// An index of the axis as the slice resolves it (before the masks).
int32_t ClampIndex(int32_t index, int32_t axis_size, int32_t stride) {
  if (index < 0) index += axis_size;
  return stride > 0 ? Clamp(index, 0, axis_size)
                    : Clamp(index, -1, axis_size - 1);
}

}  // namespace

SliceAxis ResolveSliceAxis(int32_t axis_size, int32_t begin, int32_t end,
                           int32_t stride, bool begin_mask, bool end_mask,
                           bool shrink) {
  SliceAxis a;
  a.stride = stride;
  int32_t start = ClampIndex(begin, axis_size, stride);
  if (begin_mask) start = stride > 0 ? 0 : axis_size - 1;
  int32_t stop;
  if (shrink) {
    stop = start >= axis_size ? start : start + 1;
  } else {
    stop = ClampIndex(end, axis_size, stride);
    if (end_mask) stop = stride > 0 ? axis_size : -1;
  }
  a.start = start;
  // Elements start, start + stride, ... strictly before stop (in the
  // direction of the stride). 64-bit: strides may be as large as int32.
  const int64_t span = stride > 0 ? static_cast<int64_t>(stop) - start
                                  : static_cast<int64_t>(start) - stop;
  const int64_t step = stride > 0 ? static_cast<int64_t>(stride)
                                  : -static_cast<int64_t>(stride);
  a.count = span > 0 ? static_cast<int32_t>((span + step - 1) / step) : 0;
  return a;
}

void StridedSlice(const StridedSliceParams& params, const Shape& input_shape,
                  const int8_t* input, int8_t* output) {
  // Right-align the axes into four; leading axes take their one element.
  SliceAxis axes[kMaxStridedSliceRank];
  int32_t strides[kMaxStridedSliceRank];  // of the input, in elements
  const int pad = kMaxStridedSliceRank - params.rank;
  int32_t s = 1;
  for (int d = kMaxStridedSliceRank - 1; d >= 0; --d) {
    strides[d] = s;
    if (d >= pad) {
      axes[d] = params.axes[d - pad];
      s *= input_shape.dims[d - pad];
    }
  }
  for (int d = 0; d < kMaxStridedSliceRank; ++d) {
    if (axes[d].count == 0) return;
  }
  const SliceAxis& inner = axes[3];
  int8_t* out = output;
  for (int32_t i0 = 0; i0 < axes[0].count; ++i0) {
    const int32_t o0 = (axes[0].start + i0 * axes[0].stride) * strides[0];
    for (int32_t i1 = 0; i1 < axes[1].count; ++i1) {
      const int32_t o1 =
          o0 + (axes[1].start + i1 * axes[1].stride) * strides[1];
      for (int32_t i2 = 0; i2 < axes[2].count; ++i2) {
        const int8_t* row =
            input + o1 + (axes[2].start + i2 * axes[2].stride) * strides[2];
        if (inner.stride == 1) {
          std::memcpy(out, row + inner.start, static_cast<size_t>(inner.count));
          out += inner.count;
        } else {
          for (int32_t i3 = 0; i3 < inner.count; ++i3) {
            *out++ = row[inner.start + i3 * inner.stride];
          }
        }
      }
    }
  }
}

}  // namespace ref
}  // namespace tflm_train
