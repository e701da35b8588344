#include "ops_cc/ops/forward/forward_kernels.h"

#include "ops_cc/ops/op_util.h"

namespace tflm_train {
namespace {

// ---- EXPAND_DIMS ---------------------------------------------------------

// Inserts a dimension of size 1 at the constant axis; the bytes are
// unchanged.
Status ExpandDimsPrepare(PrepareContext& c) {
  const char* op = "EXPAND_DIMS";
  TT_RETURN_IF_ERROR(CheckInputCount(c, op, 2, 2));
  TensorDesc input, output, axis_desc;
  TT_RETURN_IF_ERROR(ReadInt8MoveInputOutput(c, op, &input, &output));
  TT_RETURN_IF_ERROR(ReadInput(c, op, 1, &axis_desc));
  if (axis_desc.shape.rank > 1) {
    return c.Fail("%s: axis must be a scalar or a vector, got rank %d", op,
                  axis_desc.shape.rank);
  }
  const int32_t* axis_data;
  TT_RETURN_IF_ERROR(ReadConstantInt32(c, op, 1, "axis", 1, &axis_data));
  const Shape& in = input.shape;
  const int32_t axis = axis_data[0] < 0 ? axis_data[0] + in.rank + 1
                                        : axis_data[0];
  if (axis < 0 || axis > in.rank) {
    return c.Fail("%s: axis %ld is out of range for rank %d", op,
                  static_cast<long>(axis_data[0]), in.rank);
  }
  if (in.rank + 1 > kMaxRank) {
    return c.Fail("%s: output rank would exceed %d", op, kMaxRank);
  }
  Shape expected;
  expected.rank = in.rank + 1;
  for (int d = 0; d < expected.rank; ++d) {
    expected.dims[d] = d < axis ? in.dims[d] : (d == axis ? 1 : in.dims[d - 1]);
  }
  if (output.shape != expected) {
    return c.Fail("%s: output shape does not match the input with a "
                  "dimension of 1 at axis %ld",
                  op, static_cast<long>(axis));
  }
  return Status::kOk;
}

}  // namespace

extern const OpKernel kExpandDims = {
    kBuiltinExpandDims,
    nullptr,
    nullptr,
    &ExpandDimsPrepare,
    &CopyInt8InputEval,
    nullptr};

}  // namespace tflm_train
