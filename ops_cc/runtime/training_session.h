// A training driver over the standalone Interpreter: reads the model's
// `tflm_train.training_info` metadata (schema/training_info.fbs), feeds
// sample, label and mode, and runs one SGD step (or one inference) per call.
//
//   TrainingSession session(model, model_size, arena, arena_size);
//   if (session.Init() != Status::kOk) puts(session.error_message());
//   float loss;
//   session.TrainStep(sample, sample_bytes, label, &loss);
//   uint8_t digest[32];
//   session.WeightsSha256(digest);  // == tflm_train.Trainer.weights_sha256()
#ifndef TFLM_TRAIN_RUNTIME_TRAINING_SESSION_H_
#define TFLM_TRAIN_RUNTIME_TRAINING_SESSION_H_

#include <cstddef>
#include <cstdint>

#include "ops_cc/core/status.h"
#include "ops_cc/runtime/error_reporter.h"
#include "ops_cc/runtime/flatbuffer_reader.h"
#include "ops_cc/runtime/interpreter.h"

namespace tflm_train {

class TrainingSession {
 public:
  // The metadata format version this reader understands.
  static constexpr uint32_t kFormatVersion = 3;

  // Same requirements as Interpreter: `model` 8-byte aligned and alive for
  // the session's lifetime, `arena` 16-byte aligned.
  TrainingSession(const uint8_t* model, size_t model_size, uint8_t* arena,
                  size_t arena_size);
  TrainingSession(const TrainingSession&) = delete;
  TrainingSession& operator=(const TrainingSession&) = delete;

  // Allocates the interpreter and validates the metadata: version, tensor
  // indices in range, tensor types, sizes and kinds.
  Status Init();

  // One SGD step on one sample (mode 1); `loss` gets the loss before the
  // update. The label must be in [0, num_classes).
  Status TrainStep(const int8_t* input, size_t bytes, int32_t label, float* loss);
  Status TrainStep(const float* input, size_t bytes, int32_t label, float* loss);
  // Forward pass and loss (mode 0), weights unchanged; the loss is NaN for a
  // label outside [0, num_classes).
  Status InferStep(const int8_t* input, size_t bytes, int32_t label, float* loss);
  Status InferStep(const float* input, size_t bytes, int32_t label, float* loss);
  // The same for a regression loss (mean squared / absolute error): one
  // float target per output element.
  Status TrainStep(const int8_t* input, size_t bytes, const float* target,
                   size_t target_elements, float* loss);
  Status TrainStep(const float* input, size_t bytes, const float* target,
                   size_t target_elements, float* loss);
  Status InferStep(const int8_t* input, size_t bytes, const float* target,
                   size_t target_elements, float* loss);
  Status InferStep(const float* input, size_t bytes, const float* target,
                   size_t target_elements, float* loss);

  // Back to the weights stored in the model's initialisers.
  Status Reset();

  // SHA-256 over the raw bytes of every trainable tensor, in metadata order.
  // Before the first successful step (after Init or Reset) the variables
  // still hold zero points, so the initialisers are hashed instead.
  Status WeightsSha256(uint8_t digest[32]);

  // The model output of the last step (the inference model's output 0);
  // null when that output is not int8.
  const int8_t* output() const;
  size_t output_bytes() const;
  // Index of the largest real-valued logit of the last step (what the loss
  // read); -1 for a regression model or before Init.
  int PredictedClass() const;

  DataType input_type() const;
  size_t input_bytes() const;
  // 0 for a regression model.
  int num_classes() const { return num_classes_; }
  bool classification() const { return classification_; }
  // Float targets a regression step takes (1 for a classifier's label).
  size_t target_elements() const { return target_elements_; }
  int num_trainables() const { return static_cast<int>(trainables_.length()); }
  // Bytes of all trainable variables (the RAM the trained weights take).
  size_t trainable_bytes() const { return trainable_bytes_; }

  // The trained state a device persists: every trainable variable in
  // metadata order, then `rng` (with stochastic rounding), the output
  // range and the optimizer state (step counter, accumulators, velocities,
  // imprinting sums; metadata order). State tensor i's live data and byte size (valid after Init).
  int num_state_tensors() const;
  uint8_t* state_tensor(int i, size_t* bytes);
  // Runs the variable initialisation once (an infer step on a zero sample)
  // if no step ran since Init or Reset, so that state written into the
  // variables is not overwritten by their initialisers on the next step.
  Status MaterializeState();

  const Interpreter& interpreter() const { return interpreter_; }
  // Per-operator hook around every Eval of the steps that follow (null to
  // stop); see OpProfiler.
  void set_profiler(OpProfiler* profiler) { interpreter_.set_profiler(profiler); }
  // The last error as one line.
  const char* error_message() const { return error_.message(); }

 private:
  // What a tensor named by the metadata must be.
  enum class Role { kWritable, kVariable, kConstant };
  Status ValidateTensor(const char* what, int index, DataType type, Role role);
  Status Step(DataType type, const void* input, size_t bytes,
              const void* target, size_t target_elements, int32_t mode,
              float* loss);
  Status FromInterpreter(Status status);

  Interpreter interpreter_;
  ErrorReporter error_;
  FbVector trainables_;  // of Trainable tables, validated by Init
  FbVector optimizer_state_, optimizer_state_kinds_;  // validated by Init
  int input_ = -1, label_ = -1, mode_ = -1, loss_ = -1, output_ = -1;
  int real_output_ = -1;
  int rng_ = -1, output_range_ = -1;
  int num_classes_ = 0;
  bool classification_ = true;
  size_t target_elements_ = 1;  // 1 label, or one float per output element
  size_t trainable_bytes_ = 0;
  bool initialized_ = false;
  bool invoked_ = false;  // a step ran since Init or Reset
};

}  // namespace tflm_train

#endif  // TFLM_TRAIN_RUNTIME_TRAINING_SESSION_H_
