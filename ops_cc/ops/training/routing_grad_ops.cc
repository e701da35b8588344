#include "ops_cc/ops/training/training_kernels.h"

#include "ops_cc/kernels/grad/routing_grad.h"
#include "ops_cc/kernels/strided_slice.h"
#include "ops_cc/ops/op_util.h"

namespace tflm_train {
namespace {

constexpr char kConcatenationGrad[] = "TFLMTRAIN_CONCATENATION_GRAD";
constexpr char kTransposeGrad[] = "TFLMTRAIN_TRANSPOSE_GRAD";
constexpr char kStridedSliceGrad[] = "TFLMTRAIN_STRIDED_SLICE_GRAD";

// ---- TFLMTRAIN_CONCATENATION_GRAD ---------------------------------------------
// Inputs: 0 mode, 1 y/grad, 2 offsets (constant int32 [k]: where each
// output's slice starts along `axis`). Outputs: k x_i/grad, the slices of
// y/grad (disjoint, in increasing order). TFLM's int8 CONCATENATION copies
// its inputs unchanged (it requires the output's scale and zero point on
// every input), so nothing is masked.

struct ConcatenationGradData {
  OptionError option_error;
  int axis = 0;
  int outputs = 0;
};

void* ConcatenationGradInit(InitContext& c) {
  ConcatenationGradData* data = NewOpData<ConcatenationGradData>(c);
  if (data == nullptr) return nullptr;
  OptionReader options(c);
  data->axis = options.Required("axis");
  data->option_error = options.error();
  return data;
}

Status ConcatenationGradPrepare(PrepareContext& c) {
  const char* op = kConcatenationGrad;
  ConcatenationGradData* data = nullptr;
  TT_RETURN_IF_ERROR(GetOpData(c, op, &data));
  TT_RETURN_IF_ERROR(CheckOptions(c, op, data->option_error));
  const int outputs = c.NumOutputs();
  if (outputs < 1) return c.Fail("%s: expected at least 1 output, got 0", op);
  TT_RETURN_IF_ERROR(CheckArity(c, op, 3, outputs));
  TT_RETURN_IF_ERROR(CheckMode(c, op, 0));
  TensorDesc dy;
  TT_RETURN_IF_ERROR(ReadInput(c, op, 1, "y/grad", DataType::kFloat32, &dy));
  const int32_t* start = nullptr;
  TT_RETURN_IF_ERROR(ReadConstantInt32(c, op, 2, "offsets", outputs, &start));
  const int rank = dy.shape.rank;
  const int axis = data->axis;
  if (axis < 0 || axis >= rank)
    return c.Fail("%s: axis %d is outside [0, %d)", op, axis, rank);
  int64_t next = 0;  // the first position the next slice may start at
  for (int i = 0; i < outputs; ++i) {
    TensorDesc dx;
    TT_RETURN_IF_ERROR(ReadOutput(c, op, i, "x/grad", DataType::kFloat32, &dx));
    if (dx.shape.rank != rank)
      return c.Fail("%s: output %d has rank %d, y/grad %d", op, i,
                    dx.shape.rank, rank);
    for (int d = 0; d < rank; ++d)
      if (d != axis && dx.shape.dims[d] != dy.shape.dims[d])
        return c.Fail("%s: output %d differs from y/grad in dimension %d", op,
                      i, d);
    const int64_t end = static_cast<int64_t>(start[i]) + dx.shape.dims[axis];
    if (start[i] < next || end > dy.shape.dims[axis])
      return c.Fail("%s: output %d at offset %ld (%d wide) overlaps another "
                    "or leaves y/grad's %d positions along axis %d", op, i,
                    static_cast<long>(start[i]),
                    static_cast<int>(dx.shape.dims[axis]),
                    static_cast<int>(dy.shape.dims[axis]), axis);
    next = end;
  }
  data->outputs = outputs;
  return Status::kOk;
}

Status ConcatenationGradEval(EvalContext& c) {
  if (!TrainMode(c)) return Status::kOk;
  const auto* data = static_cast<const ConcatenationGradData*>(c.OpData());
  const int32_t* offsets = c.Input<int32_t>(2);
  const Shape y_shape = c.InputShape(1);
  const float* dy = c.Input<float>(1);
  for (int i = 0; i < data->outputs; ++i)
    ConcatenationGrad(y_shape, dy, data->axis, offsets[i], c.OutputShape(i),
                      c.Output<float>(i));
  return Status::kOk;
}

// ---- TFLMTRAIN_TRANSPOSE_GRAD -------------------------------------------------
// Inputs: 0 mode, 1 y/grad, 2 perm (the forward TRANSPOSE's constant int32
// [rank]). Outputs: 0 x/grad = y/grad permuted back. Options: none.

struct TransposeGradData {
  int32_t perm[kMaxRank] = {0, 1, 2, 3, 4, 5};
};

Status TransposeGradPrepare(PrepareContext& c) {
  const char* op = kTransposeGrad;
  TransposeGradData* data = nullptr;
  TT_RETURN_IF_ERROR(GetOpData(c, op, &data));
  TT_RETURN_IF_ERROR(CheckArity(c, op, 3, 1));
  TT_RETURN_IF_ERROR(CheckMode(c, op, 0));
  TensorDesc dy, dx;
  TT_RETURN_IF_ERROR(ReadInput(c, op, 1, "y/grad", DataType::kFloat32, &dy));
  TT_RETURN_IF_ERROR(ReadOutput(c, op, 0, "x/grad", DataType::kFloat32, &dx));
  const int rank = dy.shape.rank;
  const int32_t* p = nullptr;
  TT_RETURN_IF_ERROR(ReadConstantInt32(c, op, 2, "perm", rank, &p));
  if (dx.shape.rank != rank)
    return c.Fail("%s: x/grad has rank %d, y/grad %d", op, dx.shape.rank,
                  rank);
  bool seen[kMaxRank] = {false, false, false, false, false, false};
  for (int d = 0; d < rank; ++d) {
    if (p[d] < 0 || p[d] >= rank || seen[p[d]])
      return c.Fail("%s: perm is not a permutation of 0..%d", op, rank - 1);
    seen[p[d]] = true;
    if (dx.shape.dims[p[d]] != dy.shape.dims[d])
      return c.Fail("%s: y/grad dimension %d (%d) != x/grad dimension %d "
                    "(%d)", op, d, static_cast<int>(dy.shape.dims[d]),
                    static_cast<int>(p[d]),
                    static_cast<int>(dx.shape.dims[p[d]]));
    data->perm[d] = p[d];
  }
  return Status::kOk;
}

Status TransposeGradEval(EvalContext& c) {
  if (!TrainMode(c)) return Status::kOk;
  const auto* data = static_cast<const TransposeGradData*>(c.OpData());
  TransposeGrad(c.InputShape(1), c.Input<float>(1), data->perm,
                c.OutputShape(0), c.Output<float>(0));
  return Status::kOk;
}

// ---- TFLMTRAIN_STRIDED_SLICE_GRAD ---------------------------------------------
// Inputs: 0 mode, 1 y/grad, 2 begin, 3 end, 4 strides (the forward
// STRIDED_SLICE's constant int32 [rank] tensors). Outputs: 0 x/grad: zero
// except at the elements the slice read, which get y/grad in order. Options:
// begin_mask, end_mask, shrink_axis_mask (the forward's). The slice resolves
// as the forward kernel resolves it (ref::ResolveSliceAxis).

struct StridedSliceGradData {
  OptionError option_error;
  int begin_mask = 0, end_mask = 0, shrink_axis_mask = 0;
  SliceBox box;
};

void* StridedSliceGradInit(InitContext& c) {
  StridedSliceGradData* data = NewOpData<StridedSliceGradData>(c);
  if (data == nullptr) return nullptr;
  OptionReader options(c);
  data->begin_mask = options.Required("begin_mask");
  data->end_mask = options.Required("end_mask");
  data->shrink_axis_mask = options.Required("shrink_axis_mask");
  data->option_error = options.error();
  return data;
}

Status StridedSliceGradPrepare(PrepareContext& c) {
  const char* op = kStridedSliceGrad;
  StridedSliceGradData* data = nullptr;
  TT_RETURN_IF_ERROR(GetOpData(c, op, &data));
  TT_RETURN_IF_ERROR(CheckOptions(c, op, data->option_error));
  TT_RETURN_IF_ERROR(CheckArity(c, op, 5, 1));
  TT_RETURN_IF_ERROR(CheckMode(c, op, 0));
  TensorDesc dy, dx;
  TT_RETURN_IF_ERROR(ReadInput(c, op, 1, "y/grad", DataType::kFloat32, &dy));
  TT_RETURN_IF_ERROR(ReadOutput(c, op, 0, "x/grad", DataType::kFloat32, &dx));
  const int rank = dx.shape.rank;
  if (rank > kMaxStridedSliceRank)
    return c.Fail("%s: x/grad rank %d exceeds %d", op, rank,
                  kMaxStridedSliceRank);
  const int32_t *begin, *end, *strides;
  TT_RETURN_IF_ERROR(ReadConstantInt32(c, op, 2, "begin", rank, &begin));
  TT_RETURN_IF_ERROR(ReadConstantInt32(c, op, 3, "end", rank, &end));
  TT_RETURN_IF_ERROR(ReadConstantInt32(c, op, 4, "strides", rank, &strides));
  SliceBox& box = data->box;
  box.rank = rank;
  int64_t elements = 1;
  for (int d = 0; d < rank; ++d) {
    if (strides[d] == 0) return c.Fail("%s: stride of dimension %d is 0", op, d);
    const bool shrink = (data->shrink_axis_mask >> d) & 1;
    const SliceAxis a = ref::ResolveSliceAxis(
        dx.shape.dims[d], begin[d], end[d], strides[d],
        (data->begin_mask >> d) & 1, (data->end_mask >> d) & 1, shrink);
    if (shrink && a.count != 1)
      return c.Fail("%s: dimension %d is shrunk to no element", op, d);
    box.begin[d] = a.start;
    box.stride[d] = a.stride;
    box.count[d] = a.count;
    elements *= a.count;
  }
  return CheckElements(c, op, "y/grad", dy, elements);
}

Status StridedSliceGradEval(EvalContext& c) {
  if (!TrainMode(c)) return Status::kOk;
  const auto* data = static_cast<const StridedSliceGradData*>(c.OpData());
  StridedSliceGrad(data->box, c.Input<float>(1), c.OutputShape(0),
                   c.Output<float>(0));
  return Status::kOk;
}

}  // namespace

extern const OpKernel kConcatenationGradKernel = {
    -1,
    kConcatenationGrad,
    ConcatenationGradInit,
    ConcatenationGradPrepare,
    ConcatenationGradEval,
    nullptr};

extern const OpKernel kTransposeGradKernel = {
    -1,
    kTransposeGrad,
    InitOpData<TransposeGradData>,
    TransposeGradPrepare,
    TransposeGradEval,
    nullptr};

extern const OpKernel kStridedSliceGradKernel = {
    -1,
    kStridedSliceGrad,
    StridedSliceGradInit,
    StridedSliceGradPrepare,
    StridedSliceGradEval,
    nullptr};

}  // namespace tflm_train
