#include "ops_cc/ops/training/training_kernels.h"

#include "ops_cc/kernels/grad/loss.h"
#include "ops_cc/ops/op_util.h"

namespace tflm_train {
namespace {

constexpr char kSoftmaxCrossEntropy[] = "TFLMTRAIN_SOFTMAX_CROSS_ENTROPY_V2";
constexpr char kMeanSquaredError[] = "TFLMTRAIN_MEAN_SQUARED_ERROR";
constexpr char kMeanAbsoluteError[] = "TFLMTRAIN_MEAN_ABSOLUTE_ERROR";

// ---- Losses: TFLMTRAIN_SOFTMAX_CROSS_ENTROPY_V2, TFLMTRAIN_MEAN_SQUARED_ERROR,
// ---- TFLMTRAIN_MEAN_ABSOLUTE_ERROR ------------------------------------------

enum class Loss { kCrossEntropy, kSquaredError, kAbsoluteError };

struct LossData {
  Loss loss = Loss::kCrossEntropy;
  int64_t count = 0;  // elements of the output (classes for cross-entropy)
};

void* LossInit(InitContext& c, Loss loss) {
  LossData* data = NewOpData<LossData>(c);
  if (data != nullptr) data->loss = loss;
  return data;
}
void* CrossEntropyInit(InitContext& c) {
  return LossInit(c, Loss::kCrossEntropy);
}
void* SquaredErrorInit(InitContext& c) {
  return LossInit(c, Loss::kSquaredError);
}
void* AbsoluteErrorInit(InitContext& c) {
  return LossInit(c, Loss::kAbsoluteError);
}

// Inputs: 0 the real-valued output (float32), 1 the label (int32 [1]) or
// target (float32, as many elements as the output), 2 mode. Outputs: 0 loss
// (float32 [1]), 1 (optional) the output's gradient.
Status LossPrepare(PrepareContext& c, const char* op) {
  LossData* data = nullptr;
  TT_RETURN_IF_ERROR(GetOpData(c, op, &data));
  TT_RETURN_IF_ERROR(CheckArity(c, op, 3, 1, 2));
  TensorDesc values, target, loss;
  TT_RETURN_IF_ERROR(ReadInput(c, op, 0, "output", DataType::kFloat32, &values));
  data->count = values.shape.FlatSize();
  if (data->loss == Loss::kCrossEntropy) {
    if (values.shape.rank < 1 || values.shape.FlatSizeSkipLast() != 1 ||
        values.shape.Last() < 2)
      return c.Fail("%s: logits must be [1, ..., C] with C >= 2", op);
    TT_RETURN_IF_ERROR(ReadInput(c, op, 1, "label", DataType::kInt32, &target));
    TT_RETURN_IF_ERROR(CheckElements(c, op, "label", target, 1));
  } else {
    if (data->count < 1) return c.Fail("%s: the output is empty", op);
    TT_RETURN_IF_ERROR(
        ReadInput(c, op, 1, "target", DataType::kFloat32, &target));
    TT_RETURN_IF_ERROR(CheckElements(c, op, "target", target, data->count));
  }
  TT_RETURN_IF_ERROR(CheckMode(c, op, 2));
  TT_RETURN_IF_ERROR(ReadOutput(c, op, 0, "loss", DataType::kFloat32, &loss));
  TT_RETURN_IF_ERROR(CheckElements(c, op, "loss", loss, 1));
  if (c.HasOutput(1)) {
    TensorDesc grad;
    TT_RETURN_IF_ERROR(
        ReadOutput(c, op, 1, "output/grad", DataType::kFloat32, &grad));
    TT_RETURN_IF_ERROR(
        CheckSameShape(c, op, "output/grad", grad, "output", values.shape));
  }
  return Status::kOk;
}

Status CrossEntropyPrepare(PrepareContext& c) {
  return LossPrepare(c, kSoftmaxCrossEntropy);
}
Status SquaredErrorPrepare(PrepareContext& c) {
  return LossPrepare(c, kMeanSquaredError);
}
Status AbsoluteErrorPrepare(PrepareContext& c) {
  return LossPrepare(c, kMeanAbsoluteError);
}

Status LossEval(EvalContext& c) {
  const auto* data = static_cast<const LossData*>(c.OpData());
  const bool train = *c.Input<int32_t>(2) != 0;
  float* grad = train ? c.Output<float>(1) : nullptr;
  const float* values = c.Input<float>(0);
  float loss = 0.0f;
  switch (data->loss) {
    case Loss::kCrossEntropy: {
      const int32_t label = *c.Input<int32_t>(1);
      const int classes = static_cast<int>(data->count);
      if (train && (label < 0 || label >= classes)) {
        c.Fail("%s: label %ld is outside [0, %d)", kSoftmaxCrossEntropy,
               static_cast<long>(label), classes);
        return Status::kBadInput;
      }
      loss = SoftmaxCrossEntropy(values, classes, label, grad);
      break;
    }
    case Loss::kSquaredError:
      loss = MeanSquaredError(values, c.Input<float>(1), data->count, grad);
      break;
    case Loss::kAbsoluteError:
      loss = MeanAbsoluteError(values, c.Input<float>(1), data->count, grad);
      break;
  }
  *c.Output<float>(0) = loss;
  return Status::kOk;
}

}  // namespace

extern const OpKernel kSoftmaxCrossEntropyKernel = {
    -1,
    kSoftmaxCrossEntropy,
    CrossEntropyInit,
    CrossEntropyPrepare,
    LossEval,
    nullptr};
extern const OpKernel kMeanSquaredErrorKernel = {
    -1,
    kMeanSquaredError,
    SquaredErrorInit,
    SquaredErrorPrepare,
    LossEval,
    nullptr};
extern const OpKernel kMeanAbsoluteErrorKernel = {
    -1,
    kMeanAbsoluteError,
    AbsoluteErrorInit,
    AbsoluteErrorPrepare,
    LossEval,
    nullptr};

}  // namespace tflm_train
