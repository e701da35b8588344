// The forward builtin kernels of the standalone runtime, one per file in
// this folder; ops_cc/ops/forward_ops.cc maps builtin codes to them.
#ifndef TFLM_TRAIN_OPS_FORWARD_FORWARD_KERNELS_H_
#define TFLM_TRAIN_OPS_FORWARD_FORWARD_KERNELS_H_

#include "ops_cc/ops/kernel_context.h"

namespace tflm_train {

extern const OpKernel kConv2D;
extern const OpKernel kDepthwiseConv2D;
extern const OpKernel kFullyConnected;
extern const OpKernel kAdd;
extern const OpKernel kSub;
extern const OpKernel kMul;
extern const OpKernel kMaximum;
extern const OpKernel kMinimum;
extern const OpKernel kConcatenation;
extern const OpKernel kAveragePool2D;
extern const OpKernel kMaxPool2D;
extern const OpKernel kMean;
extern const OpKernel kPad;
extern const OpKernel kReshape;
extern const OpKernel kSoftmax;
extern const OpKernel kQuantize;
extern const OpKernel kDequantize;
extern const OpKernel kStridedSlice;
extern const OpKernel kTranspose;
extern const OpKernel kSqueeze;
extern const OpKernel kExpandDims;
extern const OpKernel kResizeNearestNeighbor;
extern const OpKernel kLogistic;
extern const OpKernel kTanh;
extern const OpKernel kHardSwish;
extern const OpKernel kLeakyRelu;
extern const OpKernel kUnidirectionalSequenceLstm;

}  // namespace tflm_train

#endif  // TFLM_TRAIN_OPS_FORWARD_FORWARD_KERNELS_H_
