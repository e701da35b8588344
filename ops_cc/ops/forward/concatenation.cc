#include "ops_cc/ops/forward/forward_kernels.h"

#include "ops_cc/kernels/concatenation.h"
#include "ops_cc/ops/op_util.h"

namespace tflm_train {
namespace {

// ---- CONCATENATION ---------------------------------------------------------

struct ConcatenationOpData {
  int axis = 0;  // non-negative
  int count = 0;  // inputs
};

Status ConcatenationPrepare(PrepareContext& c) {
  const char* op = "CONCATENATION";
  TT_RETURN_IF_ERROR(RequireOpData(c, op));
  const auto* o = static_cast<const ConcatenationOptions*>(c.BuiltinOptions());
  if (o == nullptr) return c.Fail("%s: missing builtin options", op);
  TT_RETURN_IF_ERROR(CheckInputCount(c, op, 1, kMaxConcatenationInputs));
  // As TFLM: no fused activation, and int8 inputs already quantized like
  // the output (the converter inserts QUANTIZE where they would differ).
  if (o->activation != kActivationNone) {
    return c.Fail("%s: fused activation %d is not supported (NONE only)", op,
                  o->activation);
  }
  TensorDesc output;
  TT_RETURN_IF_ERROR(ReadOutput(c, op, &output));
  TT_RETURN_IF_ERROR(CheckInt8PerTensor(c, op, "output", output));
  const int rank = output.shape.rank;
  const int axis = o->axis < 0 ? o->axis + rank : o->axis;
  if (rank < 1 || axis < 0 || axis >= rank) {
    return c.Fail("%s: axis %d is out of range for output rank %d", op,
                  o->axis, rank);
  }
  const int count = c.NumInputs();
  Shape shapes[kMaxConcatenationInputs];
  for (int i = 0; i < count; ++i) {
    TensorDesc input;
    TT_RETURN_IF_ERROR(ReadInput(c, op, i, &input));
    TT_RETURN_IF_ERROR(CheckInt8PerTensor(c, op, "input", input));
    if (Scale(input) != Scale(output) || ZeroPoint(input) != ZeroPoint(output)) {
      return c.Fail(
          "%s: input %d quantization (scale %g, zero point %ld) differs from "
          "the output's (scale %g, zero point %ld)",
          op, i, static_cast<double>(Scale(input)),
          static_cast<long>(ZeroPoint(input)),
          static_cast<double>(Scale(output)),
          static_cast<long>(ZeroPoint(output)));
    }
    shapes[i] = input.shape;
  }
  if (!ConcatenationShapesMatch(axis, count, shapes, output.shape)) {
    return c.Fail(
        "%s: input shapes do not concatenate along axis %d to the output "
        "shape (same rank %d, equal dimensions except the axis, which must "
        "add up to %ld)",
        op, axis, rank, static_cast<long>(output.shape.dims[axis]));
  }
  auto* d = static_cast<ConcatenationOpData*>(c.OpData());
  d->axis = axis;
  d->count = count;
  return Status::kOk;
}

Status ConcatenationEval(EvalContext& c) {
  const auto* d = static_cast<const ConcatenationOpData*>(c.OpData());
  Shape shapes[kMaxConcatenationInputs];
  const int8_t* inputs[kMaxConcatenationInputs];
  for (int i = 0; i < d->count; ++i) {  // Prepare checked count <= the max
    shapes[i] = c.InputShape(i);
    inputs[i] = c.Input<const int8_t>(i);
  }
  ref::Concatenation(d->axis, d->count, shapes, inputs, c.OutputShape(0),
                     c.Output<int8_t>(0));
  return Status::kOk;
}

}  // namespace

extern const OpKernel kConcatenation = {
    kBuiltinConcatenation,
    nullptr,
    &InitOpData<ConcatenationOpData>,
    &ConcatenationPrepare,
    &ConcatenationEval,
    nullptr};

}  // namespace tflm_train
