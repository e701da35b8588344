#include "ops_cc/ops/training/training_kernels.h"

#include "ops_cc/kernels/grad/elementwise_grad.h"
#include "ops_cc/ops/op_util.h"

namespace tflm_train {
namespace {

constexpr char kPadGrad[] = "TFLMTRAIN_PAD_GRAD";

// ---- TFLMTRAIN_PAD_GRAD -----------------------------------------------------

struct PadGradData {
  int32_t pad_before[kMaxRank] = {0};
};

void* PadGradInit(InitContext& c) { return NewOpData<PadGradData>(c); }

Status PadGradPrepare(PrepareContext& c) {
  const char* op = kPadGrad;
  PadGradData* data = nullptr;
  TT_RETURN_IF_ERROR(GetOpData(c, op, &data));
  TT_RETURN_IF_ERROR(CheckArity(c, op, 3, 1));
  TT_RETURN_IF_ERROR(CheckMode(c, op, 0));
  TensorDesc dy, paddings, dx;
  TT_RETURN_IF_ERROR(ReadInput(c, op, 1, "y/grad", DataType::kFloat32, &dy));
  TT_RETURN_IF_ERROR(
      ReadInput(c, op, 2, "paddings", DataType::kInt32, &paddings));
  TT_RETURN_IF_ERROR(ReadOutput(c, op, 0, "x/grad", DataType::kFloat32, &dx));
  const int rank = dx.shape.rank;
  if (dy.shape.rank != rank)
    return c.Fail("%s: y/grad and x/grad differ in rank", op);
  const auto* pads = static_cast<const int32_t*>(c.ConstantInputData(2));
  if (pads == nullptr || paddings.shape.rank != 2 ||
      paddings.shape.dims[0] != rank || paddings.shape.dims[1] != 2)
    return c.Fail("%s: paddings must be a constant int32 [%d, 2]", op, rank);
  for (int d = 0; d < rank; ++d) {
    const int32_t before = pads[2 * d];
    const int32_t after = pads[2 * d + 1];
    if (before < 0 || after < 0 ||
        static_cast<int64_t>(dx.shape.dims[d]) + before + after !=
            dy.shape.dims[d])
      return c.Fail("%s: dimension %d: x/grad %d + paddings %ld, %ld != "
                    "y/grad %d", op, d, static_cast<int>(dx.shape.dims[d]),
                    static_cast<long>(before), static_cast<long>(after),
                    static_cast<int>(dy.shape.dims[d]));
    data->pad_before[d] = before;
  }
  return Status::kOk;
}

Status PadGradEval(EvalContext& c) {
  if (!TrainMode(c)) return Status::kOk;
  const auto* data = static_cast<const PadGradData*>(c.OpData());
  PadGrad(c.InputShape(1), c.Input<float>(1), data->pad_before,
          c.OutputShape(0), c.Output<float>(0));
  return Status::kOk;
}

}  // namespace

extern const OpKernel kPadGradKernel = {
    -1,
    kPadGrad,
    PadGradInit,
    PadGradPrepare,
    PadGradEval,
    nullptr};

}  // namespace tflm_train
