#include "ops_cc/kernels/expand_depthwise_conv.h"
#include "ops_cc/ops/op_util.h"
#include "ops_cc/ops/training/training_kernels.h"

namespace tflm_train {
namespace {

// ---- TFLMTRAIN_EXPAND_DEPTHWISE_CONV_2D ------------------------------------
// A 1x1 CONV_2D (stride 1) and the DEPTHWISE_CONV_2D reading its output, the
// converter's fusion of a frozen pair (docs/format.md). Input 3 is a
// one-element int8 constant carrying the expanded tensor's quantization.

constexpr char kOp[] = "TFLMTRAIN_EXPAND_DEPTHWISE_CONV_2D";

enum ExpandDepthwiseInput {
  kInput = 0,
  kExpandFilter,
  kExpandBias,
  kExpanded,
  kFilter,
  kBias,
  kNumInputs,
};

struct ExpandDepthwiseData {
  OptionError option_error;
  int expand_padding = kPaddingSame;
  int expand_activation = kActivationNone;
  int padding = kPaddingSame;
  int depth_multiplier = 1;
  int activation = kActivationNone;
  ConvParams expand, depthwise;
  ChannelRequant expand_requant, requant;
  bool has_expand_bias = false, has_bias = false;
  int band = -1;  // scratch: ExpandDepthwiseBandRows x W x Cmid int8
};

void* ExpandDepthwiseInit(InitContext& c) {
  ExpandDepthwiseData* data = NewOpData<ExpandDepthwiseData>(c);
  if (data == nullptr) return nullptr;
  OptionReader options(c);
  data->expand_padding = options.Required("expand_padding");
  data->expand_activation = options.Required("expand_activation");
  data->padding = options.Required("padding");
  data->depthwise.stride_h = options.Required("stride_h");
  data->depthwise.stride_w = options.Required("stride_w");
  data->depthwise.dilation_h = options.Optional("dilation_h", 1);
  data->depthwise.dilation_w = options.Optional("dilation_w", 1);
  data->depth_multiplier = options.Required("depth_multiplier");
  data->activation = options.Required("activation");
  data->option_error = options.error();
  return data;
}

// Input `i`, an optional int32 bias of `channels` elements.
Status ReadOptionalBias(PrepareContext& c, int i, const char* name,
                        int channels, bool* present) {
  *present = c.HasInput(i);
  if (!*present) return Status::kOk;
  TensorDesc bias;
  TT_RETURN_IF_ERROR(ReadInput(c, kOp, i, name, DataType::kInt32, &bias));
  return CheckElements(c, kOp, name, bias, channels);
}

Status ExpandDepthwisePrepare(PrepareContext& c) {
  ExpandDepthwiseData* data = nullptr;
  TT_RETURN_IF_ERROR(GetOpData(c, kOp, &data));
  TT_RETURN_IF_ERROR(CheckOptions(c, kOp, data->option_error));
  TT_RETURN_IF_ERROR(CheckArity(c, kOp, kNumInputs, 1));
  TensorDesc input, expand_filter, expanded, filter, output;
  TT_RETURN_IF_ERROR(ReadInput(c, kOp, kInput, "input", DataType::kInt8, &input));
  TT_RETURN_IF_ERROR(CheckInt8PerTensor(c, kOp, "input", input));
  TT_RETURN_IF_ERROR(ReadInput(c, kOp, kExpandFilter, "expand_filter",
                               DataType::kInt8, &expand_filter));
  TT_RETURN_IF_ERROR(
      ReadInput(c, kOp, kExpanded, "expanded", DataType::kInt8, &expanded));
  TT_RETURN_IF_ERROR(CheckInt8PerTensor(c, kOp, "expanded", expanded));
  TT_RETURN_IF_ERROR(CheckElements(c, kOp, "expanded", expanded, 1));
  TT_RETURN_IF_ERROR(
      ReadInput(c, kOp, kFilter, "filter", DataType::kInt8, &filter));
  TT_RETURN_IF_ERROR(ReadOutput(c, kOp, 0, "output", DataType::kInt8, &output));
  TT_RETURN_IF_ERROR(CheckInt8PerTensor(c, kOp, "output", output));
  TT_RETURN_IF_ERROR(CheckRank(c, kOp, "input", input, 4));
  TT_RETURN_IF_ERROR(CheckRank(c, kOp, "expand_filter", expand_filter, 4));
  TT_RETURN_IF_ERROR(CheckRank(c, kOp, "filter", filter, 4));
  TT_RETURN_IF_ERROR(CheckRank(c, kOp, "output", output, 4));

  // The expand convolution: [Cmid, 1, 1, Cin / groups].
  const Shape& fe = expand_filter.shape;
  const int in_c = input.shape.dims[3];
  const int mid_c = fe.dims[0];
  const int filter_c = fe.dims[3];
  if (fe.dims[1] != 1 || fe.dims[2] != 1 || mid_c < 1 || filter_c < 1 ||
      in_c % filter_c != 0 || mid_c % (in_c / filter_c) != 0) {
    return c.Fail("%s: expand_filter must be [Cmid, 1, 1, Cin / groups] for %d "
                  "input channels",
                  kOp, in_c);
  }
  TT_RETURN_IF_ERROR(CheckFilterScales(c, kOp, expand_filter, mid_c, 0));
  TT_RETURN_IF_ERROR(ReadOptionalBias(c, kExpandBias, "expand_bias", mid_c,
                                      &data->has_expand_bias));
  Shape mid_shape = input.shape;
  mid_shape.dims[3] = mid_c;
  ConvParams& e = data->expand;
  TT_RETURN_IF_ERROR(WindowPadding(c, kOp, data->expand_padding, 1, 1, 1, 1, 1,
                                   1, input.shape, mid_shape, &e.pad_h,
                                   &e.pad_w));
  e.input_offset = -ZeroPoint(input);
  e.output_offset = ZeroPoint(expanded);
  TT_RETURN_IF_ERROR(ActivationRange(c, kOp, data->expand_activation, expanded,
                                     &e.act_min, &e.act_max));

  // The depthwise convolution: [1, KH, KW, Cmid x multiplier].
  const int out_c = output.shape.dims[3];
  if (data->depth_multiplier <= 0 ||
      static_cast<int64_t>(mid_c) * data->depth_multiplier != out_c) {
    return c.Fail("%s: %d output channels != %d expanded channels x depth "
                  "multiplier %d",
                  kOp, out_c, mid_c, data->depth_multiplier);
  }
  if (filter.shape.dims[0] != 1 || filter.shape.dims[3] != out_c) {
    return c.Fail("%s: filter must be [1, KH, KW, %d]", kOp, out_c);
  }
  TT_RETURN_IF_ERROR(CheckFilterScales(c, kOp, filter, out_c, 3));
  TT_RETURN_IF_ERROR(
      ReadOptionalBias(c, kBias, "bias", out_c, &data->has_bias));
  ConvParams& d = data->depthwise;
  TT_RETURN_IF_ERROR(WindowPadding(c, kOp, data->padding, d.stride_h,
                                   d.stride_w, d.dilation_h, d.dilation_w,
                                   filter.shape.dims[1], filter.shape.dims[2],
                                   mid_shape, output.shape, &d.pad_h, &d.pad_w));
  d.input_offset = -ZeroPoint(expanded);
  d.output_offset = ZeroPoint(output);
  TT_RETURN_IF_ERROR(ActivationRange(c, kOp, data->activation, output,
                                     &d.act_min, &d.act_max));

  TT_RETURN_IF_ERROR(PrepareChannelRequant(c, kOp, input, expand_filter,
                                           expanded, mid_c,
                                           &data->expand_requant));
  TT_RETURN_IF_ERROR(PrepareChannelRequant(c, kOp, expanded, filter, output,
                                           out_c, &data->requant));
  const int rows =
      ExpandDepthwiseBandRows(d, filter.shape.dims[1], input.shape.dims[1]);
  return c.RequestScratch(static_cast<size_t>(rows) * input.shape.dims[2] *
                              static_cast<size_t>(mid_c),
                          &data->band);
}

Status ExpandDepthwiseEval(EvalContext& c) {
  const auto* data = static_cast<const ExpandDepthwiseData*>(c.OpData());
  ConvOperands expand, depthwise;
  const int32_t* m = ComputeChannelRequant(c, data->expand_requant);
  expand.params = data->expand;
  expand.filter_shape = c.InputShape(kExpandFilter);
  expand.filter = c.Input<const int8_t>(kExpandFilter);
  expand.bias =
      data->has_expand_bias ? c.Input<const int32_t>(kExpandBias) : nullptr;
  expand.multipliers = m;
  expand.shifts = m + data->expand_requant.channels;
  m = ComputeChannelRequant(c, data->requant);
  depthwise.params = data->depthwise;
  depthwise.filter_shape = c.InputShape(kFilter);
  depthwise.filter = c.Input<const int8_t>(kFilter);
  depthwise.bias = data->has_bias ? c.Input<const int32_t>(kBias) : nullptr;
  depthwise.multipliers = m;
  depthwise.shifts = m + data->requant.channels;
  ExpandDepthwiseConvPerChannel(expand, depthwise, c.InputShape(kInput),
                                c.Input<const int8_t>(kInput), c.OutputShape(0),
                                c.Output<int8_t>(0),
                                static_cast<int8_t*>(c.Scratch(data->band)));
  return Status::kOk;
}

}  // namespace

extern const OpKernel kExpandDepthwiseConvKernel = {
    -1,
    kOp,
    ExpandDepthwiseInit,
    ExpandDepthwisePrepare,
    ExpandDepthwiseEval,
    nullptr};

}  // namespace tflm_train
