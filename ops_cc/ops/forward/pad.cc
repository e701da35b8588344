#include "ops_cc/ops/forward/forward_kernels.h"

#include <cstring>
#include "ops_cc/kernels/pad.h"
#include "ops_cc/ops/op_util.h"

namespace tflm_train {
namespace {

// ---- PAD -----------------------------------------------------------------

struct PadOpData {
  PadParams params;
  int8_t pad_value = 0;
  bool has_constant_values = false;  // pad with input 2 (PADV2-style)
};

Status PadPrepare(PrepareContext& c) {
  const char* op = "PAD";
  TT_RETURN_IF_ERROR(RequireOpData(c, op));
  TT_RETURN_IF_ERROR(CheckInputCount(c, op, 2, 3));
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

}  // namespace

extern const OpKernel kPad = {
    kBuiltinPad,
    nullptr,
    &InitOpData<PadOpData>,
    &PadPrepare,
    &PadEval,
    nullptr};

}  // namespace tflm_train
