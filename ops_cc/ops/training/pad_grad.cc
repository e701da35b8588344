#include "ops_cc/ops/training/training_kernels.h"

#include "ops_cc/kernels/grad/elementwise_grad.h"
#include "ops_cc/ops/op_util.h"

namespace tflm_train {
namespace {

constexpr char kPadGrad[] = "TFLMTRAIN_PAD_GRAD";

// ---- TFLMTRAIN_PAD_GRAD -----------------------------------------------------
// y/grad float32, or int8 with its scale as input 3 and x/grad then int8
// with the same scale as output 1.

struct PadGradData {
  int32_t pad_before[kMaxRank] = {0};
  bool int8 = false;
};

void* PadGradInit(InitContext& c) { return NewOpData<PadGradData>(c); }

Status PadGradPrepare(PrepareContext& c) {
  const char* op = kPadGrad;
  PadGradData* data = nullptr;
  TT_RETURN_IF_ERROR(GetOpData(c, op, &data));
  TT_RETURN_IF_ERROR(CheckMode(c, op, 0));
  TensorDesc dy, paddings, dx;
  TT_RETURN_IF_ERROR(ReadGradPair(c, op, 3, &dy, &dx, &data->int8));
  TT_RETURN_IF_ERROR(
      ReadInput(c, op, 2, "paddings", DataType::kInt32, &paddings));
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
  // An int8 gradient keeps y/grad's scale (input 3 -> output 1).
  PadGrad(c.InputShape(1), c.InputData(1),
          data->int8 ? 1 : static_cast<int>(sizeof(float)), data->pad_before,
          c.OutputShape(0), c.OutputData(0));
  if (data->int8) *c.Output<float>(1) = *c.Input<float>(3);
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
