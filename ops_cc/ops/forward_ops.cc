#include "ops_cc/ops/forward_ops.h"

#include "ops_cc/ops/builtin_options.h"
#include "ops_cc/ops/forward/forward_kernels.h"

namespace tflm_train {

const OpKernel* FindForwardKernel(int builtin_code) {
  switch (builtin_code) {
    case kBuiltinConv2D:
      return &kConv2D;
    case kBuiltinDepthwiseConv2D:
      return &kDepthwiseConv2D;
    case kBuiltinFullyConnected:
      return &kFullyConnected;
    case kBuiltinAdd:
      return &kAdd;
    case kBuiltinSub:
      return &kSub;
    case kBuiltinMul:
      return &kMul;
    case kBuiltinMaximum:
      return &kMaximum;
    case kBuiltinMinimum:
      return &kMinimum;
    case kBuiltinConcatenation:
      return &kConcatenation;
    case kBuiltinAveragePool2D:
      return &kAveragePool2D;
    case kBuiltinMaxPool2D:
      return &kMaxPool2D;
    case kBuiltinMean:
      return &kMean;
    case kBuiltinPad:
      return &kPad;
    case kBuiltinReshape:
      return &kReshape;
    case kBuiltinSoftmax:
      return &kSoftmax;
    case kBuiltinQuantize:
      return &kQuantize;
    case kBuiltinDequantize:
      return &kDequantize;
    case kBuiltinStridedSlice:
      return &kStridedSlice;
    case kBuiltinTranspose:
      return &kTranspose;
    case kBuiltinSqueeze:
      return &kSqueeze;
    case kBuiltinExpandDims:
      return &kExpandDims;
    case kBuiltinResizeNearestNeighbor:
      return &kResizeNearestNeighbor;
    case kBuiltinLogistic:
      return &kLogistic;
    case kBuiltinTanh:
      return &kTanh;
    case kBuiltinHardSwish:
      return &kHardSwish;
    case kBuiltinLeakyRelu:
      return &kLeakyRelu;
    case kBuiltinUnidirectionalSequenceLstm:
      return &kUnidirectionalSequenceLstm;
    default:
      return nullptr;
  }
}

}  // namespace tflm_train
