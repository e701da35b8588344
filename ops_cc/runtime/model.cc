#include "ops_cc/runtime/model.h"

#include <cstring>

#include "ops_cc/core/quantization.h"

namespace tflm_train {
namespace {

// Field slots of TFLite's schema tables the runtime reads.
namespace slot {
constexpr int kModelOperatorCodes = 1, kModelSubgraphs = 2, kModelBuffers = 4,
              kModelMetadata = 6;
constexpr int kSubgraphTensors = 0, kSubgraphInputs = 1, kSubgraphOutputs = 2,
              kSubgraphOperators = 3;
constexpr int kTensorShape = 0, kTensorType = 1, kTensorBuffer = 2,
              kTensorName = 3, kTensorQuantization = 4, kTensorIsVariable = 5,
              kTensorSparsity = 6;
constexpr int kQuantScale = 2, kQuantZeroPoint = 3,
              kQuantQuantizedDimension = 6;
constexpr int kOpOpcodeIndex = 0, kOpInputs = 1, kOpOutputs = 2,
              kOpBuiltinOptionsType = 3, kOpBuiltinOptions = 4,
              kOpCustomOptions = 5, kOpLargeCustomOptionsSize = 10;
constexpr int kOpcodeDeprecatedBuiltinCode = 0, kOpcodeCustomCode = 1,
              kOpcodeBuiltinCode = 3;
constexpr int kBufferData = 0, kBufferOffset = 1;
constexpr int kMetadataName = 0, kMetadataBuffer = 1;
}  // namespace slot

// TFLite BuiltinOptions union member ids.
enum OptionsType : uint8_t {
  kConv2DOptions = 1,
  kDepthwiseConv2DOptions = 2,
  kPool2DOptions = 5,
  kFullyConnectedOptions = 8,
  kSoftmaxOptions = 9,
  kConcatenationOptions = 10,
  kAddOptions = 11,
  kMulOptions = 21,
  kTransposeOptions = 26,
  kReducerOptions = 27,
  kSubOptions = 28,
  kSqueezeOptions = 30,
  kStridedSliceOptions = 32,
  kExpandDimsOptions = 52,
  kUnidirectionalSequenceLSTMOptions = 71,
  kResizeNearestNeighborOptions = 74,
  kLeakyReluOptions = 75,
};

constexpr int kMaxTensorBytes = 0x7fffffff;

bool KnownType(int8_t t) {
  switch (static_cast<DataType>(t)) {
    case DataType::kFloat32:
    case DataType::kInt32:
    case DataType::kUInt8:
    case DataType::kInt64:
    case DataType::kBool:
    case DataType::kInt16:
    case DataType::kInt8:
      return true;
  }
  return false;
}

}  // namespace

const char* BuiltinName(int code) {
  switch (code) {
    case kBuiltinAdd: return "ADD";
    case kBuiltinAveragePool2D: return "AVERAGE_POOL_2D";
    case kBuiltinConcatenation: return "CONCATENATION";
    case kBuiltinConv2D: return "CONV_2D";
    case kBuiltinDepthwiseConv2D: return "DEPTHWISE_CONV_2D";
    case kBuiltinDequantize: return "DEQUANTIZE";
    case kBuiltinFullyConnected: return "FULLY_CONNECTED";
    case kBuiltinLogistic: return "LOGISTIC";
    case kBuiltinMaxPool2D: return "MAX_POOL_2D";
    case kBuiltinMul: return "MUL";
    case kBuiltinReshape: return "RESHAPE";
    case kBuiltinSoftmax: return "SOFTMAX";
    case kBuiltinTanh: return "TANH";
    case kBuiltinPad: return "PAD";
    case kBuiltinMean: return "MEAN";
    case kBuiltinTranspose: return "TRANSPOSE";
    case kBuiltinSqueeze: return "SQUEEZE";
    case kBuiltinStridedSlice: return "STRIDED_SLICE";
    case kBuiltinExpandDims: return "EXPAND_DIMS";
    case kBuiltinResizeNearestNeighbor: return "RESIZE_NEAREST_NEIGHBOR";
    case kBuiltinLeakyRelu: return "LEAKY_RELU";
    case kBuiltinSub: return "SUB";
    case kBuiltinMaximum: return "MAXIMUM";
    case kBuiltinMinimum: return "MINIMUM";
    case kBuiltinQuantize: return "QUANTIZE";
    case kBuiltinHardSwish: return "HARD_SWISH";
    case kBuiltinUnidirectionalSequenceLstm: return "UNIDIRECTIONAL_SEQUENCE_LSTM";
    case kBuiltinCustom: return "CUSTOM";
  }
  return "BUILTIN";
}

Status Model::Init(const uint8_t* data, size_t size, ErrorReporter* error) {
  data_ = data;
  size_ = size;
  error_ = error;
  if (data == nullptr || size < 8)
    return error->Report(Status::kMalformedModel, "model: %zu bytes is too small for a flatbuffer", size);
  if (reinterpret_cast<uintptr_t>(data) % 8 != 0)
    return error->Report(Status::kMalformedModel, "model: buffer must be 8-byte aligned");
  if (memcmp(data + 4, "TFL3", 4) != 0)
    return error->Report(Status::kMalformedModel, "model: file identifier is not TFL3 (not a .tflite file)");
  model_ = FbTable::Root(data, size);
  if (!model_.valid())
    return error->Report(Status::kMalformedModel, "model: root table is invalid or truncated");
  opcodes_ = model_.Vector(slot::kModelOperatorCodes, 4);
  buffers_ = model_.Vector(slot::kModelBuffers, 4);
  const FbVector subgraphs = model_.Vector(slot::kModelSubgraphs, 4);
  if (!subgraphs.valid() || subgraphs.length() == 0)
    return error->Report(Status::kMalformedModel, "model: no subgraphs");
  const FbTable subgraph = subgraphs.TableAt(0);
  if (!subgraph.valid())
    return error->Report(Status::kMalformedModel, "model: subgraph 0 is invalid");
  tensors_ = subgraph.Vector(slot::kSubgraphTensors, 4);
  operators_ = subgraph.Vector(slot::kSubgraphOperators, 4);
  inputs_ = subgraph.Vector(slot::kSubgraphInputs, 4);
  outputs_ = subgraph.Vector(slot::kSubgraphOutputs, 4);
  if (!tensors_.valid() || !operators_.valid() || !inputs_.valid() ||
      !outputs_.valid())
    return error->Report(Status::kMalformedModel, "model: subgraph 0 lacks tensors, operators, inputs or outputs");
  if (tensors_.length() > 0x7fff || operators_.length() > 0x7fff)
    return error->Report(Status::kMalformedModel, "model: too many tensors (%u) or operators (%u)", tensors_.length(), operators_.length());
  for (uint32_t i = 0; i < inputs_.length(); ++i) {
    const int32_t t = inputs_.Get<int32_t>(i);
    if (t < 0 || t >= num_tensors())
      return error->Report(Status::kMalformedModel, "model: subgraph input %u names tensor %d of %d", i, t, num_tensors());
  }
  for (uint32_t i = 0; i < outputs_.length(); ++i) {
    const int32_t t = outputs_.Get<int32_t>(i);
    if (t < 0 || t >= num_tensors())
      return error->Report(Status::kMalformedModel, "model: subgraph output %u names tensor %d of %d", i, t, num_tensors());
  }
  return Status::kOk;
}

Status Model::ReadTensor(int index, TensorMeta* out) const {
  const FbTable t = tensors_.TableAt(index);
  if (!t.valid())
    return error_->Report(Status::kMalformedModel, "tensor %d: invalid table", index);
  *out = TensorMeta();
  const char* name = t.String(slot::kTensorName);
  out->name = name != nullptr ? name : "";
  const int8_t type = t.Scalar<int8_t>(slot::kTensorType, 0);
  if (!KnownType(type))
    return error_->Report(Status::kMalformedModel, "tensor %d '%s': unsupported type %d", index, out->name, type);
  out->type = static_cast<DataType>(type);
  if (t.Has(slot::kTensorSparsity))
    return error_->Report(Status::kMalformedModel, "tensor %d '%s': sparse tensors are not supported", index, out->name);
  const FbVector shape = t.Vector(slot::kTensorShape, 4);
  if (shape.valid()) {
    if (shape.length() > static_cast<uint32_t>(kMaxRank))
      return error_->Report(Status::kMalformedModel, "tensor %d '%s': rank %u exceeds %d", index, out->name, shape.length(), kMaxRank);
    out->rank = static_cast<int>(shape.length());
    out->dims = reinterpret_cast<const int32_t*>(shape.data());
  }
  int64_t bytes = static_cast<int64_t>(DataTypeSize(out->type));
  for (int d = 0; d < out->rank; ++d) {
    const int32_t dim = out->dims[d];
    // Empty tensors (a zero dimension) stay readable: the converter lists
    // the intermediates of UNIDIRECTIONAL_SEQUENCE_LSTM that way. The
    // interpreter refuses them wherever an operator or the graph uses one.
    if (dim < 0)
      return error_->Report(Status::kMalformedModel, "tensor %d '%s': dimension %d is %d (dynamic shapes are not supported)", index, out->name, d, dim);
    bytes *= dim;
    if (bytes > kMaxTensorBytes)
      return error_->Report(Status::kMalformedModel, "tensor %d '%s': too large", index, out->name);
  }
  out->bytes = static_cast<size_t>(bytes);
  out->is_variable = t.Scalar<uint8_t>(slot::kTensorIsVariable, 0) != 0;

  const uint32_t buffer_index = t.Scalar<uint32_t>(slot::kTensorBuffer, 0);
  if (buffer_index != 0) {
    const FbTable buffer = buffers_.TableAt(buffer_index);
    if (!buffer.valid())
      return error_->Report(Status::kMalformedModel, "tensor %d '%s': buffer %u is missing or invalid", index, out->name, buffer_index);
    if (buffer.Scalar<uint64_t>(slot::kBufferOffset, 0) != 0)
      return error_->Report(Status::kMalformedModel, "tensor %d '%s': buffers stored outside the flatbuffer are not supported", index, out->name);
    const FbVector data = buffer.Vector(slot::kBufferData, 1);
    if (data.valid() && data.length() > 0) {
      if (data.length() != out->bytes)
        return error_->Report(Status::kMalformedModel, "tensor %d '%s': buffer holds %u bytes, shape needs %zu", index, out->name, data.length(), out->bytes);
      const size_t align = DataTypeSize(out->type);
      if (reinterpret_cast<uintptr_t>(data.data()) % align != 0)
        return error_->Report(Status::kMalformedModel, "tensor %d '%s': constant data is not %zu-byte aligned", index, out->name, align);
      out->data = data.data();
      out->data_size = data.length();
    }
  }
  if (out->is_variable && out->data != nullptr)
    return error_->Report(Status::kMalformedModel, "tensor %d '%s': a variable tensor cannot have constant data", index, out->name);
  return Status::kOk;
}

Status Model::ReadQuant(int index, QuantMeta* out) const {
  *out = QuantMeta();
  const FbTable t = tensors_.TableAt(index);
  if (!t.valid())
    return error_->Report(Status::kMalformedModel, "tensor %d: invalid table", index);
  const FbTable q = t.Table(slot::kTensorQuantization);
  if (!q.valid()) return Status::kOk;
  const FbVector scales = q.Vector(slot::kQuantScale, 4);
  const FbVector zero_points = q.Vector(slot::kQuantZeroPoint, 8);
  if (!scales.valid() || scales.length() == 0) return Status::kOk;
  if (!zero_points.valid() || zero_points.length() != scales.length())
    return error_->Report(Status::kMalformedModel, "tensor %d: %u scales but %u zero points", index, scales.length(), zero_points.length());
  out->scales = reinterpret_cast<const float*>(scales.data());
  out->zero_points = zero_points;
  out->count = static_cast<int>(scales.length());
  out->quantized_dimension =
      q.Scalar<int32_t>(slot::kQuantQuantizedDimension, 0);
  for (int i = 0; i < out->count; ++i) {
    if (!IsValidScale(out->scales[i]))
      return error_->Report(Status::kMalformedModel, "tensor %d: scale %d (%g) is not a finite positive normal float", index, i, static_cast<double>(out->scales[i]));
    const int64_t zp = zero_points.Get<int64_t>(i);
    if (zp < -32768 || zp > 65535)
      return error_->Report(Status::kMalformedModel, "tensor %d: zero point %lld out of range", index, static_cast<long long>(zp));
  }
  return Status::kOk;
}

Status Model::ReadOperator(int index, OperatorMeta* out) const {
  const FbTable op = operators_.TableAt(index);
  if (!op.valid())
    return error_->Report(Status::kMalformedModel, "operator %d: invalid table", index);
  *out = OperatorMeta();
  const uint32_t opcode_index = op.Scalar<uint32_t>(slot::kOpOpcodeIndex, 0);
  const FbTable opcode = opcodes_.TableAt(opcode_index);
  if (!opcode.valid())
    return error_->Report(Status::kMalformedModel, "operator %d: operator code %u is missing", index, opcode_index);
  // The effective code is the larger of the deprecated int8 field and the
  // int32 field (TFLite's rule for files from before and after 127 ops).
  const int deprecated_code = opcode.Scalar<int8_t>(slot::kOpcodeDeprecatedBuiltinCode, 0);
  const int code = opcode.Scalar<int32_t>(slot::kOpcodeBuiltinCode, 0);
  out->builtin_code = code > deprecated_code ? code : deprecated_code;
  if (out->builtin_code == kBuiltinCustom) {
    out->custom_name = opcode.String(slot::kOpcodeCustomCode);
    if (out->custom_name == nullptr)
      return error_->Report(Status::kMalformedModel, "operator %d: custom operator without a name", index);
  }
  const FbVector inputs = op.Vector(slot::kOpInputs, 4);
  const FbVector outputs = op.Vector(slot::kOpOutputs, 4);
  if (inputs.valid()) {
    out->inputs = reinterpret_cast<const int32_t*>(inputs.data());
    out->num_inputs = static_cast<int>(inputs.length());
  }
  if (outputs.valid()) {
    out->outputs = reinterpret_cast<const int32_t*>(outputs.data());
    out->num_outputs = static_cast<int>(outputs.length());
  }
  for (int i = 0; i < out->num_inputs; ++i)
    if (out->inputs[i] < -1 || out->inputs[i] >= num_tensors())
      return error_->Report(Status::kMalformedModel, "operator %d: input %d names tensor %d of %d", index, i, out->inputs[i], num_tensors());
  // Absent outputs must be omitted: TFLM's planner cannot handle -1 there,
  // so a model with one would run here and fail on the device.
  for (int i = 0; i < out->num_outputs; ++i)
    if (out->outputs[i] < 0 || out->outputs[i] >= num_tensors())
      return error_->Report(Status::kMalformedModel, "operator %d: output %d names tensor %d of %d", index, i, out->outputs[i], num_tensors());
  if (op.Scalar<uint64_t>(slot::kOpLargeCustomOptionsSize, 0) != 0)
    return error_->Report(Status::kMalformedModel, "operator %d: large custom options are not supported", index);
  const FbVector custom = op.Vector(slot::kOpCustomOptions, 1);
  if (custom.valid()) {
    out->custom_options = custom.data();
    out->custom_options_size = custom.length();
  }
  return ParseBuiltinOptions(index, op, out);
}

Status Model::ParseBuiltinOptions(int index, const FbTable& op,
                                  OperatorMeta* out) const {
  const uint8_t type = op.Scalar<uint8_t>(slot::kOpBuiltinOptionsType, 0);
  const FbTable o = op.Table(slot::kOpBuiltinOptions);
  uint8_t expected = 0;
  switch (out->builtin_code) {
    case kBuiltinConv2D: expected = kConv2DOptions; break;
    case kBuiltinDepthwiseConv2D: expected = kDepthwiseConv2DOptions; break;
    case kBuiltinAveragePool2D:
    case kBuiltinMaxPool2D: expected = kPool2DOptions; break;
    case kBuiltinFullyConnected: expected = kFullyConnectedOptions; break;
    case kBuiltinSoftmax: expected = kSoftmaxOptions; break;
    case kBuiltinAdd: expected = kAddOptions; break;
    case kBuiltinSub: expected = kSubOptions; break;
    case kBuiltinMul: expected = kMulOptions; break;
    case kBuiltinConcatenation: expected = kConcatenationOptions; break;
    case kBuiltinMean: expected = kReducerOptions; break;
    case kBuiltinTranspose: expected = kTransposeOptions; break;
    case kBuiltinSqueeze: expected = kSqueezeOptions; break;
    case kBuiltinStridedSlice: expected = kStridedSliceOptions; break;
    case kBuiltinExpandDims: expected = kExpandDimsOptions; break;
    case kBuiltinResizeNearestNeighbor:
      expected = kResizeNearestNeighborOptions;
      break;
    case kBuiltinLeakyRelu: expected = kLeakyReluOptions; break;
    case kBuiltinUnidirectionalSequenceLstm:
      expected = kUnidirectionalSequenceLSTMOptions;
      break;
    default: return Status::kOk;  // no options the runtime needs
  }
  // Absent options mean all-default fields (valid flatbuffers may omit an
  // empty table); a different union member is a malformed operator.
  if (type != 0 && type != expected)
    return error_->Report(Status::kMalformedModel, "operator %d (%s): builtin options of type %u, expected %u", index, BuiltinName(out->builtin_code), type, expected);
  BuiltinOptionsStorage& s = out->builtin_options;
  switch (expected) {
    case kConv2DOptions:
      s.conv.padding = o.Scalar<int8_t>(0, 0);
      s.conv.stride_w = o.Scalar<int32_t>(1, 0);
      s.conv.stride_h = o.Scalar<int32_t>(2, 0);
      s.conv.activation = o.Scalar<int8_t>(3, 0);
      s.conv.dilation_w = o.Scalar<int32_t>(4, 1);
      s.conv.dilation_h = o.Scalar<int32_t>(5, 1);
      break;
    case kDepthwiseConv2DOptions:
      s.depthwise.padding = o.Scalar<int8_t>(0, 0);
      s.depthwise.stride_w = o.Scalar<int32_t>(1, 0);
      s.depthwise.stride_h = o.Scalar<int32_t>(2, 0);
      s.depthwise.depth_multiplier = o.Scalar<int32_t>(3, 0);
      s.depthwise.activation = o.Scalar<int8_t>(4, 0);
      s.depthwise.dilation_w = o.Scalar<int32_t>(5, 1);
      s.depthwise.dilation_h = o.Scalar<int32_t>(6, 1);
      break;
    case kPool2DOptions:
      s.pool.padding = o.Scalar<int8_t>(0, 0);
      s.pool.stride_w = o.Scalar<int32_t>(1, 0);
      s.pool.stride_h = o.Scalar<int32_t>(2, 0);
      s.pool.filter_w = o.Scalar<int32_t>(3, 0);
      s.pool.filter_h = o.Scalar<int32_t>(4, 0);
      s.pool.activation = o.Scalar<int8_t>(5, 0);
      break;
    case kFullyConnectedOptions:
      s.fully_connected.activation = o.Scalar<int8_t>(0, 0);
      s.fully_connected.weights_format = o.Scalar<int8_t>(1, 0);
      s.fully_connected.keep_num_dims = o.Scalar<uint8_t>(2, 0) != 0;
      break;
    case kSoftmaxOptions:
      s.softmax.beta = o.Scalar<float>(0, 0.0f);
      break;
    case kAddOptions:
      s.add.activation = o.Scalar<int8_t>(0, 0);
      break;
    case kSubOptions:
      s.sub.activation = o.Scalar<int8_t>(0, 0);
      break;
    case kMulOptions:
      s.mul.activation = o.Scalar<int8_t>(0, 0);
      break;
    case kConcatenationOptions:
      s.concatenation.axis = o.Scalar<int32_t>(0, 0);
      s.concatenation.activation = o.Scalar<int8_t>(1, 0);
      break;
    case kReducerOptions:
      s.reducer.keep_dims = o.Scalar<uint8_t>(0, 0) != 0;
      break;
    case kSqueezeOptions: {
      const FbVector dims = o.Vector(0, 4);
      s.squeeze = SqueezeOptions();
      if (dims.length() > 0) {
        s.squeeze.squeeze_dims = reinterpret_cast<const int32_t*>(dims.data());
        s.squeeze.num_squeeze_dims =
            dims.length() > 0x7fff ? 0x7fff : static_cast<int>(dims.length());
      }
      break;
    }
    case kStridedSliceOptions:
      s.strided_slice.begin_mask = o.Scalar<int32_t>(0, 0);
      s.strided_slice.end_mask = o.Scalar<int32_t>(1, 0);
      s.strided_slice.ellipsis_mask = o.Scalar<int32_t>(2, 0);
      s.strided_slice.new_axis_mask = o.Scalar<int32_t>(3, 0);
      s.strided_slice.shrink_axis_mask = o.Scalar<int32_t>(4, 0);
      s.strided_slice.offset = o.Scalar<uint8_t>(5, 0) != 0;
      break;
    case kResizeNearestNeighborOptions:
      s.resize_nearest.align_corners = o.Scalar<uint8_t>(0, 0) != 0;
      s.resize_nearest.half_pixel_centers = o.Scalar<uint8_t>(1, 0) != 0;
      break;
    case kTransposeOptions:
    case kExpandDimsOptions:
      break;  // empty tables
    case kLeakyReluOptions:
      s.leaky_relu.alpha = o.Scalar<float>(0, 0.0f);
      break;
    case kUnidirectionalSequenceLSTMOptions:
      s.sequence_lstm.activation = o.Scalar<int8_t>(0, 0);
      s.sequence_lstm.cell_clip = o.Scalar<float>(1, 0.0f);
      s.sequence_lstm.proj_clip = o.Scalar<float>(2, 0.0f);
      s.sequence_lstm.time_major = o.Scalar<uint8_t>(3, 0) != 0;
      s.sequence_lstm.asymmetric_quantize_inputs = o.Scalar<uint8_t>(4, 0) != 0;
      s.sequence_lstm.diagonal_recurrent_tensors = o.Scalar<uint8_t>(5, 0) != 0;
      break;
  }
  return Status::kOk;
}

const uint8_t* Model::Metadata(const char* name, size_t* size) const {
  const FbVector entries = model_.Vector(slot::kModelMetadata, 4);
  for (uint32_t i = 0; i < entries.length(); ++i) {
    const FbTable entry = entries.TableAt(i);
    const char* entry_name = entry.String(slot::kMetadataName);
    if (entry_name == nullptr || strcmp(entry_name, name) != 0) continue;
    const FbTable buffer =
        buffers_.TableAt(entry.Scalar<uint32_t>(slot::kMetadataBuffer, 0));
    const FbVector data = buffer.Vector(slot::kBufferData, 1);
    if (!data.valid()) return nullptr;
    *size = data.length();
    return data.data();
  }
  return nullptr;
}

}  // namespace tflm_train
