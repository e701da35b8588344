#include "ops_cc/ops/forward/forward_kernels.h"

#include "ops_cc/kernels/resize_nearest_neighbor.h"
#include "ops_cc/ops/op_util.h"

namespace tflm_train {
namespace {

// ---- RESIZE_NEAREST_NEIGHBOR ---------------------------------------------

Status ResizeNearestPrepare(PrepareContext& c) {
  const char* op = "RESIZE_NEAREST_NEIGHBOR";
  TT_RETURN_IF_ERROR(RequireOpData(c, op));
  const auto* o =
      static_cast<const ResizeNearestNeighborOptions*>(c.BuiltinOptions());
  if (o == nullptr) return c.Fail("%s: missing builtin options", op);
  TT_RETURN_IF_ERROR(CheckInputCount(c, op, 2, 2));
  TensorDesc input, output, size_desc;
  TT_RETURN_IF_ERROR(ReadInt8MoveInputOutput(c, op, &input, &output));
  TT_RETURN_IF_ERROR(CheckRank(c, op, "input", input, 4));
  TT_RETURN_IF_ERROR(CheckRank(c, op, "output", output, 4));
  TT_RETURN_IF_ERROR(ReadInput(c, op, 1, &size_desc));
  if (size_desc.shape.rank != 1) {
    return c.Fail("%s: size must be a vector, got rank %d", op,
                  size_desc.shape.rank);
  }
  const int32_t* size;
  TT_RETURN_IF_ERROR(ReadConstantInt32(c, op, 1, "size", 2, &size));
  const Shape& in = input.shape;
  const Shape& out = output.shape;
  if (size[0] < 1 || size[1] < 1) {
    return c.Fail("%s: size %ldx%ld is not positive", op,
                  static_cast<long>(size[0]), static_cast<long>(size[1]));
  }
  if (out.dims[0] != in.dims[0] || out.dims[1] != size[0] ||
      out.dims[2] != size[1] || out.dims[3] != in.dims[3]) {
    return c.Fail("%s: output shape is not [%d, %ld, %ld, %d]", op,
                  static_cast<int>(in.dims[0]), static_cast<long>(size[0]),
                  static_cast<long>(size[1]), static_cast<int>(in.dims[3]));
  }
  if (in.dims[1] < 1 || in.dims[2] < 1) {
    return c.Fail("%s: input is empty (%dx%d)", op,
                  static_cast<int>(in.dims[1]), static_cast<int>(in.dims[2]));
  }
  auto* p = static_cast<ResizeNearestParams*>(c.OpData());
  p->align_corners = o->align_corners;
  p->half_pixel_centers = o->half_pixel_centers;
  return Status::kOk;
}

Status ResizeNearestEval(EvalContext& c) {
  ref::ResizeNearestNeighbor(
      *static_cast<const ResizeNearestParams*>(c.OpData()), c.InputShape(0),
      c.Input<const int8_t>(0), c.OutputShape(0), c.Output<int8_t>(0));
  return Status::kOk;
}

}  // namespace

extern const OpKernel kResizeNearestNeighbor = {
    kBuiltinResizeNearestNeighbor,
    nullptr,
    &InitOpData<ResizeNearestParams>,
    &ResizeNearestPrepare,
    &ResizeNearestEval,
    nullptr};

}  // namespace tflm_train
