#include "ops_cc/core/window.h"

namespace tflm_train {

bool ComputeWindowGeometry(int padding, int in_size, int filter_size,
                           int stride, int dilation, int* out_size,
                           int* pad_before) {
  if (in_size < 0 || filter_size <= 0 || stride <= 0 || dilation <= 0) {
    return false;
  }
  const int64_t effective_filter =
      static_cast<int64_t>(filter_size - 1) * dilation + 1;
  int64_t out = 0;
  if (padding == kPaddingSame) {
    out = (static_cast<int64_t>(in_size) + stride - 1) / stride;
  } else if (padding == kPaddingValid) {
    out = (static_cast<int64_t>(in_size) + stride - effective_filter) / stride;
  } else {
    return false;
  }
  if (out < 0) return false;
  // Of an odd total padding, the extra row/column goes after the input.
  int64_t total = (out - 1) * stride + effective_filter - in_size;
  if (total < 0) total = 0;
  // The window kernels form input positions o * stride - pad + k * dilation
  // (forward and backward) in int: each term, and so their sum, stays within
  // kMaxWindowExtent.
  if (effective_filter > kMaxWindowExtent ||
      (out > 0 && (out - 1) * stride + effective_filter > kMaxWindowExtent) ||
      total / 2 > kMaxWindowExtent)
    return false;
  *out_size = static_cast<int>(out);
  *pad_before = static_cast<int>(total / 2);
  return true;
}

}  // namespace tflm_train
