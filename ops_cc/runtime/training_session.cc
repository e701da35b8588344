#include "ops_cc/runtime/training_session.h"

#include <cstring>

#include "ops_cc/core/float_math.h"
#include "ops_cc/core/sha256.h"

namespace tflm_train {
namespace {

constexpr char kMetadataName[] = "tflm_train.training_info";
constexpr int32_t kTrainMode = 1, kInferMode = 0;

// Field slots of schema/training_info.fbs (declaration order).
namespace slot {
constexpr int kFormatVersion = 0, kTrainables = 1, kInput = 3, kLabel = 4,
              kMode = 5, kLogits = 6, kLoss = 7, kHparams = 8, kRng = 9,
              kNumClasses = 10, kLossFunction = 14, kRealOutput = 15,
              kOutputRange = 16, kOutputRangeInitializer = 17, kStep = 18,
              kOptimizerState = 19, kOptimizerStateKinds = 20;
constexpr int kTrainableVariable = 0, kTrainableInitializer = 1,
              kTrainableKind = 2;
}  // namespace slot

constexpr int8_t kKindWeight = 0, kKindBias = 1;
constexpr size_t kAllFinite = static_cast<size_t>(-1);

// Index of the first NaN or infinity in values[0, n), or kAllFinite.
size_t FirstNonFinite(const float* values, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (!IsFinite(values[i])) return i;
  return kAllFinite;
}
constexpr int8_t kCrossEntropy = 0, kMeanAbsoluteError = 2;
constexpr int8_t kStateStepCounter = 0, kStateImprintCounts = 3,
                 kStateImprintSums = 4;

}  // namespace

TrainingSession::TrainingSession(const uint8_t* model, size_t model_size,
                                 uint8_t* arena, size_t arena_size)
    : interpreter_(model, model_size, arena, arena_size) {}

Status TrainingSession::FromInterpreter(Status status) {
  if (status == Status::kOk) return status;
  return error_.Report(status, "%s", interpreter_.error_message());
}

Status TrainingSession::ValidateTensor(const char* what, int index,
                                       DataType type, Role role) {
  if (index < 0 || index >= interpreter_.num_tensors())
    return error_.Report(Status::kMalformedModel, "training info: %s tensor %d out of range [0, %d)", what, index, interpreter_.num_tensors());
  if (interpreter_.tensor_type(index) != type)
    return error_.Report(Status::kMalformedModel, "training info: %s tensor %d is %s, expected %s", what, index, DataTypeName(interpreter_.tensor_type(index)), DataTypeName(type));
  TensorMeta meta;
  if (interpreter_.model().ReadTensor(index, &meta) != Status::kOk)
    return error_.Report(Status::kMalformedModel, "training info: %s tensor %d is invalid", what, index);
  const bool is_constant = meta.data != nullptr;
  const bool is_variable = interpreter_.tensor_is_variable(index);
  switch (role) {
    case Role::kVariable:
      if (!is_variable)
        return error_.Report(Status::kMalformedModel, "training info: %s tensor %d is not a variable", what, index);
      break;
    case Role::kConstant:
      if (!is_constant)
        return error_.Report(Status::kMalformedModel, "training info: %s tensor %d is not a constant", what, index);
      break;
    case Role::kWritable:
      if (is_constant || interpreter_.tensor_data(index) == nullptr)
        return error_.Report(Status::kMalformedModel, "training info: %s tensor %d is constant or not used by the graph", what, index);
      break;
  }
  return Status::kOk;
}

Status TrainingSession::Init() {
  error_.Clear();
  if (initialized_)
    return error_.Report(Status::kError, "TrainingSession::Init called twice");
  TT_RETURN_IF_ERROR(FromInterpreter(interpreter_.AllocateTensors()));

  size_t size = 0;
  const uint8_t* meta = interpreter_.model().Metadata(kMetadataName, &size);
  if (meta == nullptr)
    return error_.Report(Status::kMalformedModel, "model has no %s metadata (not a training model)", kMetadataName);
  if (size < 8 || memcmp(meta + 4, "TFTR", 4) != 0)
    return error_.Report(Status::kMalformedModel, "training info: file identifier is not TFTR");
  // Vectors inside are read in place and must be aligned in memory.
  if (reinterpret_cast<uintptr_t>(meta) % 4 != 0)
    return error_.Report(Status::kMalformedModel, "training info: metadata buffer is not 4-byte aligned");
  const FbTable info = FbTable::Root(meta, size);
  if (!info.valid())
    return error_.Report(Status::kMalformedModel, "training info: root table is invalid or truncated");

  const uint32_t version = info.Scalar<uint32_t>(slot::kFormatVersion, 0);
  if (version != kFormatVersion)
    return error_.Report(Status::kMalformedModel, "training info: format version %u is not supported (this runtime reads version %u): convert the inference model again", version, kFormatVersion);

  if (info.Has(slot::kTrainables)) {
    trainables_ = info.Vector(slot::kTrainables, 4);
    if (!trainables_.valid())
      return error_.Report(Status::kMalformedModel, "training info: trainables vector is invalid");
  }
  trainable_bytes_ = 0;
  for (uint32_t i = 0; i < trainables_.length(); ++i) {
    const FbTable t = trainables_.TableAt(i);
    if (!t.valid())
      return error_.Report(Status::kMalformedModel, "training info: trainable %u is invalid", i);
    const int8_t kind = t.Scalar<int8_t>(slot::kTrainableKind, kKindWeight);
    if (kind != kKindWeight && kind != kKindBias)
      return error_.Report(Status::kMalformedModel, "training info: trainable %u has unknown kind %d", i, kind);
    const DataType type = kind == kKindWeight ? DataType::kInt8 : DataType::kInt32;
    const int variable = t.Scalar<int32_t>(slot::kTrainableVariable, 0);
    const int initializer = t.Scalar<int32_t>(slot::kTrainableInitializer, 0);
    TT_RETURN_IF_ERROR(ValidateTensor("trainable variable", variable, type, Role::kVariable));
    TT_RETURN_IF_ERROR(ValidateTensor("trainable initializer", initializer, type, Role::kConstant));
    if (interpreter_.tensor_bytes(variable) != interpreter_.tensor_bytes(initializer))
      return error_.Report(Status::kMalformedModel, "training info: trainable %u: variable %d has %zu bytes, initializer %d has %zu", i, variable, interpreter_.tensor_bytes(variable), initializer, interpreter_.tensor_bytes(initializer));
    trainable_bytes_ += interpreter_.tensor_bytes(variable);
  }

  // Absent scalars take the schema's default, 0.
  input_ = info.Scalar<int32_t>(slot::kInput, 0);
  label_ = info.Scalar<int32_t>(slot::kLabel, 0);
  mode_ = info.Scalar<int32_t>(slot::kMode, 0);
  loss_ = info.Scalar<int32_t>(slot::kLoss, 0);
  const int logits = info.Scalar<int32_t>(slot::kLogits, 0);
  const int hparams = info.Scalar<int32_t>(slot::kHparams, 0);
  const int rng = info.Scalar<int32_t>(slot::kRng, 0);
  const DataType input_type =
      input_ >= 0 && input_ < interpreter_.num_tensors() &&
              interpreter_.tensor_type(input_) == DataType::kFloat32
          ? DataType::kFloat32
          : DataType::kInt8;
  const Role writable = Role::kWritable;
  const int8_t loss_function = info.Scalar<int8_t>(slot::kLossFunction, kCrossEntropy);
  if (loss_function < kCrossEntropy || loss_function > kMeanAbsoluteError)
    return error_.Report(Status::kMalformedModel, "training info: unknown loss_function %d", loss_function);
  classification_ = loss_function == kCrossEntropy;
  real_output_ = info.Scalar<int32_t>(slot::kRealOutput, 0);
  const int range = info.Scalar<int32_t>(slot::kOutputRange, 0);
  rng_ = rng;
  output_range_ = range;
  const int range_init = info.Scalar<int32_t>(slot::kOutputRangeInitializer, 0);
  TT_RETURN_IF_ERROR(ValidateTensor("input", input_, input_type, writable));
  TT_RETURN_IF_ERROR(ValidateTensor(classification_ ? "label" : "target", label_, classification_ ? DataType::kInt32 : DataType::kFloat32, writable));
  TT_RETURN_IF_ERROR(ValidateTensor("mode", mode_, DataType::kInt32, writable));
  TT_RETURN_IF_ERROR(ValidateTensor("loss", loss_, DataType::kFloat32, writable));
  TT_RETURN_IF_ERROR(ValidateTensor("logits", logits, DataType::kInt8, writable));
  TT_RETURN_IF_ERROR(ValidateTensor("real output", real_output_, DataType::kFloat32, writable));
  TT_RETURN_IF_ERROR(ValidateTensor("output range", range, DataType::kFloat32, Role::kVariable));
  TT_RETURN_IF_ERROR(ValidateTensor("output range initializer", range_init, DataType::kFloat32, Role::kConstant));
  TT_RETURN_IF_ERROR(ValidateTensor("hparams", hparams, DataType::kFloat32, Role::kConstant));
  if (rng != -1)
    TT_RETURN_IF_ERROR(ValidateTensor("rng", rng, DataType::kInt32, Role::kVariable));
  const size_t output_elements = interpreter_.tensor_bytes(real_output_) / sizeof(float);
  if (interpreter_.tensor_bytes(mode_) != 4 || interpreter_.tensor_bytes(loss_) != 4 ||
      interpreter_.tensor_bytes(hparams) != 8 || interpreter_.tensor_bytes(range) != 8 ||
      interpreter_.tensor_bytes(range_init) != 8)
    return error_.Report(Status::kMalformedModel, "training info: mode and loss must have one element, hparams and the output range two");
  if (interpreter_.tensor_bytes(label_) != (classification_ ? 4 : output_elements * sizeof(float)))
    return error_.Report(Status::kMalformedModel, "training info: the %s must have %zu elements", classification_ ? "label" : "target", classification_ ? size_t{1} : output_elements);
  target_elements_ = classification_ ? 1 : output_elements;

  num_classes_ = info.Scalar<int32_t>(slot::kNumClasses, 0);
  const Shape logits_shape = interpreter_.tensor_shape(logits);
  if (classification_ &&
      (num_classes_ < 2 || logits_shape.rank == 0 ||
       logits_shape.Last() != num_classes_ ||
       logits_shape.FlatSize() != num_classes_ ||
       output_elements != static_cast<size_t>(num_classes_)))
    return error_.Report(Status::kMalformedModel, "training info: num_classes %d does not match the logits' shape", num_classes_);
  if (!classification_ && num_classes_ != 0)
    return error_.Report(Status::kMalformedModel, "training info: num_classes must be 0 for a regression loss, got %d", num_classes_);

  // Optimizer state: the step counter, mini-batch accumulators, momentum
  // velocities, imprinting sums (StateKind in the schema).
  const int step = info.Scalar<int32_t>(slot::kStep, 0);
  TT_RETURN_IF_ERROR(ValidateTensor("step", step, DataType::kInt32, Role::kVariable));
  if (interpreter_.tensor_bytes(step) != 4)
    return error_.Report(Status::kMalformedModel, "training info: step must have one element");
  optimizer_state_ = FbVector();
  optimizer_state_kinds_ = FbVector();
  if (info.Has(slot::kOptimizerState)) {
    optimizer_state_ = info.Vector(slot::kOptimizerState, 4);
    optimizer_state_kinds_ = info.Vector(slot::kOptimizerStateKinds, 1);
    if (!optimizer_state_.valid() || !optimizer_state_kinds_.valid() ||
        optimizer_state_kinds_.length() != optimizer_state_.length())
      return error_.Report(Status::kMalformedModel, "training info: optimizer_state and its kinds are invalid or differ in length");
  }
  for (uint32_t i = 0; i < optimizer_state_.length(); ++i) {
    const int8_t kind = optimizer_state_kinds_.Get<int8_t>(i);
    if (kind < kStateStepCounter || kind > kStateImprintSums)
      return error_.Report(Status::kMalformedModel, "training info: optimizer state %u has unknown kind %d", i, kind);
    const bool is_int = kind == kStateStepCounter || kind == kStateImprintCounts;
    TT_RETURN_IF_ERROR(ValidateTensor("optimizer state", optimizer_state_.Get<int32_t>(i), is_int ? DataType::kInt32 : DataType::kFloat32, Role::kVariable));
  }

  if (interpreter_.model().num_outputs() == 0)
    return error_.Report(Status::kMalformedModel, "model has no outputs");
  output_ = interpreter_.model().output(0);
  initialized_ = true;
  invoked_ = false;
  return Status::kOk;
}

Status TrainingSession::Step(DataType type, const void* input, size_t bytes,
                             const void* target, size_t target_elements,
                             int32_t mode, float* loss) {
  error_.Clear();
  if (!initialized_)
    return error_.Report(Status::kError, "training session used before Init succeeded");
  if (target_elements != target_elements_)
    return error_.Report(Status::kBadInput, "this model's loss needs %s", classification_ ? "a class label" : "a float target per output element");
  if (classification_ && mode == kTrainMode) {
    int32_t label = 0;
    memcpy(&label, target, sizeof(label));
    if (label < 0 || label >= num_classes_)
      return error_.Report(Status::kBadInput, "label %d out of range [0, %d)", static_cast<int>(label), num_classes_);
  }
  // A NaN sample would quantize to the zero point and train silently.
  if (type == DataType::kFloat32) {
    const size_t bad = FirstNonFinite(static_cast<const float*>(input), bytes / sizeof(float));
    if (bad != kAllFinite)
      return error_.Report(Status::kBadInput, "sample element %zu is not finite", bad);
  }
  if (!classification_) {
    const size_t bad = FirstNonFinite(static_cast<const float*>(target), target_elements);
    if (bad != kAllFinite)
      return error_.Report(Status::kBadInput, "target element %zu is not finite", bad);
  }
  const DataType target_type = classification_ ? DataType::kInt32 : DataType::kFloat32;
  TT_RETURN_IF_ERROR(FromInterpreter(interpreter_.SetTensor(input_, type, input, bytes)));
  TT_RETURN_IF_ERROR(FromInterpreter(interpreter_.SetTensor(label_, target_type, target, target_elements * 4)));
  TT_RETURN_IF_ERROR(FromInterpreter(interpreter_.SetTensor(mode_, DataType::kInt32, &mode, sizeof(mode))));
  TT_RETURN_IF_ERROR(FromInterpreter(interpreter_.Invoke()));
  invoked_ = true;
  if (loss != nullptr) memcpy(loss, interpreter_.tensor_data(loss_), sizeof(float));
  return Status::kOk;
}

Status TrainingSession::TrainStep(const int8_t* input, size_t bytes,
                                  int32_t label, float* loss) {
  return Step(DataType::kInt8, input, bytes, &label, 1, kTrainMode, loss);
}

Status TrainingSession::TrainStep(const float* input, size_t bytes,
                                  int32_t label, float* loss) {
  return Step(DataType::kFloat32, input, bytes, &label, 1, kTrainMode, loss);
}

Status TrainingSession::InferStep(const int8_t* input, size_t bytes,
                                  int32_t label, float* loss) {
  return Step(DataType::kInt8, input, bytes, &label, 1, kInferMode, loss);
}

Status TrainingSession::InferStep(const float* input, size_t bytes,
                                  int32_t label, float* loss) {
  return Step(DataType::kFloat32, input, bytes, &label, 1, kInferMode, loss);
}

Status TrainingSession::TrainStep(const int8_t* input, size_t bytes,
                                  const float* target, size_t target_elements,
                                  float* loss) {
  return Step(DataType::kInt8, input, bytes, target, target_elements, kTrainMode, loss);
}

Status TrainingSession::TrainStep(const float* input, size_t bytes,
                                  const float* target, size_t target_elements,
                                  float* loss) {
  return Step(DataType::kFloat32, input, bytes, target, target_elements, kTrainMode, loss);
}

Status TrainingSession::InferStep(const int8_t* input, size_t bytes,
                                  const float* target, size_t target_elements,
                                  float* loss) {
  return Step(DataType::kInt8, input, bytes, target, target_elements, kInferMode, loss);
}

Status TrainingSession::InferStep(const float* input, size_t bytes,
                                  const float* target, size_t target_elements,
                                  float* loss) {
  return Step(DataType::kFloat32, input, bytes, target, target_elements, kInferMode, loss);
}

int TrainingSession::num_state_tensors() const {
  if (!initialized_) return 0;
  return static_cast<int>(trainables_.length()) + (rng_ >= 0 ? 1 : 0) + 1 +
         static_cast<int>(optimizer_state_.length());
}

uint8_t* TrainingSession::state_tensor(int i, size_t* bytes) {
  const int trainables = static_cast<int>(trainables_.length());
  const int range_at = trainables + (rng_ >= 0 ? 1 : 0);
  int index = -1;
  if (i >= 0 && i < trainables)
    index = trainables_.TableAt(static_cast<uint32_t>(i)).Scalar<int32_t>(slot::kTrainableVariable, 0);
  else if (i == trainables && rng_ >= 0)
    index = rng_;
  else if (i == range_at)
    index = output_range_;
  else if (i > range_at && i < num_state_tensors())
    index = optimizer_state_.Get<int32_t>(static_cast<uint32_t>(i - range_at - 1));
  if (index < 0 || !initialized_) {
    *bytes = 0;
    return nullptr;
  }
  *bytes = interpreter_.tensor_bytes(index);
  return static_cast<uint8_t*>(interpreter_.tensor_data(index));
}

Status TrainingSession::MaterializeState() {
  error_.Clear();
  if (!initialized_)
    return error_.Report(Status::kError, "training session used before Init succeeded");
  if (invoked_) return Status::kOk;
  // All-zero bytes: a valid int8 or float sample, label 0, float targets 0.
  memset(interpreter_.tensor_data(input_), 0, interpreter_.tensor_bytes(input_));
  memset(interpreter_.tensor_data(label_), 0, interpreter_.tensor_bytes(label_));
  const int32_t mode = kInferMode;
  TT_RETURN_IF_ERROR(FromInterpreter(interpreter_.SetTensor(mode_, DataType::kInt32, &mode, sizeof(mode))));
  TT_RETURN_IF_ERROR(FromInterpreter(interpreter_.Invoke()));
  invoked_ = true;
  return Status::kOk;
}

Status TrainingSession::Reset() {
  error_.Clear();
  if (!initialized_)
    return error_.Report(Status::kError, "training session used before Init succeeded");
  TT_RETURN_IF_ERROR(FromInterpreter(interpreter_.Reset()));
  invoked_ = false;
  return Status::kOk;
}

Status TrainingSession::WeightsSha256(uint8_t digest[32]) {
  error_.Clear();
  if (!initialized_)
    return error_.Report(Status::kError, "training session used before Init succeeded");
  Sha256 hash;
  for (uint32_t i = 0; i < trainables_.length(); ++i) {
    const FbTable t = trainables_.TableAt(i);
    const int index = t.Scalar<int32_t>(invoked_ ? slot::kTrainableVariable
                                                 : slot::kTrainableInitializer, 0);
    hash.Update(interpreter_.tensor_data(index), interpreter_.tensor_bytes(index));
  }
  hash.Finish(digest);
  return Status::kOk;
}

const int8_t* TrainingSession::output() const {
  if (!initialized_ || interpreter_.tensor_type(output_) != DataType::kInt8)
    return nullptr;
  return static_cast<const int8_t*>(interpreter_.tensor_data(output_));
}

size_t TrainingSession::output_bytes() const {
  return initialized_ ? interpreter_.tensor_bytes(output_) : 0;
}

int TrainingSession::PredictedClass() const {
  if (!initialized_ || !classification_) return -1;
  const auto* logits = static_cast<const float*>(interpreter_.tensor_data(real_output_));
  int best = 0;
  for (int i = 1; i < num_classes_; ++i)
    if (logits[i] > logits[best]) best = i;
  return best;
}

DataType TrainingSession::input_type() const {
  return interpreter_.tensor_type(input_);
}

size_t TrainingSession::input_bytes() const {
  return interpreter_.tensor_bytes(input_);
}

}  // namespace tflm_train
