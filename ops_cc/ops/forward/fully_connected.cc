#include "ops_cc/ops/forward/forward_kernels.h"

#include "ops_cc/kernels/fully_connected.h"
#include "ops_cc/ops/forward/cmsis_nn.h"
#include "ops_cc/ops/op_util.h"

namespace tflm_train {
namespace {

// ---- FULLY_CONNECTED -----------------------------------------------------

struct FullyConnectedOpData {
  FullyConnectedParams params;
  ChannelRequant requant;  // per-channel weights
  int32_t multiplier = 0;  // per-tensor weights
  int32_t shift = 0;
  bool has_bias = false;
#ifdef TFLM_TRAIN_CMSIS_NN
  bool cmsis = false;  // CMSIS-NN computes this op (decided in Prepare)
#endif
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
  TT_RETURN_IF_ERROR(CheckInputCount(c, op, 2, 3));
  TensorDesc input, filter, output;
  TT_RETURN_IF_ERROR(ReadInt8InputOutput(c, op, &input, &output));
  TT_RETURN_IF_ERROR(ReadInput(c, op, 1, &filter));
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
  TT_RETURN_IF_ERROR(CheckFilterScales(c, op, filter, units, 0));
  auto* data = static_cast<FullyConnectedOpData*>(c.OpData());
  TT_RETURN_IF_ERROR(ReadBias(c, op, units, &data->has_bias));

  FullyConnectedParams& p = data->params;
  p.input_offset = -ZeroPoint(input);
  p.output_offset = ZeroPoint(output);
  p.per_channel = filter.quant.count > 1;
  TT_RETURN_IF_ERROR(
      ActivationRange(c, op, o->activation, output, &p.act_min, &p.act_max));
  if (p.per_channel) {
    TT_RETURN_IF_ERROR(PrepareChannelRequant(c, op, input, filter, output,
                                             units, &data->requant));
  } else if (!ComputeFullyConnectedMultiplier(Scale(input), Scale(filter),
                                              Scale(output), &data->multiplier,
                                              &data->shift)) {
    return c.Fail("%s: input * filter / output scale is out of range", op);
  }
#ifdef TFLM_TRAIN_CMSIS_NN
  // arm_fully_connected_s8 (per-tensor weights) and
  // arm_fully_connected_per_channel_s8 take every int8 FULLY_CONNECTED whose
  // kernel needs no buffer (Cortex-M with or without the DSP extension).
  // With Helium (MVE) they need the filter's column sums, which change at
  // every training step: not wired up, the portable kernel runs there.
  const cmsis_nn_dims filter_dims = {depth, 1, 1, units};
  data->cmsis = filter.type == DataType::kInt8 &&
                arm_fully_connected_s8_get_buffer_size(&filter_dims) == 0;
#endif
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
#ifdef TFLM_TRAIN_CMSIS_NN
  if (d->cmsis) {
    const Shape filter_shape = c.InputShape(1);
    const Shape output_shape = c.OutputShape(0);
    const int32_t units = filter_shape.dims[0];
    const int32_t depth = filter_shape.dims[1];
    const cmsis_nn_context ctx = {nullptr, 0};
    const cmsis_nn_fc_params params = {
        d->params.input_offset, 0, d->params.output_offset,
        cmsis_nn_activation{d->params.act_min, d->params.act_max}};
    const cmsis_nn_dims in = {
        static_cast<int32_t>(output_shape.FlatSizeSkipLast()), 1, 1, depth};
    const cmsis_nn_dims fl = {depth, 1, 1, units};
    const cmsis_nn_dims bias = {1, 1, 1, units};
    const cmsis_nn_dims out = {in.n, 1, 1, units};
    const int32_t* bias_data =
        d->has_bias ? c.Input<const int32_t>(2) : nullptr;
    arm_cmsis_nn_status status;
    if (d->params.per_channel) {
      const cmsis_nn_per_channel_quant_params quant = {
          const_cast<int32_t*>(multipliers), const_cast<int32_t*>(shifts)};
      status = arm_fully_connected_per_channel_s8(
          &ctx, &params, &quant, &in, c.Input<const int8_t>(0), &fl,
          c.Input<const int8_t>(1), &bias, bias_data, &out,
          c.Output<int8_t>(0));
    } else {
      const cmsis_nn_per_tensor_quant_params quant = {d->multiplier, d->shift};
      status = arm_fully_connected_s8(&ctx, &params, &quant, &in,
                                      c.Input<const int8_t>(0), &fl,
                                      c.Input<const int8_t>(1), &bias,
                                      bias_data, &out, c.Output<int8_t>(0));
    }
    if (status != ARM_CMSIS_NN_SUCCESS)
      return c.Fail("FULLY_CONNECTED: CMSIS-NN failed (%d)",
                    static_cast<int>(status));
    return Status::kOk;
  }
#endif
  ref::FullyConnected(d->params, multipliers, shifts,
                      c.Input<const int8_t>(0), c.InputShape(1),
                      c.Input<const int8_t>(1),
                      d->has_bias ? c.Input<const int32_t>(2) : nullptr,
                      c.OutputShape(0), c.Output<int8_t>(0));
  return Status::kOk;
}

}  // namespace

extern const OpKernel kFullyConnected = {
    kBuiltinFullyConnected,
    nullptr,
    &InitOpData<FullyConnectedOpData>,
    &FullyConnectedPrepare,
    &FullyConnectedEval,
    nullptr};

}  // namespace tflm_train
