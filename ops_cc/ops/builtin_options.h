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
  kBuiltinLogistic = 14,
  kBuiltinMaxPool2D = 17,
  kBuiltinMul = 18,
  kBuiltinReshape = 22,
  kBuiltinSoftmax = 25,
  kBuiltinTanh = 28,
  kBuiltinPad = 34,
  kBuiltinTranspose = 39,
  kBuiltinMean = 40,
  kBuiltinSub = 41,
  kBuiltinSqueeze = 43,
  kBuiltinUnidirectionalSequenceLstm = 44,
  kBuiltinStridedSlice = 45,
  kBuiltinMaximum = 55,
  kBuiltinMinimum = 57,
  kBuiltinExpandDims = 70,
  kBuiltinResizeNearestNeighbor = 97,
  kBuiltinLeakyRelu = 98,
  kBuiltinQuantize = 114,
  kBuiltinHardSwish = 117,
  kBuiltinCustom = 32,
};

// TFLite ActivationFunctionType values.
enum Activation : int {
  kActivationNone = 0,
  kActivationRelu = 1,
  kActivationReluN1To1 = 2,
  kActivationRelu6 = 3,
  kActivationTanh = 4,
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

struct StridedSliceOptions {
  int32_t begin_mask = 0;
  int32_t end_mask = 0;
  int32_t ellipsis_mask = 0;
  int32_t new_axis_mask = 0;
  int32_t shrink_axis_mask = 0;
  bool offset = false;  // end is relative to begin
};

// TFLite keeps at most 8 squeeze dimensions (TfLiteSqueezeParams).
constexpr int kMaxSqueezeDims = 8;

struct SqueezeOptions {
  // The model's squeeze_dims vector (4-byte aligned, inside the model, which
  // outlives the interpreter); the op data of every builtin holds this union,
  // so the list is not copied.
  const int32_t* squeeze_dims = nullptr;
  int num_squeeze_dims = 0;
};

struct ResizeNearestNeighborOptions {
  bool align_corners = false;
  bool half_pixel_centers = false;
};

struct LeakyReluOptions {
  float alpha = 0.0f;
};

struct SequenceLstmOptions {
  int activation = kActivationNone;  // of the cell gate and the cell output
  float cell_clip = 0.0f;            // 0: no clipping
  float proj_clip = 0.0f;
  bool time_major = false;
  bool asymmetric_quantize_inputs = false;  // hybrid models only
  bool diagonal_recurrent_tensors = false;
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
  StridedSliceOptions strided_slice;
  SqueezeOptions squeeze;
  ResizeNearestNeighborOptions resize_nearest;
  LeakyReluOptions leaky_relu;
  SequenceLstmOptions sequence_lstm;
  BuiltinOptionsStorage() : conv() {}
};

}  // namespace tflm_train

#endif  // TFLM_TRAIN_OPS_BUILTIN_OPTIONS_H_
