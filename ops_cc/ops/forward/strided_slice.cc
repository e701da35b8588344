#include "ops_cc/ops/forward/forward_kernels.h"

#include "ops_cc/kernels/strided_slice.h"
#include "ops_cc/ops/op_util.h"

namespace tflm_train {
namespace {

// ---- STRIDED_SLICE -------------------------------------------------------

Status StridedSlicePrepare(PrepareContext& c) {
  const char* op = "STRIDED_SLICE";
  TT_RETURN_IF_ERROR(RequireOpData(c, op));
  const auto* o = static_cast<const StridedSliceOptions*>(c.BuiltinOptions());
  if (o == nullptr) return c.Fail("%s: missing builtin options", op);
  TT_RETURN_IF_ERROR(CheckInputCount(c, op, 4, 4));
  TensorDesc input, output;
  TT_RETURN_IF_ERROR(ReadInt8MoveInputOutput(c, op, &input, &output));
  const int rank = input.shape.rank;
  if (rank > kMaxStridedSliceRank) {
    return c.Fail("%s: input rank %d exceeds %d", op, rank,
                  kMaxStridedSliceRank);
  }
  const int32_t *begin, *end, *strides;
  TT_RETURN_IF_ERROR(ReadConstantInt32(c, op, 1, "begin", rank, &begin));
  TT_RETURN_IF_ERROR(ReadConstantInt32(c, op, 2, "end", rank, &end));
  TT_RETURN_IF_ERROR(ReadConstantInt32(c, op, 3, "strides", rank, &strides));
  // TFLM ignores these (it slices as if they were 0); the converter folds
  // them into begin / end and a RESHAPE, so a model carrying them was not
  // meant for TFLM.
  if (o->ellipsis_mask != 0 || o->new_axis_mask != 0) {
    return c.Fail("%s: ellipsis and new-axis masks are not supported", op);
  }
  if (o->offset) {
    return c.Fail("%s: the offset option is not supported", op);
  }
  auto* p = static_cast<StridedSliceParams*>(c.OpData());
  p->rank = rank;
  int out_rank = 0;
  for (int d = 0; d < rank; ++d) {
    if (strides[d] == 0) {
      return c.Fail("%s: stride of dimension %d is 0", op, d);
    }
    const bool shrink = (o->shrink_axis_mask >> d) & 1;
    const SliceAxis a = ref::ResolveSliceAxis(
        input.shape.dims[d], begin[d], end[d], strides[d],
        (o->begin_mask >> d) & 1, (o->end_mask >> d) & 1, shrink);
    p->axes[d] = a;
    if (shrink) {
      // TFLM writes nothing for such an axis (an index outside the
      // dimension, or a negative stride) and leaves the output unset.
      if (a.count != 1) {
        return c.Fail(
            "%s: dimension %d is shrunk to index %ld with stride %ld, which "
            "selects no element of its %d",
            op, d, static_cast<long>(begin[d]), static_cast<long>(strides[d]),
            static_cast<int>(input.shape.dims[d]));
      }
      continue;
    }
    if (out_rank >= output.shape.rank ||
        output.shape.dims[out_rank] != a.count) {
      return c.Fail("%s: dimension %d of the slice has %ld elements, output "
                    "dimension %d does not match",
                    op, d, static_cast<long>(a.count), out_rank);
    }
    ++out_rank;
  }
  if (out_rank != output.shape.rank) {
    return c.Fail("%s: output rank %d, expected %d", op, output.shape.rank,
                  out_rank);
  }
  return Status::kOk;
}

Status StridedSliceEval(EvalContext& c) {
  ref::StridedSlice(*static_cast<const StridedSliceParams*>(c.OpData()),
                    c.InputShape(0), c.Input<const int8_t>(0),
                    c.Output<int8_t>(0));
  return Status::kOk;
}

}  // namespace

extern const OpKernel kStridedSlice = {
    kBuiltinStridedSlice,
    nullptr,
    &InitOpData<StridedSliceParams>,
    &StridedSlicePrepare,
    &StridedSliceEval,
    nullptr};

}  // namespace tflm_train
