#include "ops_cc/ops/forward/forward_kernels.h"

#include "ops_cc/ops/op_util.h"

namespace tflm_train {
namespace {

// ---- SQUEEZE -------------------------------------------------------------

// Removes the listed dimensions of size 1 (all of them when the list is
// empty); the bytes are unchanged.
Status SqueezePrepare(PrepareContext& c) {
  const char* op = "SQUEEZE";
  const auto* o = static_cast<const SqueezeOptions*>(c.BuiltinOptions());
  if (o == nullptr) return c.Fail("%s: missing builtin options", op);
  TT_RETURN_IF_ERROR(CheckInputCount(c, op, 1, 1));
  TensorDesc input, output;
  TT_RETURN_IF_ERROR(ReadInt8MoveInputOutput(c, op, &input, &output));
  const Shape& in = input.shape;
  if (o->num_squeeze_dims > kMaxSqueezeDims) {
    return c.Fail("%s: %d squeeze dimensions, at most %d", op,
                  o->num_squeeze_dims, kMaxSqueezeDims);
  }
  if (o->num_squeeze_dims > 0 && o->squeeze_dims == nullptr) {
    return c.Fail("%s: squeeze dimensions are missing", op);
  }
  bool squeeze[kMaxRank] = {false, false, false, false, false, false};
  if (o->num_squeeze_dims == 0) {
    for (int d = 0; d < in.rank; ++d) squeeze[d] = in.dims[d] == 1;
  }
  for (int i = 0; i < o->num_squeeze_dims; ++i) {
    const int32_t given = o->squeeze_dims[i];
    const int32_t d = given < 0 ? given + in.rank : given;
    if (d < 0 || d >= in.rank) {
      return c.Fail("%s: squeeze dimension %ld is out of range for rank %d",
                    op, static_cast<long>(given), in.rank);
    }
    if (in.dims[d] != 1) {
      return c.Fail("%s: cannot squeeze dimension %ld of size %d", op,
                    static_cast<long>(given), static_cast<int>(in.dims[d]));
    }
    squeeze[d] = true;
  }
  Shape expected;
  for (int d = 0; d < in.rank; ++d) {
    if (!squeeze[d]) expected.dims[expected.rank++] = in.dims[d];
  }
  if (output.shape != expected) {
    return c.Fail("%s: output shape does not match the input without the "
                  "squeezed dimensions (rank %d, expected %d)",
                  op, output.shape.rank, expected.rank);
  }
  return Status::kOk;
}

}  // namespace

extern const OpKernel kSqueeze = {
    kBuiltinSqueeze,
    nullptr,
    nullptr,
    &SqueezePrepare,
    &CopyInt8InputEval,
    nullptr};

}  // namespace tflm_train
