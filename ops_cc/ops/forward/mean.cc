#include "ops_cc/ops/forward/forward_kernels.h"

#include "ops_cc/kernels/mean.h"
#include "ops_cc/ops/op_util.h"

namespace tflm_train {
namespace {

// ---- MEAN ----------------------------------------------------------------

struct MeanOpData {
  MeanParams params;
  uint32_t axis_mask = 0;  // bit d: dimension d is averaged
};

Status MeanPrepare(PrepareContext& c) {
  const char* op = "MEAN";
  TT_RETURN_IF_ERROR(RequireOpData(c, op));
  const auto* o = static_cast<const ReducerOptions*>(c.BuiltinOptions());
  if (o == nullptr) return c.Fail("%s: missing builtin options", op);
  TT_RETURN_IF_ERROR(CheckInputCount(c, op, 2, 2));
  TensorDesc input, axes, output;
  TT_RETURN_IF_ERROR(ReadInput(c, op, 0, &input));
  TT_RETURN_IF_ERROR(ReadInput(c, op, 1, &axes));
  TT_RETURN_IF_ERROR(ReadOutput(c, op, &output));
  TT_RETURN_IF_ERROR(CheckInt8PerTensor(c, op, "input", input));
  TT_RETURN_IF_ERROR(CheckInt8PerTensor(c, op, "output", output));
  const int rank = input.shape.rank;
  if (rank < 1) return c.Fail("%s: input must have rank >= 1", op);
  const auto* axis_data = static_cast<const int32_t*>(c.ConstantInputData(1));
  if (axes.type != DataType::kInt32 || axis_data == nullptr) {
    return c.Fail("%s: axes must be a constant int32 tensor", op);
  }
  // Negative axes count from the end; repeats are allowed (as in TFLM).
  uint32_t mask = 0;
  const int64_t num_axes = axes.shape.FlatSize();
  for (int64_t i = 0; i < num_axes; ++i) {
    const int32_t axis = axis_data[i] < 0 ? axis_data[i] + rank : axis_data[i];
    if (axis < 0 || axis >= rank) {
      return c.Fail("%s: axis %ld is out of range for rank %d", op,
                    static_cast<long>(axis_data[i]), rank);
    }
    mask |= 1u << axis;
  }
  // The input with the averaged dimensions set to 1 (keep_dims) or dropped.
  Shape expected;
  for (int d = 0; d < rank; ++d) {
    if (!((mask >> d) & 1)) {
      expected.dims[expected.rank++] = input.shape.dims[d];
    } else if (o->keep_dims) {
      expected.dims[expected.rank++] = 1;
    }
  }
  if (output.shape != expected) {
    return c.Fail("%s: output shape does not match the input %s the averaged "
                  "dimensions (rank %d, expected %d)",
                  op, o->keep_dims ? "with 1 for" : "without",
                  output.shape.rank, expected.rank);
  }
  auto* data = static_cast<MeanOpData*>(c.OpData());
  data->axis_mask = mask;
  MeanParams* p = &data->params;
  p->input_zero_point = ZeroPoint(input);
  p->output_zero_point = ZeroPoint(output);
  QuantizeMultiplier(
      static_cast<double>(Scale(input)) / static_cast<double>(Scale(output)),
      &p->multiplier, &p->shift);
  if (p->shift > 31) {
    return c.Fail("%s: input / output scale ratio is too large", op);
  }
  if (p->shift < -31) {
    return c.Fail("%s: input / output scale ratio is too small", op);
  }
  return Status::kOk;
}

Status MeanEval(EvalContext& c) {
  const auto* data = static_cast<const MeanOpData*>(c.OpData());
  ref::Mean(data->params, c.InputShape(0), data->axis_mask,
            c.Input<const int8_t>(0), c.Output<int8_t>(0));
  return Status::kOk;
}

}  // namespace

extern const OpKernel kMean = {
    kBuiltinMean,
    nullptr,
    &InitOpData<MeanOpData>,
    &MeanPrepare,
    &MeanEval,
    nullptr};

}  // namespace tflm_train
