// Builtin operator codes and options of the forward ops the standalone
// runtime executes, parsed from the TFLite flatbuffer by
// ops_cc/runtime/model.cc. (Under TFLM the forward ops are TFLM's own.)
#ifndef TFLM_TRAIN_OPS_BUILTIN_OPTIONS_H_
#define TFLM_TRAIN_OPS_BUILTIN_OPTIONS_H_

#include <cstdint>

#include "ops_cc/core/window.h"  // Padding

namespace tflm_train {

// TFLite BuiltinOperator values.
enum BuiltinCode : int {
  kBuiltinAdd = 0,
  kBuiltinAveragePool2D = 1,
  kBuiltinConcatenation = 2,
  kBuiltinConv2D = 3,
  kBuiltinDepthwiseConv2D = 4,
  kBuiltinDequantize = 6,
  kBuiltinFullyConnected = 9,
  kBuiltinMaxPool2D = 17,
  kBuiltinMul = 18,
  kBuiltinReshape = 22,
  kBuiltinSoftmax = 25,
  kBuiltinPad = 34,
  kBuiltinMean = 40,
  kBuiltinSub = 41,
  kBuiltinMaximum = 55,
  kBuiltinMinimum = 57,
  kBuiltinQuantize = 114,
  kBuiltinCustom = 32,
};

// TFLite ActivationFunctionType values.
enum Activation : int {
  kActivationNone = 0,
  kActivationRelu = 1,
  kActivationReluN1To1 = 2,
  kActivationRelu6 = 3,
};

struct ConvOptions {
  int padding = kPaddingSame;
  int stride_w = 1, stride_h = 1;
  int activation = kActivationNone;
  int dilation_w = 1, dilation_h = 1;
};

struct DepthwiseConvOptions {
  int padding = kPaddingSame;
  int stride_w = 1, stride_h = 1;
  int depth_multiplier = 1;
  int activation = kActivationNone;
  int dilation_w = 1, dilation_h = 1;
};

struct FullyConnectedOptions {
  int activation = kActivationNone;
  int weights_format = 0;  // only DEFAULT (0) is supported
  bool keep_num_dims = false;
};

struct AddOptions {
  int activation = kActivationNone;
};

// SUB and MUL have the same one field as ADD (pot_scale_int16 concerns
// int16 only).
struct SubOptions {
  int activation = kActivationNone;
};

struct MulOptions {
  int activation = kActivationNone;
};

struct ConcatenationOptions {
  int axis = 0;  // negative: counted from the end
  int activation = kActivationNone;
};

struct PoolOptions {
  int padding = kPaddingSame;
  int stride_w = 1, stride_h = 1;
  int filter_w = 1, filter_h = 1;
  int activation = kActivationNone;
};

struct ReducerOptions {
  bool keep_dims = false;
};

struct SoftmaxOptions {
  float beta = 1.0f;
};

// Storage large enough for any of the option structs above.
union BuiltinOptionsStorage {
  ConvOptions conv;
  DepthwiseConvOptions depthwise;
  FullyConnectedOptions fully_connected;
  AddOptions add;
  SubOptions sub;
  MulOptions mul;
  ConcatenationOptions concatenation;
  PoolOptions pool;
  ReducerOptions reducer;
  SoftmaxOptions softmax;
  BuiltinOptionsStorage() : conv() {}
};

}  // namespace tflm_train

#endif  // TFLM_TRAIN_OPS_BUILTIN_OPTIONS_H_
