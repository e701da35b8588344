// Op wrappers for the forward (inference) builtins the standalone runtime
// executes: CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, ADD,
// AVERAGE_POOL_2D, MAX_POOL_2D, MEAN, PAD, RESHAPE, SOFTMAX, QUANTIZE and
// DEQUANTIZE, all on int8 tensors (QUANTIZE also from float32, DEQUANTIZE to
// float32), bit-exact with TFLite Micro's reference kernels.
#ifndef TFLM_TRAIN_OPS_FORWARD_OPS_H_
#define TFLM_TRAIN_OPS_FORWARD_OPS_H_

#include "ops_cc/ops/kernel_context.h"

namespace tflm_train {

// The kernel of a forward builtin operator, or null when unsupported.
const OpKernel* FindForwardKernel(int builtin_code);

}  // namespace tflm_train

#endif  // TFLM_TRAIN_OPS_FORWARD_OPS_H_
