// TFLMTRAIN_CONV_2D_SLICED / TFLMTRAIN_FULLY_CONNECTED_SLICED: the forward
// pass of a layer whose weights train on a subset of output channels
// (docs/format.md, "Channel-sliced weights"). Inputs [x, filter, bias, slice,
// channels]: the kernels read the merged filter row by row (row o from the
// slice when o is listed, else from the frozen filter), so the output is the
// builtin's on the merged filter bit for bit, with the builtin's multipliers
// (formed from the full filter's scales, which the slice's equal) and no
// extra RAM beyond the builtin's.
#include "ops_cc/ops/training/training_kernels.h"

#include "ops_cc/kernels/conv.h"
#include "ops_cc/kernels/fully_connected.h"
#include "ops_cc/ops/op_util.h"

namespace tflm_train {
namespace {

constexpr char kConvSliced[] = "TFLMTRAIN_CONV_2D_SLICED";
constexpr char kFullyConnectedSliced[] = "TFLMTRAIN_FULLY_CONNECTED_SLICED";

enum SlicedInput {
  kSlicedX = 0,
  kSlicedFilter,
  kSlicedBias,
  kSlicedSlice,
  kSlicedChannels,
  kSlicedNumInputs,
};

struct SlicedData {
  OptionError option_error;
  bool conv = false;
  int padding = kPaddingSame;
  int activation = kActivationNone;
  ConvParams conv_params;
  FullyConnectedParams fc_params;
  ChannelRequant requant;  // conv, per-channel fully connected
  int32_t multiplier = 0;  // per-tensor fully connected
  int32_t shift = 0;
  int num_channels = 0;
};

void* SlicedInit(InitContext& c, bool conv) {
  SlicedData* data = NewOpData<SlicedData>(c);
  if (data == nullptr) return nullptr;
  data->conv = conv;
  OptionReader options(c);
  if (conv) {
    data->conv_params.stride_h = options.Required("stride_h");
    data->conv_params.stride_w = options.Required("stride_w");
    data->conv_params.dilation_h = options.Optional("dilation_h", 1);
    data->conv_params.dilation_w = options.Optional("dilation_w", 1);
    data->padding = options.Required("padding");
  }
  data->activation = options.Required("activation");
  data->option_error = options.error();
  return data;
}

void* ConvSlicedInit(InitContext& c) { return SlicedInit(c, true); }
void* FullyConnectedSlicedInit(InitContext& c) { return SlicedInit(c, false); }

Status SlicedPrepare(PrepareContext& c, const char* op) {
  SlicedData* data = nullptr;
  TT_RETURN_IF_ERROR(GetOpData(c, op, &data));
  TT_RETURN_IF_ERROR(CheckOptions(c, op, data->option_error));
  TT_RETURN_IF_ERROR(CheckArity(c, op, kSlicedNumInputs, 1));
  TensorDesc x, filter, y;
  TT_RETURN_IF_ERROR(ReadInt8InputOutput(c, op, &x, &y));
  TT_RETURN_IF_ERROR(
      ReadInput(c, op, kSlicedFilter, "filter", DataType::kInt8, &filter));
  int channels = 0;
  if (data->conv) {
    TT_RETURN_IF_ERROR(CheckRank(c, op, "x", x, 4));
    TT_RETURN_IF_ERROR(CheckRank(c, op, "filter", filter, 4));
    TT_RETURN_IF_ERROR(CheckRank(c, op, "y", y, 4));
    channels = y.shape.dims[3];
    if (channels < 1 || filter.shape.dims[0] != channels ||
        filter.shape.dims[3] != x.shape.dims[3])
      return c.Fail("%s: filter must be [%d, KH, KW, %d]", op, channels,
                    static_cast<int>(x.shape.dims[3]));
    ConvParams& p = data->conv_params;
    TT_RETURN_IF_ERROR(WindowPadding(
        c, op, data->padding, p.stride_h, p.stride_w, p.dilation_h,
        p.dilation_w, filter.shape.dims[1], filter.shape.dims[2], x.shape,
        y.shape, &p.pad_h, &p.pad_w));
  } else {
    TT_RETURN_IF_ERROR(CheckRank(c, op, "filter", filter, 2));
    channels = filter.shape.dims[0];
    const int depth = filter.shape.dims[1];
    if (channels < 1 || depth < 1 || y.shape.rank < 1 ||
        y.shape.Last() != channels ||
        x.shape.FlatSize() != y.shape.FlatSizeSkipLast() * depth)
      return c.Fail("%s: x, filter [%d, %d] and y disagree in shape", op,
                    channels, depth);
  }
  TT_RETURN_IF_ERROR(CheckFilterScales(c, op, filter, channels, 0));
  bool has_bias = false;
  TT_RETURN_IF_ERROR(ReadBias(c, op, channels, &has_bias));
  const int32_t* index = nullptr;
  TT_RETURN_IF_ERROR(CheckFilterSlice(c, op, kSlicedSlice, kSlicedChannels,
                                      filter, channels, &index));
  TensorDesc list;
  TT_RETURN_IF_ERROR(c.Input(kSlicedChannels, &list));
  data->num_channels = list.shape.dims[0];

  int32_t act_min = 0, act_max = 0;
  TT_RETURN_IF_ERROR(
      ActivationRange(c, op, data->activation, y, &act_min, &act_max));
  if (data->conv) {
    ConvParams& p = data->conv_params;
    p.input_offset = -ZeroPoint(x);
    p.output_offset = ZeroPoint(y);
    p.act_min = act_min;
    p.act_max = act_max;
    return PrepareChannelRequant(c, op, x, filter, y, channels,
                                 &data->requant);
  }
  FullyConnectedParams& p = data->fc_params;
  p.input_offset = -ZeroPoint(x);
  p.output_offset = ZeroPoint(y);
  p.act_min = act_min;
  p.act_max = act_max;
  p.per_channel = filter.quant.count > 1;
  if (p.per_channel)
    return PrepareChannelRequant(c, op, x, filter, y, channels,
                                 &data->requant);
  if (!ComputeFullyConnectedMultiplier(Scale(x), Scale(filter), Scale(y),
                                       &data->multiplier, &data->shift))
    return c.Fail("%s: input * filter / output scale is out of range", op);
  return Status::kOk;
}

Status ConvSlicedPrepare(PrepareContext& c) {
  return SlicedPrepare(c, kConvSliced);
}
Status FullyConnectedSlicedPrepare(PrepareContext& c) {
  return SlicedPrepare(c, kFullyConnectedSliced);
}

Status SlicedEval(EvalContext& c) {
  const auto* d = static_cast<const SlicedData*>(c.OpData());
  const FilterSlice slice = {c.Input<int8_t>(kSlicedSlice),
                             c.Input<const int32_t>(kSlicedChannels),
                             d->num_channels};
  const int32_t* bias = c.Input<const int32_t>(kSlicedBias);
  if (d->conv) {
    const int32_t* multipliers = ComputeChannelRequant(c, d->requant);
    ref::ConvPerChannel(d->conv_params, multipliers,
                        multipliers + d->requant.channels,
                        c.InputShape(kSlicedX), c.Input<const int8_t>(kSlicedX),
                        c.InputShape(kSlicedFilter),
                        c.Input<const int8_t>(kSlicedFilter), bias,
                        c.OutputShape(0), c.Output<int8_t>(0), slice);
    return Status::kOk;
  }
  const int32_t* multipliers = &d->multiplier;
  const int32_t* shifts = &d->shift;
  if (d->fc_params.per_channel) {
    multipliers = ComputeChannelRequant(c, d->requant);
    shifts = multipliers + d->requant.channels;
  }
  ref::FullyConnected(d->fc_params, multipliers, shifts,
                      c.Input<const int8_t>(kSlicedX),
                      c.InputShape(kSlicedFilter),
                      c.Input<const int8_t>(kSlicedFilter), bias,
                      c.OutputShape(0), c.Output<int8_t>(0), slice);
  return Status::kOk;
}

}  // namespace

extern const OpKernel kConvSlicedKernel = {
    -1, kConvSliced, ConvSlicedInit, ConvSlicedPrepare, SlicedEval, nullptr};
extern const OpKernel kFullyConnectedSlicedKernel = {
    -1,
    kFullyConnectedSliced,
    FullyConnectedSlicedInit,
    FullyConnectedSlicedPrepare,
    SlicedEval,
    nullptr};

}  // namespace tflm_train
