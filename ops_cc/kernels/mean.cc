#include "ops_cc/kernels/mean.h"

#include "ops_cc/core/quantization.h"

namespace tflm_train {
namespace ref {
namespace {

// Dimensions of one kind (kept or reduced) with their input strides, after
// dropping dimensions of size 1 and merging neighbours of the same kind
// whose strides chain.
struct Walk {
  int count = 0;
  int32_t size[kMaxRank];
  int32_t stride[kMaxRank];
};

}  // namespace

void Mean(const MeanParams& params, const Shape& input_shape,
          uint32_t axis_mask, const int8_t* input, int8_t* output) {
  const int rank = input_shape.rank;
  int64_t outputs = 1, count = 1;
  for (int d = 0; d < rank; ++d) {
    if ((axis_mask >> d) & 1) {
      count *= input_shape.dims[d];
    } else {
      outputs *= input_shape.dims[d];
    }
  }
  if (count == 0 || outputs == 0) {
    // TFLM zero-fills (not the zero point) when nothing is averaged.
    for (int64_t o = 0; o < outputs; ++o) output[o] = 0;
    return;
  }
  Walk kept, reduced;
  int32_t stride = 1;
  int last_kind = -1;
  for (int d = rank - 1; d >= 0; --d) {
    const int32_t size = input_shape.dims[d];
    if (size != 1) {
      const int kind = (axis_mask >> d) & 1;
      Walk& w = kind ? reduced : kept;
      if (kind == last_kind) {
        w.size[w.count - 1] *= size;  // stride chains with the previous one
      } else {
        w.size[w.count] = size;
        w.stride[w.count] = stride;
        ++w.count;
      }
      last_kind = kind;
    }
    stride *= size;
  }
  // Walks were built innermost first; index 0 is the innermost dimension.

  // Fold 1/count into the multiplier: scale it up by 2^k with
  // k = floor(log2(count)) (so the quotient keeps ~31 significant bits),
  // divide by count with truncation, and shift right k more bits. k is capped
  // at 32 and so that the final right shift stays within 31.
  int k = 0;
  while ((count >> (k + 1)) != 0) ++k;
  if (k > 32) k = 32;
  if (k > 31 + params.shift) k = 31 + params.shift;
  const int32_t multiplier = static_cast<int32_t>(
      (static_cast<int64_t>(params.multiplier) << k) / count);
  const int shift = params.shift - k;
  // int32 as in TFLM: the sum wraps, and so does the zero-point correction.
  const int32_t zero_sum =
      static_cast<int32_t>(static_cast<int64_t>(params.input_zero_point) * count);

  int32_t kept_index[kMaxRank] = {0, 0, 0, 0, 0, 0};
  int32_t base = 0;  // input offset of the current output element
  for (int64_t o = 0; o < outputs; ++o) {
    uint32_t sum = 0;  // wraps like TFLM's int32 accumulation
    if (reduced.count == 0) {
      sum = static_cast<uint32_t>(input[base]);
    } else {
      const int32_t inner = reduced.size[0];
      const int32_t inner_stride = reduced.stride[0];
      int32_t index[kMaxRank] = {0, 0, 0, 0, 0, 0};
      int32_t offset = base;
      for (;;) {
        const int8_t* p = input + offset;
        for (int32_t i = 0; i < inner; ++i, p += inner_stride) {
          sum += static_cast<uint32_t>(static_cast<int32_t>(*p));
        }
        int r = 1;
        for (; r < reduced.count; ++r) {
          offset += reduced.stride[r];
          if (++index[r] < reduced.size[r]) break;
          offset -= reduced.stride[r] * reduced.size[r];
          index[r] = 0;
        }
        if (r == reduced.count) break;
      }
    }
    int32_t out = MultiplyByQuantizedMultiplier(
                      static_cast<int32_t>(sum - static_cast<uint32_t>(zero_sum)),
                      multiplier, shift) +
                  params.output_zero_point;
    if (out < -128) out = -128;
    if (out > 127) out = 127;
    output[o] = static_cast<int8_t>(out);
    // Next output element: odometer over the kept dimensions, innermost
    // first.
    for (int r = 0; r < kept.count; ++r) {
      base += kept.stride[r];
      if (++kept_index[r] < kept.size[r]) break;
      base -= kept.stride[r] * kept.size[r];
      kept_index[r] = 0;
    }
  }
}

void MeanOverHeightWidth(const MeanParams& params, const Shape& input_shape,
                         const int8_t* input, int8_t* output) {
  Mean(params, input_shape, (1u << 1) | (1u << 2), input, output);
}

}  // namespace ref
}  // namespace tflm_train
