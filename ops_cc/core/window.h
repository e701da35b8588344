// Window geometry of convolutions and pooling (TFLite SAME/VALID rules),
// shared by the forward and backward window ops.
#ifndef TFLM_TRAIN_CORE_WINDOW_H_
#define TFLM_TRAIN_CORE_WINDOW_H_

#include <cstdint>

namespace tflm_train {

// TFLite Padding (schema values).
enum Padding : int { kPaddingSame = 0, kPaddingValid = 1 };

// The invariant that keeps the window kernels' int index arithmetic free of
// overflow: the span one window covers ((filter - 1) * dilation + 1), the
// input span all windows cover ((out - 1) * stride + that) and the leading
// padding are each at most 2^29, so any position o * stride - pad +
// k * dilation they form lies within (-2^30, 2^30). Every window op (conv,
// depthwise, pooling, forward and backward) gets its geometry from
// ComputeWindowGeometry, which enforces it; tensor byte sizes are below 2^31
// (the model reader), which bounds the offsets formed from in-range
// positions.
constexpr int64_t kMaxWindowExtent = int64_t{1} << 29;

// Output size and leading padding of one spatial dimension of a convolution
// or pooling window under TFLite's SAME/VALID rules (padding: 0 SAME,
// 1 VALID). Returns false for invalid arguments, a negative output size, or
// a window beyond kMaxWindowExtent.
bool ComputeWindowGeometry(int padding, int in_size, int filter_size,
                           int stride, int dilation, int* out_size,
                           int* pad_before);

}  // namespace tflm_train

#endif  // TFLM_TRAIN_CORE_WINDOW_H_
