#include "ops_cc/ops/forward/forward_kernels.h"

#include "ops_cc/kernels/transpose.h"
#include "ops_cc/ops/op_util.h"

namespace tflm_train {
namespace {

// ---- TRANSPOSE -----------------------------------------------------------

Status TransposePrepare(PrepareContext& c) {
  const char* op = "TRANSPOSE";
  TT_RETURN_IF_ERROR(RequireOpData(c, op));
  TT_RETURN_IF_ERROR(CheckInputCount(c, op, 2, 2));
  TensorDesc input, output, perm_desc;
  TT_RETURN_IF_ERROR(ReadInt8MoveInputOutput(c, op, &input, &output));
  const int rank = input.shape.rank;
  if (rank < 1 || rank > kMaxTransposeRank) {
    return c.Fail("%s: input rank %d is outside 1..%d", op, rank,
                  kMaxTransposeRank);
  }
  TT_RETURN_IF_ERROR(ReadInput(c, op, 1, &perm_desc));
  if (perm_desc.shape.rank != 1) {
    return c.Fail("%s: perm must be a vector, got rank %d", op,
                  perm_desc.shape.rank);
  }
  const int32_t* perm;
  TT_RETURN_IF_ERROR(ReadConstantInt32(c, op, 1, "perm", rank, &perm));
  if (output.shape.rank != rank) {
    return c.Fail("%s: output rank %d differs from input rank %d", op,
                  output.shape.rank, rank);
  }
  auto* p = static_cast<TransposeParams*>(c.OpData());
  p->rank = rank;
  bool seen[kMaxTransposeRank] = {false, false, false, false, false};
  for (int d = 0; d < rank; ++d) {
    const int32_t from = perm[d];
    if (from < 0 || from >= rank || seen[from]) {
      return c.Fail("%s: perm is not a permutation of 0..%d (entry %d is %ld)",
                    op, rank - 1, d, static_cast<long>(from));
    }
    seen[from] = true;
    p->perm[d] = from;
    if (output.shape.dims[d] != input.shape.dims[from]) {
      return c.Fail("%s: output dimension %d is %d, expected %d", op, d,
                    static_cast<int>(output.shape.dims[d]),
                    static_cast<int>(input.shape.dims[from]));
    }
  }
  return Status::kOk;
}

Status TransposeEval(EvalContext& c) {
  ref::Transpose(*static_cast<const TransposeParams*>(c.OpData()),
                 c.InputShape(0), c.Input<const int8_t>(0),
                 c.Output<int8_t>(0));
  return Status::kOk;
}

}  // namespace

extern const OpKernel kTranspose = {
    kBuiltinTranspose,
    nullptr,
    &InitOpData<TransposeParams>,
    &TransposePrepare,
    &TransposeEval,
    nullptr};

}  // namespace tflm_train
