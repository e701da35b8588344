#include "ops_cc/ops/forward/forward_kernels.h"

#include "ops_cc/kernels/conv.h"
#include "ops_cc/kernels/depthwise_conv.h"
#include "ops_cc/ops/forward/cmsis_nn.h"
#include "ops_cc/ops/op_util.h"

namespace tflm_train {
namespace {

// ---- CONV_2D and DEPTHWISE_CONV_2D ---------------------------------------

struct ConvOpData {
  ConvParams params;
  ChannelRequant requant;
  bool has_bias = false;
  // Depthwise in place: scratch index of its output rows (int8_t: fits the
  // padding after has_bias, no per-op RAM).
  int8_t in_place_rows = -1;
#ifdef TFLM_TRAIN_CMSIS_NN
  cmsis::Choice cmsis;
#endif
};

#ifdef TFLM_TRAIN_CMSIS_NN
// CMSIS-NN's s8 convolutions take what ConvPerChannel does: the top/left
// padding (the bottom/right follows from the output size), -input and
// +output zero points, TFLite's per-channel (multiplier, shift) pairs.
template <typename CmsisParams>
CmsisParams CmsisConvParams(const ConvParams& p) {
  CmsisParams q = {};
  q.input_offset = p.input_offset;
  q.output_offset = p.output_offset;
  q.stride = cmsis_nn_tile{p.stride_w, p.stride_h};
  q.padding = cmsis_nn_tile{p.pad_w, p.pad_h};
  q.dilation = cmsis_nn_tile{p.dilation_w, p.dilation_h};
  q.activation = cmsis_nn_activation{p.act_min, p.act_max};
  return q;
}

// Whether CMSIS-NN can take this int8 convolution at all: int8 weights,
// dimensions that fit its uint16_t fields, no negative padding.
Status CmsisConvEligible(PrepareContext& c, const ConvParams& p,
                         bool* eligible) {
  TensorDesc input, filter, output;
  TT_RETURN_IF_ERROR(c.Input(0, &input));
  TT_RETURN_IF_ERROR(c.Input(1, &filter));
  TT_RETURN_IF_ERROR(c.Output(0, &output));
  *eligible = filter.type == DataType::kInt8 && cmsis::FitsDims(input.shape) &&
              cmsis::FitsDims(filter.shape) && cmsis::FitsDims(output.shape) &&
              p.pad_h >= 0 && p.pad_w >= 0;
  return Status::kOk;
}

// The input rows output row `oy` reads: [*top, *end), clipped to the input.
void WindowRows(const ConvParams& p, int filter_h, int in_h, int oy, int* top,
                int* end) {
  const int y0 = oy * p.stride_h - p.pad_h;
  const int y_end = y0 + (filter_h - 1) * p.dilation_h + 1;
  *top = y0 > 0 ? y0 : 0;
  *end = y_end < in_h ? y_end : in_h;
}

// In place, CMSIS-NN computes one output row at a time, from the input rows
// its window reads (a [1, rows, W, C] slice with the top padding that is
// left), into the in-place schedule's row ring (DepthwiseInPlace).
struct CmsisRowContext {
  const ConvParams* params;
  cmsis_nn_dw_conv_params dw;
  cmsis_nn_per_channel_quant_params quant;
  cmsis_nn_context ctx;
  cmsis_nn_dims input, filter, bias, output_row;
  const int8_t* filter_data;
  const int32_t* bias_data;
  arm_cmsis_nn_status status;
};

bool CmsisDepthwiseRow(void* context, int oy, const int8_t* data, int8_t* row) {
  auto& r = *static_cast<CmsisRowContext*>(context);
  int top = 0, end = 0;
  WindowRows(*r.params, r.filter.h, r.input.h, oy, &top, &end);
  cmsis_nn_dims slice = r.input;
  slice.h = end - top;
  cmsis_nn_dw_conv_params dw = r.dw;
  dw.padding.h = top - (oy * r.params->stride_h - r.params->pad_h);
  r.status = arm_depthwise_conv_wrapper_s8(
      &r.ctx, &dw, &r.quant, &slice, data + top * r.input.w * r.input.c,
      &r.filter, r.filter_data, &r.bias, r.bias_data, &r.output_row, row);
  return r.status == ARM_CMSIS_NN_SUCCESS;
}

#endif  // TFLM_TRAIN_CMSIS_NN

struct WindowOptions {
  int padding, stride_h, stride_w, dilation_h, dilation_w, activation;
};

// depth_multiplier > 0 selects DEPTHWISE_CONV_2D.
Status PrepareConvLike(PrepareContext& c, const char* op,
                       const WindowOptions& o, int depth_multiplier) {
  TT_RETURN_IF_ERROR(RequireOpData(c, op));
  TT_RETURN_IF_ERROR(CheckInputCount(c, op, 2, 3));
  TensorDesc input, filter, output;
  TT_RETURN_IF_ERROR(ReadInt8InputOutput(c, op, &input, &output));
  TT_RETURN_IF_ERROR(ReadInput(c, op, 1, &filter));
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
  TT_RETURN_IF_ERROR(CheckFilterScales(c, op, filter, out_c, depthwise ? 3 : 0));
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
  TT_RETURN_IF_ERROR(PrepareConvLike(c, "CONV_2D", w, 0));
#ifdef TFLM_TRAIN_CMSIS_NN
  // arm_convolve_wrapper_s8 covers every int8 CONV_2D (1x1, 1xN and the
  // general im2col kernel, grouped and dilated included).
  auto* data = static_cast<ConvOpData*>(c.OpData());
  bool eligible = false;
  TT_RETURN_IF_ERROR(CmsisConvEligible(c, data->params, &eligible));
  if (!eligible) return Status::kOk;
  TensorDesc input, filter, output;
  TT_RETURN_IF_ERROR(c.Input(0, &input));
  TT_RETURN_IF_ERROR(c.Input(1, &filter));
  TT_RETURN_IF_ERROR(c.Output(0, &output));
  const auto params = CmsisConvParams<cmsis_nn_conv_params>(data->params);
  const cmsis_nn_dims in = cmsis::Dims(input.shape);
  const cmsis_nn_dims fl = cmsis::Dims(filter.shape);
  const cmsis_nn_dims out = cmsis::Dims(output.shape);
  return cmsis::Use(
      c, arm_convolve_wrapper_s8_get_buffer_size(&params, &in, &fl, &out),
      &data->cmsis);
#else
  return Status::kOk;
#endif
}

Status ConvEval(EvalContext& c) {
  const auto* d = static_cast<const ConvOpData*>(c.OpData());
  const int32_t* multipliers = ComputeChannelRequant(c, d->requant);
#ifdef TFLM_TRAIN_CMSIS_NN
  if (d->cmsis.use) {
    int32_t* m = const_cast<int32_t*>(multipliers);  // our scratch
    const cmsis_nn_per_channel_quant_params quant = {m,
                                                     m + d->requant.channels};
    const cmsis_nn_context ctx = cmsis::Context(c, d->cmsis);
    const auto params = CmsisConvParams<cmsis_nn_conv_params>(d->params);
    const cmsis_nn_dims in = cmsis::Dims(c.InputShape(0));
    const cmsis_nn_dims fl = cmsis::Dims(c.InputShape(1));
    const cmsis_nn_dims out = cmsis::Dims(c.OutputShape(0));
    const cmsis_nn_dims bias = {1, 1, 1, out.c};
    const arm_cmsis_nn_status status = arm_convolve_wrapper_s8(
        &ctx, &params, &quant, &in, c.Input<const int8_t>(0), &fl,
        c.Input<const int8_t>(1), &bias,
        d->has_bias ? c.Input<const int32_t>(2) : nullptr, &out,
        c.Output<int8_t>(0));
    if (status != ARM_CMSIS_NN_SUCCESS)
      return c.Fail("CONV_2D: arm_convolve_wrapper_s8 failed (%d)",
                    static_cast<int>(status));
    return Status::kOk;
  }
#endif
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
  TT_RETURN_IF_ERROR(PrepareConvLike(c, op, w, o->depth_multiplier));
  // In place when the runtime can put the output over the input (no later
  // op reads it): the output never needs a buffer of its own, only a few
  // output rows of scratch.
  TensorDesc input, output;
  TT_RETURN_IF_ERROR(c.Input(0, &input));
  TT_RETURN_IF_ERROR(c.Output(0, &output));
  auto* data = static_cast<ConvOpData*>(c.OpData());
  if (o->depth_multiplier != 1 || input.shape.dims[0] != 1 ||
      !c.ShareInputBuffer(0, 0)) {
#ifdef TFLM_TRAIN_CMSIS_NN
    // arm_depthwise_conv_wrapper_s8 covers every int8 DEPTHWISE_CONV_2D
    // (3x3, the channel-multiplier-1 kernel, and the general one, which
    // handles dilation, depth multipliers and batches). In place: below.
    bool eligible = false;
    TT_RETURN_IF_ERROR(CmsisConvEligible(c, data->params, &eligible));
    if (!eligible) return Status::kOk;
    TensorDesc filter;
    TT_RETURN_IF_ERROR(c.Input(1, &filter));
    auto dw = CmsisConvParams<cmsis_nn_dw_conv_params>(data->params);
    dw.ch_mult = o->depth_multiplier;
    const cmsis_nn_dims in = cmsis::Dims(input.shape);
    const cmsis_nn_dims fl = cmsis::Dims(filter.shape);
    const cmsis_nn_dims out = cmsis::Dims(output.shape);
    return cmsis::Use(
        c, arm_depthwise_conv_wrapper_s8_get_buffer_size(&dw, &in, &fl, &out),
        &data->cmsis);
#else
    return Status::kOk;
#endif
  }
  const size_t rows = static_cast<size_t>(
      DepthwiseInPlaceRows(data->params, input.shape, output.shape));
  int index = -1;
  TT_RETURN_IF_ERROR(c.RequestScratch(
      rows * static_cast<size_t>(output.shape.dims[2]) *
          static_cast<size_t>(output.shape.dims[3]),
      &index));
  data->in_place_rows = static_cast<int8_t>(index);
#ifdef TFLM_TRAIN_CMSIS_NN
  // In place: CMSIS-NN row by row (CmsisDepthwiseRow) when every output
  // row's window reads at least one input row. Its buffer: the largest over
  // the top paddings a row can have (0 to pad_h; the 3x3 kernel needs none).
  bool eligible = false;
  TT_RETURN_IF_ERROR(CmsisConvEligible(c, data->params, &eligible));
  TensorDesc filter;
  TT_RETURN_IF_ERROR(c.Input(1, &filter));
  for (int oy = 0; eligible && oy < output.shape.dims[1]; ++oy) {
    int top = 0, end = 0;
    WindowRows(data->params, filter.shape.dims[1], input.shape.dims[1], oy,
               &top, &end);
    eligible = end > top;
  }
  if (!eligible) return Status::kOk;
  auto dw = CmsisConvParams<cmsis_nn_dw_conv_params>(data->params);
  dw.ch_mult = 1;
  const cmsis_nn_dims in = cmsis::Dims(input.shape);
  const cmsis_nn_dims fl = cmsis::Dims(filter.shape);
  const cmsis_nn_dims out = cmsis::Dims(output.shape);
  int32_t bytes = arm_depthwise_conv_wrapper_s8_get_buffer_size(&dw, &in, &fl, &out);
  dw.padding.h = 0;
  const int32_t unpadded =
      arm_depthwise_conv_wrapper_s8_get_buffer_size(&dw, &in, &fl, &out);
  return cmsis::Use(c, bytes > unpadded ? bytes : unpadded, &data->cmsis);
#else
  return Status::kOk;
#endif
}

Status DepthwiseConvEval(EvalContext& c) {
  const auto* d = static_cast<const ConvOpData*>(c.OpData());
  const int32_t* multipliers = ComputeChannelRequant(c, d->requant);
#ifdef TFLM_TRAIN_CMSIS_NN
  if (d->in_place_rows >= 0 && d->cmsis.use) {
    const Shape output_shape = c.OutputShape(0);
    CmsisRowContext r = {};
    r.params = &d->params;
    r.dw = CmsisConvParams<cmsis_nn_dw_conv_params>(d->params);
    r.dw.ch_mult = 1;
    int32_t* m = const_cast<int32_t*>(multipliers);  // our scratch
    r.quant = {m, m + d->requant.channels};
    r.ctx = cmsis::Context(c, d->cmsis);
    r.input = cmsis::Dims(c.InputShape(0));
    r.filter = cmsis::Dims(c.InputShape(1));
    r.bias = {1, 1, 1, output_shape.dims[3]};
    r.output_row = cmsis::Dims(output_shape);
    r.output_row.h = 1;
    r.filter_data = c.Input<const int8_t>(1);
    r.bias_data = d->has_bias ? c.Input<const int32_t>(2) : nullptr;
    if (!DepthwiseInPlace(d->params, c.InputShape(0), c.Output<int8_t>(0),
                          output_shape,
                          static_cast<int8_t*>(c.Scratch(d->in_place_rows)),
                          &CmsisDepthwiseRow, &r)) {
      return c.Fail(
          "DEPTHWISE_CONV_2D: arm_depthwise_conv_wrapper_s8 failed (%d)",
          static_cast<int>(r.status));
    }
    return Status::kOk;
  }
#endif
  if (d->in_place_rows >= 0) {
    ref::DepthwiseConvPerChannelInPlace(
        d->params, multipliers, multipliers + d->requant.channels,
        c.InputShape(0), c.Output<int8_t>(0), c.InputShape(1),
        c.Input<const int8_t>(1),
        d->has_bias ? c.Input<const int32_t>(2) : nullptr, c.OutputShape(0),
        static_cast<int8_t*>(c.Scratch(d->in_place_rows)));
    return Status::kOk;
  }
#ifdef TFLM_TRAIN_CMSIS_NN
  if (d->cmsis.use) {
    int32_t* m = const_cast<int32_t*>(multipliers);  // our scratch
    const cmsis_nn_per_channel_quant_params quant = {m,
                                                     m + d->requant.channels};
    const cmsis_nn_context ctx = cmsis::Context(c, d->cmsis);
    auto params = CmsisConvParams<cmsis_nn_dw_conv_params>(d->params);
    const cmsis_nn_dims in = cmsis::Dims(c.InputShape(0));
    const cmsis_nn_dims fl = cmsis::Dims(c.InputShape(1));
    const cmsis_nn_dims out = cmsis::Dims(c.OutputShape(0));
    params.ch_mult = out.c / in.c;
    const cmsis_nn_dims bias = {1, 1, 1, out.c};
    const arm_cmsis_nn_status status = arm_depthwise_conv_wrapper_s8(
        &ctx, &params, &quant, &in, c.Input<const int8_t>(0), &fl,
        c.Input<const int8_t>(1), &bias,
        d->has_bias ? c.Input<const int32_t>(2) : nullptr, &out,
        c.Output<int8_t>(0));
    if (status != ARM_CMSIS_NN_SUCCESS)
      return c.Fail("DEPTHWISE_CONV_2D: arm_depthwise_conv_wrapper_s8 failed (%d)",
                    static_cast<int>(status));
    return Status::kOk;
  }
#endif
  ref::DepthwiseConvPerChannel(
      d->params, multipliers, multipliers + d->requant.channels,
      c.InputShape(0), c.Input<const int8_t>(0), c.InputShape(1),
      c.Input<const int8_t>(1),
      d->has_bias ? c.Input<const int32_t>(2) : nullptr, c.OutputShape(0),
      c.Output<int8_t>(0));
  return Status::kOk;
}

}  // namespace

extern const OpKernel kConv2D = {
    kBuiltinConv2D,
    nullptr,
    &InitOpData<ConvOpData>,
    &ConvPrepare,
    &ConvEval,
    nullptr};
extern const OpKernel kDepthwiseConv2D = {
    kBuiltinDepthwiseConv2D,
    nullptr,
    &InitOpData<ConvOpData>,
    &DepthwiseConvPrepare,
    &DepthwiseConvEval,
    nullptr};

}  // namespace tflm_train
