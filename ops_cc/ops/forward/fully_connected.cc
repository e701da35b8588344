#include "ops_cc/ops/forward/forward_kernels.h"

#include "ops_cc/kernels/fully_connected.h"
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

}  // namespace

extern const OpKernel kFullyConnected = {
    kBuiltinFullyConnected,
    nullptr,
    &InitOpData<FullyConnectedOpData>,
    &FullyConnectedPrepare,
    &FullyConnectedEval,
    nullptr};

}  // namespace tflm_train
