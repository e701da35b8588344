#include "ops_cc/ops/forward/forward_kernels.h"

#include "ops_cc/kernels/mean.h"
#include "ops_cc/ops/op_util.h"

namespace tflm_train {
namespace {

// ---- MEAN ----------------------------------------------------------------

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

}  // namespace

extern const OpKernel kMean = {
    kBuiltinMean,
    nullptr,
    &InitOpData<MeanParams>,
    &MeanPrepare,
    &MeanEval,
    nullptr};

}  // namespace tflm_train
