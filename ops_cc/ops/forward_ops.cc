#include "ops_cc/ops/forward_ops.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <new>

#include "ops_cc/core/quantization.h"
#include "ops_cc/kernels/add.h"
#include "ops_cc/kernels/conv.h"
#include "ops_cc/kernels/depthwise_conv.h"
#include "ops_cc/kernels/fully_connected.h"
#include "ops_cc/kernels/mean.h"
#include "ops_cc/kernels/pad.h"
#include "ops_cc/kernels/pooling.h"
#include "ops_cc/kernels/quantize.h"
#include "ops_cc/kernels/softmax.h"
#include "ops_cc/ops/builtin_options.h"

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

namespace {

template <typename T>
void* NewOpData(InitContext& context) {
  void* memory = context.AllocatePersistent(sizeof(T));
  return memory == nullptr ? nullptr : new (memory) T();
}

Status ReadInput(PrepareContext& c, const char* op, int i, TensorDesc* desc) {
  if (!c.HasInput(i)) return c.Fail("%s: input %d is missing", op, i);
  if (c.Input(i, desc) != Status::kOk) {
    return c.Fail("%s: cannot read input %d", op, i);
  }
  return Status::kOk;
}

Status ReadOutput(PrepareContext& c, const char* op, TensorDesc* desc) {
  if (!c.HasOutput(0)) return c.Fail("%s: output 0 is missing", op);
  if (c.Output(0, desc) != Status::kOk) {
    return c.Fail("%s: cannot read output 0", op);
  }
  return Status::kOk;
}

Status CheckArity(PrepareContext& c, const char* op, int min_inputs,
                  int max_inputs) {
  const int n = c.NumInputs();
  if (n < min_inputs || n > max_inputs) {
    if (min_inputs == max_inputs) {
      return c.Fail("%s: expected %d inputs, got %d", op, min_inputs, n);
    }
    return c.Fail("%s: expected %d to %d inputs, got %d", op, min_inputs,
                  max_inputs, n);
  }
  if (c.NumOutputs() != 1) {
    return c.Fail("%s: expected 1 output, got %d", op, c.NumOutputs());
  }
  return Status::kOk;
}


float Scale(const TensorDesc& d) { return d.quant.scales[0]; }
int32_t ZeroPoint(const TensorDesc& d) { return d.quant.zero_points[0]; }

// An int8 tensor quantized per tensor (positive scale, int8 zero point).
Status CheckInt8PerTensor(PrepareContext& c, const char* op, const char* name,
                          const TensorDesc& d) {
  if (d.type != DataType::kInt8) {
    return c.Fail("%s: %s must be int8, got %s", op, name,
                  DataTypeName(d.type));
  }
  if (d.quant.count != 1) {
    return c.Fail("%s: %s must be quantized per tensor, got %d scales", op,
                  name, d.quant.count);
  }
  if (!IsValidScale(Scale(d))) {
    return c.Fail("%s: %s scale must be a finite positive normal float, got %g", op, name,
                  static_cast<double>(Scale(d)));
  }
  if (ZeroPoint(d) < -128 || ZeroPoint(d) > 127) {
    return c.Fail("%s: %s zero point %ld is outside int8", op, name,
                  static_cast<long>(ZeroPoint(d)));
  }
  return Status::kOk;
}

Status CheckRank(PrepareContext& c, const char* op, const char* name,
                 const TensorDesc& d, int rank) {
  if (d.shape.rank != rank) {
    return c.Fail("%s: %s must have rank %d, got %d", op, name, rank,
                  d.shape.rank);
  }
  return Status::kOk;
}

// Symmetric int8 weights with one scale, or one per channel along
// `dimension`.
Status CheckWeights(PrepareContext& c, const char* op, const TensorDesc& d,
                    int channels, int dimension) {
  if (d.type != DataType::kInt8) {
    return c.Fail("%s: filter must be int8, got %s", op, DataTypeName(d.type));
  }
  const QuantParams& q = d.quant;
  if (q.count != 1 &&
      (q.count != channels || q.quantized_dimension != dimension)) {
    return c.Fail(
        "%s: filter needs 1 scale or %d along dimension %d, got %d along %d",
        op, channels, dimension, q.count, q.quantized_dimension);
  }
  for (int i = 0; i < q.count; ++i) {
    if (!IsValidScale(q.scales[i])) {
      return c.Fail("%s: filter scale %d must be a finite positive normal float, got %g",
                    op, i, static_cast<double>(q.scales[i]));
    }
    if (q.zero_points[i] != 0) {
      return c.Fail("%s: filter zero point %d must be 0, got %ld", op, i,
                    static_cast<long>(q.zero_points[i]));
    }
  }
  return Status::kOk;
}

// Reads the optional int32 bias (input 2) into `desc`; *present tells
// whether there is one.
Status ReadBias(PrepareContext& c, const char* op, int channels,
                bool* present) {
  *present = c.NumInputs() > 2 && c.HasInput(2);
  if (!*present) return Status::kOk;
  TensorDesc bias;
  TT_RETURN_IF_ERROR(ReadInput(c, op, 2, &bias));
  if (bias.type != DataType::kInt32) {
    return c.Fail("%s: bias must be int32, got %s", op,
                  DataTypeName(bias.type));
  }
  if (bias.shape.FlatSize() != channels) {
    return c.Fail("%s: bias has %ld elements, expected %d", op,
                  static_cast<long>(bias.shape.FlatSize()), channels);
  }
  return Status::kOk;
}

Status ActivationRange(PrepareContext& c, const char* op, int activation,
                       const TensorDesc& output, int32_t* act_min,
                       int32_t* act_max) {
  if (!CalculateActivationRangeInt8(activation, Scale(output),
                                    ZeroPoint(output), act_min, act_max)) {
    return c.Fail("%s: unsupported fused activation %d for this output", op,
                  activation);
  }
  return Status::kOk;
}

// Output height/width from the window options; checks them against the
// output tensor and returns the leading padding.
Status WindowPadding(PrepareContext& c, const char* op, int padding,
                     int stride_h, int stride_w, int dilation_h, int dilation_w,
                     int filter_h, int filter_w, const Shape& input,
                     const Shape& output, int* pad_h, int* pad_w) {
  int out_h = 0, out_w = 0;
  if (!ComputeWindowGeometry(padding, input.dims[1], filter_h, stride_h,
                             dilation_h, &out_h, pad_h) ||
      !ComputeWindowGeometry(padding, input.dims[2], filter_w, stride_w,
                             dilation_w, &out_w, pad_w)) {
    return c.Fail(
        "%s: invalid window (padding %d, stride %dx%d, dilation %dx%d, "
        "filter %dx%d)",
        op, padding, stride_h, stride_w, dilation_h, dilation_w, filter_h,
        filter_w);
  }
  if (output.dims[1] != out_h || output.dims[2] != out_w) {
    return c.Fail("%s: output is %dx%d, the window gives %dx%d", op,
                  static_cast<int>(output.dims[1]),
                  static_cast<int>(output.dims[2]), out_h, out_w);
  }
  if (output.dims[0] != input.dims[0]) {
    return c.Fail("%s: output batch %d differs from input batch %d", op,
                  static_cast<int>(output.dims[0]),
                  static_cast<int>(input.dims[0]));
  }
  return Status::kOk;
}

// Per-channel requantization. The multipliers and shifts are formed in
// scratch at every Eval from the scales, which stay in the model
// (kernel_context.h), instead of being kept per channel in persistent memory
// (docs/architecture.md, "The standalone runtime").
struct ChannelRequant {
  float input_scale = 0.0f;
  float output_scale = 0.0f;
  const float* filter_scales = nullptr;
  int num_filter_scales = 0;  // 1 (broadcast) or `channels`
  int channels = 0;
  int scratch = -1;  // multipliers [channels], then shifts [channels]
};

Status PrepareChannelRequant(PrepareContext& c, const char* op,
                             const TensorDesc& input, const TensorDesc& filter,
                             const TensorDesc& output, int channels,
                             ChannelRequant* r) {
  // Eval's computation, per distinct scale, so that a scale out of range
  // fails here.
  for (int k = 0; k < filter.quant.count; ++k) {
    int32_t multiplier = 0, shift = 0;
    if (!ComputePerChannelMultipliers(Scale(input), filter.quant.scales + k, 1,
                                      Scale(output), 1, &multiplier, &shift)) {
      return c.Fail("%s: input * filter / output scale is out of range", op);
    }
  }
  r->input_scale = Scale(input);
  r->output_scale = Scale(output);
  r->filter_scales = filter.quant.scales;
  r->num_filter_scales = filter.quant.count;
  r->channels = channels;
  return c.RequestScratch(2 * sizeof(int32_t) * static_cast<size_t>(channels),
                          &r->scratch);
}

// Returns the multipliers; the shifts follow them.
const int32_t* ComputeChannelRequant(EvalContext& c, const ChannelRequant& r) {
  auto* multipliers = static_cast<int32_t*>(c.Scratch(r.scratch));
  ComputePerChannelMultipliers(r.input_scale, r.filter_scales,
                               r.num_filter_scales, r.output_scale, r.channels,
                               multipliers, multipliers + r.channels);
  return multipliers;
}

Status RequireOpData(PrepareContext& c, const char* op) {
  return c.OpData() != nullptr ? Status::kOk
                               : c.Fail("%s: op data was not allocated", op);
}

// ---- CONV_2D and DEPTHWISE_CONV_2D ---------------------------------------

struct ConvOpData {
  ConvParams params;
  ChannelRequant requant;
  bool has_bias = false;
};

struct WindowOptions {
  int padding, stride_h, stride_w, dilation_h, dilation_w, activation;
};

// depth_multiplier > 0 selects DEPTHWISE_CONV_2D.
Status PrepareConvLike(PrepareContext& c, const char* op,
                       const WindowOptions& o, int depth_multiplier) {
  TT_RETURN_IF_ERROR(RequireOpData(c, op));
  TT_RETURN_IF_ERROR(CheckArity(c, op, 2, 3));
  TensorDesc input, filter, output;
  TT_RETURN_IF_ERROR(ReadInput(c, op, 0, &input));
  TT_RETURN_IF_ERROR(ReadInput(c, op, 1, &filter));
  TT_RETURN_IF_ERROR(ReadOutput(c, op, &output));
  TT_RETURN_IF_ERROR(CheckInt8PerTensor(c, op, "input", input));
  TT_RETURN_IF_ERROR(CheckInt8PerTensor(c, op, "output", output));
  TT_RETURN_IF_ERROR(CheckRank(c, op, "input", input, 4));
  TT_RETURN_IF_ERROR(CheckRank(c, op, "filter", filter, 4));
  TT_RETURN_IF_ERROR(CheckRank(c, op, "output", output, 4));
  const int in_c = input.shape.dims[3];
  const int out_c = output.shape.dims[3];
  const bool depthwise = depth_multiplier > 0;
  if (depthwise) {
    if (filter.shape.dims[0] != 1 || filter.shape.dims[3] != out_c) {
      return c.Fail("%s: filter must be [1, KH, KW, %d], got dims %d and %d",
                    op, out_c, static_cast<int>(filter.shape.dims[0]),
                    static_cast<int>(filter.shape.dims[3]));
    }
    if (static_cast<int64_t>(in_c) * depth_multiplier != out_c) {
      return c.Fail(
          "%s: %d output channels != %d input channels x depth "
          "multiplier %d",
          op, out_c, in_c, depth_multiplier);
    }
  } else {
    const int filter_c = filter.shape.dims[3];
    if (filter.shape.dims[0] != out_c) {
      return c.Fail("%s: filter has %d output channels, output has %d", op,
                    static_cast<int>(filter.shape.dims[0]), out_c);
    }
    if (filter_c <= 0 || in_c % filter_c != 0 ||
        out_c % (in_c / filter_c) != 0) {
      return c.Fail(
          "%s: filter depth %d does not group %d input into %d "
          "output channels",
          op, filter_c, in_c, out_c);
    }
  }
  TT_RETURN_IF_ERROR(CheckWeights(c, op, filter, out_c, depthwise ? 3 : 0));
  auto* data = static_cast<ConvOpData*>(c.OpData());
  TT_RETURN_IF_ERROR(ReadBias(c, op, out_c, &data->has_bias));

  ConvParams& p = data->params;
  p.stride_h = o.stride_h;
  p.stride_w = o.stride_w;
  p.dilation_h = o.dilation_h;
  p.dilation_w = o.dilation_w;
  TT_RETURN_IF_ERROR(
      WindowPadding(c, op, o.padding, o.stride_h, o.stride_w, o.dilation_h,
                    o.dilation_w, filter.shape.dims[1], filter.shape.dims[2],
                    input.shape, output.shape, &p.pad_h, &p.pad_w));
  p.input_offset = -ZeroPoint(input);
  p.output_offset = ZeroPoint(output);
  TT_RETURN_IF_ERROR(
      ActivationRange(c, op, o.activation, output, &p.act_min, &p.act_max));
  return PrepareChannelRequant(c, op, input, filter, output, out_c,
                               &data->requant);
}

Status ConvPrepare(PrepareContext& c) {
  const auto* o = static_cast<const ConvOptions*>(c.BuiltinOptions());
  if (o == nullptr) return c.Fail("CONV_2D: missing builtin options");
  const WindowOptions w = {o->padding,    o->stride_h,   o->stride_w,
                           o->dilation_h, o->dilation_w, o->activation};
  return PrepareConvLike(c, "CONV_2D", w, 0);
}

Status ConvEval(EvalContext& c) {
  const auto* d = static_cast<const ConvOpData*>(c.OpData());
  const int32_t* multipliers = ComputeChannelRequant(c, d->requant);
  ref::ConvPerChannel(d->params, multipliers,
                      multipliers + d->requant.channels, c.InputShape(0),
                      c.Input<const int8_t>(0), c.InputShape(1),
                      c.Input<const int8_t>(1),
                      d->has_bias ? c.Input<const int32_t>(2) : nullptr,
                      c.OutputShape(0), c.Output<int8_t>(0));
  return Status::kOk;
}

Status DepthwiseConvPrepare(PrepareContext& c) {
  const char* op = "DEPTHWISE_CONV_2D";
  const auto* o = static_cast<const DepthwiseConvOptions*>(c.BuiltinOptions());
  if (o == nullptr) return c.Fail("%s: missing builtin options", op);
  if (o->depth_multiplier <= 0) {
    return c.Fail("%s: depth multiplier must be positive, got %d", op,
                  o->depth_multiplier);
  }
  const WindowOptions w = {o->padding,    o->stride_h,   o->stride_w,
                           o->dilation_h, o->dilation_w, o->activation};
  return PrepareConvLike(c, op, w, o->depth_multiplier);
}

Status DepthwiseConvEval(EvalContext& c) {
  const auto* d = static_cast<const ConvOpData*>(c.OpData());
  const int32_t* multipliers = ComputeChannelRequant(c, d->requant);
  ref::DepthwiseConvPerChannel(
      d->params, multipliers, multipliers + d->requant.channels,
      c.InputShape(0), c.Input<const int8_t>(0), c.InputShape(1),
      c.Input<const int8_t>(1),
      d->has_bias ? c.Input<const int32_t>(2) : nullptr, c.OutputShape(0),
      c.Output<int8_t>(0));
  return Status::kOk;
}

// ---- FULLY_CONNECTED -----------------------------------------------------

struct FullyConnectedOpData {
  FullyConnectedParams params;
  ChannelRequant requant;  // per-channel weights
  int32_t multiplier = 0;  // per-tensor weights
  int32_t shift = 0;
  bool has_bias = false;
};

Status FullyConnectedPrepare(PrepareContext& c) {
  const char* op = "FULLY_CONNECTED";
  TT_RETURN_IF_ERROR(RequireOpData(c, op));
  const auto* o = static_cast<const FullyConnectedOptions*>(c.BuiltinOptions());
  if (o == nullptr) return c.Fail("%s: missing builtin options", op);
  if (o->weights_format != 0) {
    return c.Fail("%s: weights format %d is not supported", op,
                  o->weights_format);
  }
  TT_RETURN_IF_ERROR(CheckArity(c, op, 2, 3));
  TensorDesc input, filter, output;
  TT_RETURN_IF_ERROR(ReadInput(c, op, 0, &input));
  TT_RETURN_IF_ERROR(ReadInput(c, op, 1, &filter));
  TT_RETURN_IF_ERROR(ReadOutput(c, op, &output));
  TT_RETURN_IF_ERROR(CheckInt8PerTensor(c, op, "input", input));
  TT_RETURN_IF_ERROR(CheckInt8PerTensor(c, op, "output", output));
  TT_RETURN_IF_ERROR(CheckRank(c, op, "filter", filter, 2));
  if (output.shape.rank < 1)
    return c.Fail("%s: output must not be a scalar", op);
  const int units = filter.shape.dims[0];
  const int depth = filter.shape.dims[1];
  if (output.shape.Last() != units) {
    return c.Fail("%s: output has %d units, filter has %d", op,
                  static_cast<int>(output.shape.Last()), units);
  }
  const int64_t rows = output.shape.FlatSizeSkipLast();
  if (input.shape.FlatSize() != rows * depth) {
    return c.Fail("%s: input has %ld elements, expected %ld rows x %d", op,
                  static_cast<long>(input.shape.FlatSize()),
                  static_cast<long>(rows), depth);
  }
  TT_RETURN_IF_ERROR(CheckWeights(c, op, filter, units, 0));
  auto* data = static_cast<FullyConnectedOpData*>(c.OpData());
  TT_RETURN_IF_ERROR(ReadBias(c, op, units, &data->has_bias));

  FullyConnectedParams& p = data->params;
  p.input_offset = -ZeroPoint(input);
  p.output_offset = ZeroPoint(output);
  p.per_channel = filter.quant.count > 1;
  TT_RETURN_IF_ERROR(
      ActivationRange(c, op, o->activation, output, &p.act_min, &p.act_max));
  if (p.per_channel) {
    return PrepareChannelRequant(c, op, input, filter, output, units,
                                 &data->requant);
  }
  if (!ComputeFullyConnectedMultiplier(Scale(input), Scale(filter),
                                       Scale(output), &data->multiplier,
                                       &data->shift)) {
    return c.Fail("%s: input * filter / output scale is out of range", op);
  }
  return Status::kOk;
}

Status FullyConnectedEval(EvalContext& c) {
  const auto* d = static_cast<const FullyConnectedOpData*>(c.OpData());
  const int32_t* multipliers = &d->multiplier;
  const int32_t* shifts = &d->shift;
  if (d->params.per_channel) {
    multipliers = ComputeChannelRequant(c, d->requant);
    shifts = multipliers + d->requant.channels;
  }
  ref::FullyConnected(d->params, multipliers, shifts,
                      c.Input<const int8_t>(0), c.InputShape(1),
                      c.Input<const int8_t>(1),
                      d->has_bias ? c.Input<const int32_t>(2) : nullptr,
                      c.OutputShape(0), c.Output<int8_t>(0));
  return Status::kOk;
}

// ---- ADD -----------------------------------------------------------------

Status AddPrepare(PrepareContext& c) {
  const char* op = "ADD";
  TT_RETURN_IF_ERROR(RequireOpData(c, op));
  const auto* o = static_cast<const AddOptions*>(c.BuiltinOptions());
  if (o == nullptr) return c.Fail("%s: missing builtin options", op);
  TT_RETURN_IF_ERROR(CheckArity(c, op, 2, 2));
  TensorDesc a, b, output;
  TT_RETURN_IF_ERROR(ReadInput(c, op, 0, &a));
  TT_RETURN_IF_ERROR(ReadInput(c, op, 1, &b));
  TT_RETURN_IF_ERROR(ReadOutput(c, op, &output));
  TT_RETURN_IF_ERROR(CheckInt8PerTensor(c, op, "input 0", a));
  TT_RETURN_IF_ERROR(CheckInt8PerTensor(c, op, "input 1", b));
  TT_RETURN_IF_ERROR(CheckInt8PerTensor(c, op, "output", output));
  if (!AddShapesBroadcast(a.shape, b.shape, output.shape)) {
    return c.Fail(
        "%s: input shapes (rank %d, %d) do not broadcast to the "
        "output shape (rank %d)",
        op, a.shape.rank, b.shape.rank, output.shape.rank);
  }
  auto* p = static_cast<AddParams*>(c.OpData());
  if (!ComputeAddParams(Scale(a), ZeroPoint(a), Scale(b), ZeroPoint(b),
                        Scale(output), ZeroPoint(output), p)) {
    return c.Fail("%s: output scale %g is too small for the input scales", op,
                  static_cast<double>(Scale(output)));
  }
  return ActivationRange(c, op, o->activation, output, &p->act_min,
                         &p->act_max);
}

Status AddEval(EvalContext& c) {
  ref::Add(*static_cast<const AddParams*>(c.OpData()), c.InputShape(0),
           c.Input<const int8_t>(0), c.InputShape(1), c.Input<const int8_t>(1),
           c.OutputShape(0), c.Output<int8_t>(0));
  return Status::kOk;
}

// ---- AVERAGE_POOL_2D and MAX_POOL_2D -------------------------------------

Status PreparePool(PrepareContext& c, const char* op) {
  TT_RETURN_IF_ERROR(RequireOpData(c, op));
  const auto* o = static_cast<const PoolOptions*>(c.BuiltinOptions());
  if (o == nullptr) return c.Fail("%s: missing builtin options", op);
  TT_RETURN_IF_ERROR(CheckArity(c, op, 1, 1));
  TensorDesc input, output;
  TT_RETURN_IF_ERROR(ReadInput(c, op, 0, &input));
  TT_RETURN_IF_ERROR(ReadOutput(c, op, &output));
  TT_RETURN_IF_ERROR(CheckInt8PerTensor(c, op, "input", input));
  TT_RETURN_IF_ERROR(CheckInt8PerTensor(c, op, "output", output));
  TT_RETURN_IF_ERROR(CheckRank(c, op, "input", input, 4));
  TT_RETURN_IF_ERROR(CheckRank(c, op, "output", output, 4));
  // TFLM's tolerance for "the same" scale.
  if (std::fabs(static_cast<double>(Scale(input) - Scale(output))) > 1.0e-6 ||
      ZeroPoint(input) != ZeroPoint(output)) {
    return c.Fail("%s: input and output quantization must match", op);
  }
  if (input.shape.dims[3] != output.shape.dims[3]) {
    return c.Fail("%s: input has %d channels, output %d", op,
                  static_cast<int>(input.shape.dims[3]),
                  static_cast<int>(output.shape.dims[3]));
  }
  auto* p = static_cast<PoolParams*>(c.OpData());
  p->stride_h = o->stride_h;
  p->stride_w = o->stride_w;
  p->filter_h = o->filter_h;
  p->filter_w = o->filter_w;
  TT_RETURN_IF_ERROR(WindowPadding(c, op, o->padding, o->stride_h, o->stride_w,
                                   1, 1, o->filter_h, o->filter_w, input.shape,
                                   output.shape, &p->pad_h, &p->pad_w));
  return ActivationRange(c, op, o->activation, output, &p->act_min,
                         &p->act_max);
}

Status AveragePoolPrepare(PrepareContext& c) {
  return PreparePool(c, "AVERAGE_POOL_2D");
}

Status AveragePoolEval(EvalContext& c) {
  if (!ref::AveragePool(*static_cast<const PoolParams*>(c.OpData()),
                        c.InputShape(0), c.Input<const int8_t>(0),
                        c.OutputShape(0), c.Output<int8_t>(0))) {
    return c.Fail("AVERAGE_POOL_2D: a window lies entirely in the padding");
  }
  return Status::kOk;
}

Status MaxPoolPrepare(PrepareContext& c) {
  return PreparePool(c, "MAX_POOL_2D");
}

Status MaxPoolEval(EvalContext& c) {
  ref::MaxPool(*static_cast<const PoolParams*>(c.OpData()), c.InputShape(0),
               c.Input<const int8_t>(0), c.OutputShape(0), c.Output<int8_t>(0));
  return Status::kOk;
}

// ---- MEAN ----------------------------------------------------------------

Status MeanPrepare(PrepareContext& c) {
  const char* op = "MEAN";
  TT_RETURN_IF_ERROR(RequireOpData(c, op));
  const auto* o = static_cast<const ReducerOptions*>(c.BuiltinOptions());
  if (o == nullptr) return c.Fail("%s: missing builtin options", op);
  TT_RETURN_IF_ERROR(CheckArity(c, op, 2, 2));
  TensorDesc input, axes, output;
  TT_RETURN_IF_ERROR(ReadInput(c, op, 0, &input));
  TT_RETURN_IF_ERROR(ReadInput(c, op, 1, &axes));
  TT_RETURN_IF_ERROR(ReadOutput(c, op, &output));
  TT_RETURN_IF_ERROR(CheckInt8PerTensor(c, op, "input", input));
  TT_RETURN_IF_ERROR(CheckInt8PerTensor(c, op, "output", output));
  TT_RETURN_IF_ERROR(CheckRank(c, op, "input", input, 4));
  const auto* axis_data = static_cast<const int32_t*>(c.ConstantInputData(1));
  if (axes.type != DataType::kInt32 || axis_data == nullptr) {
    return c.Fail("%s: axes must be a constant int32 tensor", op);
  }
  // Only the spatial mean (axes {1, 2} in any order, negative allowed).
  bool seen[4] = {false, false, false, false};
  const int64_t num_axes = axes.shape.FlatSize();
  for (int64_t i = 0; i < num_axes; ++i) {
    const int32_t axis = axis_data[i] < 0 ? axis_data[i] + 4 : axis_data[i];
    if (axis < 0 || axis > 3) {
      return c.Fail("%s: axis %ld is out of range for rank 4", op,
                    static_cast<long>(axis_data[i]));
    }
    seen[axis] = true;
  }
  if (seen[0] || !seen[1] || !seen[2] || seen[3]) {
    return c.Fail("%s: only the mean over axes {1, 2} is supported", op);
  }
  const Shape& in = input.shape;
  const Shape& out = output.shape;
  const bool shape_ok =
      o->keep_dims
          ? (out.rank == 4 && out.dims[0] == in.dims[0] && out.dims[1] == 1 &&
             out.dims[2] == 1 && out.dims[3] == in.dims[3])
          : (out.rank == 2 && out.dims[0] == in.dims[0] &&
             out.dims[1] == in.dims[3]);
  if (!shape_ok) {
    return c.Fail("%s: output shape does not match [N, %sC] of the input", op,
                  o->keep_dims ? "1, 1, " : "");
  }
  auto* p = static_cast<MeanParams*>(c.OpData());
  p->input_zero_point = ZeroPoint(input);
  p->output_zero_point = ZeroPoint(output);
  QuantizeMultiplier(
      static_cast<double>(Scale(input)) / static_cast<double>(Scale(output)),
      &p->multiplier, &p->shift);
  if (p->shift > 31) {
    return c.Fail("%s: input / output scale ratio is too large", op);
  }
  return Status::kOk;
}

Status MeanEval(EvalContext& c) {
  ref::MeanOverHeightWidth(*static_cast<const MeanParams*>(c.OpData()),
                           c.InputShape(0), c.Input<const int8_t>(0),
                           c.Output<int8_t>(0));
  return Status::kOk;
}

// ---- PAD -----------------------------------------------------------------

struct PadOpData {
  PadParams params;
  int8_t pad_value = 0;
  bool has_constant_values = false;  // pad with input 2 (PADV2-style)
};

Status PadPrepare(PrepareContext& c) {
  const char* op = "PAD";
  TT_RETURN_IF_ERROR(RequireOpData(c, op));
  TT_RETURN_IF_ERROR(CheckArity(c, op, 2, 3));
  TensorDesc input, paddings, output;
  TT_RETURN_IF_ERROR(ReadInput(c, op, 0, &input));
  TT_RETURN_IF_ERROR(ReadInput(c, op, 1, &paddings));
  TT_RETURN_IF_ERROR(ReadOutput(c, op, &output));
  if (input.type != DataType::kInt8 || output.type != DataType::kInt8) {
    return c.Fail("%s: input and output must be int8, got %s and %s", op,
                  DataTypeName(input.type), DataTypeName(output.type));
  }
  TT_RETURN_IF_ERROR(CheckInt8PerTensor(c, op, "output", output));
  const int rank = input.shape.rank;
  if (output.shape.rank != rank) {
    return c.Fail("%s: output rank %d differs from input rank %d", op,
                  output.shape.rank, rank);
  }
  const auto* pad_data = static_cast<const int32_t*>(c.ConstantInputData(1));
  if (paddings.type != DataType::kInt32 || pad_data == nullptr) {
    return c.Fail("%s: paddings must be a constant int32 tensor", op);
  }
  if (paddings.shape.FlatSize() != 2 * rank) {
    return c.Fail("%s: paddings has %ld elements, expected %d", op,
                  static_cast<long>(paddings.shape.FlatSize()), 2 * rank);
  }
  auto* data = static_cast<PadOpData*>(c.OpData());
  for (int d = 0; d < rank; ++d) {
    const int32_t before = pad_data[2 * d];
    const int32_t after = pad_data[2 * d + 1];
    if (before < 0 || after < 0) {
      return c.Fail("%s: negative padding in dimension %d", op, d);
    }
    if (static_cast<int64_t>(input.shape.dims[d]) + before + after !=
        output.shape.dims[d]) {
      return c.Fail(
          "%s: output dimension %d is %d, expected %ld", op, d,
          static_cast<int>(output.shape.dims[d]),
          static_cast<long>(static_cast<int64_t>(input.shape.dims[d]) + before +
                            after));
    }
    data->params.before[d] = before;
    data->params.after[d] = after;
  }
  data->pad_value = static_cast<int8_t>(ZeroPoint(output));
  data->has_constant_values = c.NumInputs() > 2 && c.HasInput(2);
  if (data->has_constant_values) {
    TensorDesc value;
    TT_RETURN_IF_ERROR(ReadInput(c, op, 2, &value));
    TT_RETURN_IF_ERROR(CheckInt8PerTensor(c, op, "constant value", value));
    if (value.shape.FlatSize() != 1) {
      return c.Fail("%s: constant value must have one element", op);
    }
    if (ZeroPoint(value) != ZeroPoint(output) ||
        Scale(value) != Scale(output)) {
      return c.Fail("%s: constant value must be quantized like the output", op);
    }
  }
  return Status::kOk;
}

Status PadEval(EvalContext& c) {
  const auto* d = static_cast<const PadOpData*>(c.OpData());
  const int8_t value =
      d->has_constant_values ? *c.Input<const int8_t>(2) : d->pad_value;
  ref::Pad(d->params, c.InputShape(0), c.Input<const int8_t>(0), value,
           c.OutputShape(0), c.Output<int8_t>(0));
  return Status::kOk;
}

// ---- RESHAPE -------------------------------------------------------------

struct ReshapeOpData {
  size_t bytes = 0;
};

Status ReshapePrepare(PrepareContext& c) {
  const char* op = "RESHAPE";
  TT_RETURN_IF_ERROR(RequireOpData(c, op));
  TT_RETURN_IF_ERROR(CheckArity(c, op, 1, 2));
  TensorDesc input, output;
  TT_RETURN_IF_ERROR(ReadInput(c, op, 0, &input));
  TT_RETURN_IF_ERROR(ReadOutput(c, op, &output));
  if (input.type != output.type) {
    return c.Fail("%s: input is %s, output %s", op, DataTypeName(input.type),
                  DataTypeName(output.type));
  }
  if (input.shape.FlatSize() != output.shape.FlatSize()) {
    return c.Fail("%s: input has %ld elements, output %ld", op,
                  static_cast<long>(input.shape.FlatSize()),
                  static_cast<long>(output.shape.FlatSize()));
  }
  static_cast<ReshapeOpData*>(c.OpData())->bytes =
      static_cast<size_t>(input.shape.FlatSize()) * DataTypeSize(input.type);
  return Status::kOk;
}

Status ReshapeEval(EvalContext& c) {
  const void* in = c.InputData(0);
  void* out = c.OutputData(0);
  if (in != out) {
    std::memcpy(out, in, static_cast<const ReshapeOpData*>(c.OpData())->bytes);
  }
  return Status::kOk;
}

// ---- SOFTMAX -------------------------------------------------------------

Status SoftmaxPrepare(PrepareContext& c) {
  const char* op = "SOFTMAX";
  TT_RETURN_IF_ERROR(RequireOpData(c, op));
  const auto* o = static_cast<const SoftmaxOptions*>(c.BuiltinOptions());
  if (o == nullptr) return c.Fail("%s: missing builtin options", op);
  TT_RETURN_IF_ERROR(CheckArity(c, op, 1, 1));
  TensorDesc input, output;
  TT_RETURN_IF_ERROR(ReadInput(c, op, 0, &input));
  TT_RETURN_IF_ERROR(ReadOutput(c, op, &output));
  TT_RETURN_IF_ERROR(CheckInt8PerTensor(c, op, "input", input));
  TT_RETURN_IF_ERROR(CheckInt8PerTensor(c, op, "output", output));
  if (input.shape.rank < 1 || input.shape != output.shape) {
    return c.Fail("%s: input and output must have the same non-scalar shape",
                  op);
  }
  if (ZeroPoint(output) != -128 || Scale(output) != 1.0f / 256) {
    return c.Fail(
        "%s: output must have scale 1/256 and zero point -128, got "
        "%g and %ld",
        op, static_cast<double>(Scale(output)),
        static_cast<long>(ZeroPoint(output)));
  }
  if (!ComputeSoftmaxParams(o->beta, Scale(input),
                            static_cast<SoftmaxParams*>(c.OpData()))) {
    return c.Fail("%s: beta %g x input scale %g is out of range", op,
                  static_cast<double>(o->beta),
                  static_cast<double>(Scale(input)));
  }
  return Status::kOk;
}

Status SoftmaxEval(EvalContext& c) {
  if (!ref::Softmax(*static_cast<const SoftmaxParams*>(c.OpData()),
                    c.InputShape(0), c.Input<const int8_t>(0),
                    c.Output<int8_t>(0))) {
    return c.Fail("SOFTMAX: sum of exponentials is too large for int8 output");
  }
  return Status::kOk;
}

// ---- QUANTIZE and DEQUANTIZE ---------------------------------------------

struct QuantizeOpData {
  bool from_float = false;  // float32 input, else int8 (requantize)
  float scale = 0.0f;       // output scale
  int32_t zero_point = 0;   // output zero point
  RequantizeParams requantize;
};

Status QuantizePrepare(PrepareContext& c) {
  const char* op = "QUANTIZE";
  TT_RETURN_IF_ERROR(RequireOpData(c, op));
  TT_RETURN_IF_ERROR(CheckArity(c, op, 1, 1));
  TensorDesc input, output;
  TT_RETURN_IF_ERROR(ReadInput(c, op, 0, &input));
  TT_RETURN_IF_ERROR(ReadOutput(c, op, &output));
  TT_RETURN_IF_ERROR(CheckInt8PerTensor(c, op, "output", output));
  if (input.shape.FlatSize() != output.shape.FlatSize()) {
    return c.Fail("%s: input has %ld elements, output %ld", op,
                  static_cast<long>(input.shape.FlatSize()),
                  static_cast<long>(output.shape.FlatSize()));
  }
  auto* d = static_cast<QuantizeOpData*>(c.OpData());
  d->from_float = input.type == DataType::kFloat32;
  d->scale = Scale(output);
  d->zero_point = ZeroPoint(output);
  if (d->from_float) return Status::kOk;
  if (input.type != DataType::kInt8) {
    return c.Fail("%s: input must be float32 or int8, got %s", op,
                  DataTypeName(input.type));
  }
  TT_RETURN_IF_ERROR(CheckInt8PerTensor(c, op, "input", input));
  RequantizeParams& r = d->requantize;
  r.input_zero_point = ZeroPoint(input);
  r.output_zero_point = ZeroPoint(output);
  QuantizeMultiplier(
      static_cast<double>(Scale(input)) / static_cast<double>(Scale(output)),
      &r.multiplier, &r.shift);
  if (r.shift > 31) {
    return c.Fail("%s: input / output scale ratio is too large", op);
  }
  return Status::kOk;
}

Status QuantizeEval(EvalContext& c) {
  const auto* d = static_cast<const QuantizeOpData*>(c.OpData());
  const int size = static_cast<int>(c.InputShape(0).FlatSize());
  if (d->from_float) {
    ref::Quantize(c.Input<const float>(0), size, d->scale, d->zero_point,
                  c.Output<int8_t>(0));
  } else {
    ref::Requantize(d->requantize, c.Input<const int8_t>(0), size,
                    c.Output<int8_t>(0));
  }
  return Status::kOk;
}

struct DequantizeOpData {
  float scale = 0.0f;
  int32_t zero_point = 0;
};

Status DequantizePrepare(PrepareContext& c) {
  const char* op = "DEQUANTIZE";
  TT_RETURN_IF_ERROR(RequireOpData(c, op));
  TT_RETURN_IF_ERROR(CheckArity(c, op, 1, 1));
  TensorDesc input, output;
  TT_RETURN_IF_ERROR(ReadInput(c, op, 0, &input));
  TT_RETURN_IF_ERROR(ReadOutput(c, op, &output));
  TT_RETURN_IF_ERROR(CheckInt8PerTensor(c, op, "input", input));
  if (output.type != DataType::kFloat32) {
    return c.Fail("%s: output must be float32, got %s", op,
                  DataTypeName(output.type));
  }
  if (input.shape.FlatSize() != output.shape.FlatSize()) {
    return c.Fail("%s: input has %ld elements, output %ld", op,
                  static_cast<long>(input.shape.FlatSize()),
                  static_cast<long>(output.shape.FlatSize()));
  }
  auto* d = static_cast<DequantizeOpData*>(c.OpData());
  d->scale = Scale(input);
  d->zero_point = ZeroPoint(input);
  return Status::kOk;
}

Status DequantizeEval(EvalContext& c) {
  const auto* d = static_cast<const DequantizeOpData*>(c.OpData());
  ref::Dequantize(c.Input<const int8_t>(0),
                  static_cast<int>(c.InputShape(0).FlatSize()), d->scale,
                  d->zero_point, c.Output<float>(0));
  return Status::kOk;
}

const OpKernel kConv2D = {kBuiltinConv2D, nullptr,   &NewOpData<ConvOpData>,
                          &ConvPrepare,   &ConvEval, nullptr};
const OpKernel kDepthwiseConv2D = {
    kBuiltinDepthwiseConv2D, nullptr,
    &NewOpData<ConvOpData>,  &DepthwiseConvPrepare,
    &DepthwiseConvEval,      nullptr};
const OpKernel kFullyConnected = {kBuiltinFullyConnected,
                                  nullptr,
                                  &NewOpData<FullyConnectedOpData>,
                                  &FullyConnectedPrepare,
                                  &FullyConnectedEval,
                                  nullptr};
const OpKernel kAdd = {kBuiltinAdd, nullptr,  &NewOpData<AddParams>,
                       &AddPrepare, &AddEval, nullptr};
const OpKernel kAveragePool2D = {kBuiltinAveragePool2D,  nullptr,
                                 &NewOpData<PoolParams>, &AveragePoolPrepare,
                                 &AveragePoolEval,       nullptr};
const OpKernel kMaxPool2D = {kBuiltinMaxPool2D,      nullptr,
                             &NewOpData<PoolParams>, &MaxPoolPrepare,
                             &MaxPoolEval,           nullptr};
const OpKernel kMean = {kBuiltinMean, nullptr,   &NewOpData<MeanParams>,
                        &MeanPrepare, &MeanEval, nullptr};
const OpKernel kPad = {kBuiltinPad, nullptr,  &NewOpData<PadOpData>,
                       &PadPrepare, &PadEval, nullptr};
const OpKernel kReshape = {
    kBuiltinReshape, nullptr,      &NewOpData<ReshapeOpData>,
    &ReshapePrepare, &ReshapeEval, nullptr};
const OpKernel kSoftmax = {
    kBuiltinSoftmax, nullptr,      &NewOpData<SoftmaxParams>,
    &SoftmaxPrepare, &SoftmaxEval, nullptr};
const OpKernel kQuantize = {
    kBuiltinQuantize, nullptr,       &NewOpData<QuantizeOpData>,
    &QuantizePrepare, &QuantizeEval, nullptr};
const OpKernel kDequantize = {
    kBuiltinDequantize, nullptr,         &NewOpData<DequantizeOpData>,
    &DequantizePrepare, &DequantizeEval, nullptr};

}  // namespace

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
    default:
      return nullptr;
  }
}

}  // namespace tflm_train
