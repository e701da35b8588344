// The standalone runtime: runs a (training) .tflite without TFLM, on x86
// (tests, the Python host simulator) and on Cortex-M.
//
// Memory: one caller-provided arena. Persistent data (tensor and operator
// records, op data, variable tensors) is taken from the arena's end; the
// planned region (activations, gradients, scratch) from its start, laid out
// offline by the greedy planner. Constant tensors stay in the model (flash).
#ifndef TFLM_TRAIN_RUNTIME_INTERPRETER_H_
#define TFLM_TRAIN_RUNTIME_INTERPRETER_H_

#include <cstdarg>
#include <cstddef>
#include <cstdint>

#include "ops_cc/core/shape.h"
#include "ops_cc/core/status.h"
#include "ops_cc/ops/kernel_context.h"
#include "ops_cc/runtime/error_reporter.h"
#include "ops_cc/runtime/model.h"

namespace tflm_train {

// Optional per-operator timing hook (host benchmarks); the runtime itself
// has no clock.
class OpProfiler {
 public:
  virtual ~OpProfiler() = default;
  virtual void BeginOp(int op) = 0;
  virtual void EndOp(int op) = 0;
};

class Interpreter {
 public:
  // `model` must be 8-byte aligned and outlive the interpreter.
  Interpreter(const uint8_t* model, size_t model_size, uint8_t* arena,
              size_t arena_size);
  Interpreter(const Interpreter&) = delete;
  Interpreter& operator=(const Interpreter&) = delete;

  // Debugging/testing: keep every planned tensor alive for the whole
  // Invoke (no memory reuse), so all intermediates can be read afterwards,
  // like TFLM's kPreserveAllTensors. Call before AllocateTensors.
  void set_preserve_all_tensors(bool preserve) { preserve_all_tensors_ = preserve; }

  // Called around every operator's Eval while set (null to stop).
  void set_profiler(OpProfiler* profiler) { profiler_ = profiler; }

  // Parses and validates the model, prepares every op and plans the arena.
  Status AllocateTensors();
  // Runs every operator of subgraph 0 once.
  Status Invoke();
  // Sets variables to their zero point and resets stateful ops (the next
  // Invoke re-initialises trainable variables from their initialisers).
  Status Reset();

  // The last error as one line ("operator 7 (CONV_2D): ...").
  const char* error_message() const { return error_.message(); }

  const Model& model() const { return model_; }
  int num_tensors() const { return model_.num_tensors(); }
  int num_operators() const { return model_.num_operators(); }

  // Tensor access (valid after AllocateTensors).
  void* tensor_data(int index) const;
  size_t tensor_bytes(int index) const;
  DataType tensor_type(int index) const;
  Shape tensor_shape(int index) const;
  bool tensor_is_variable(int index) const;
  // The tensor whose buffer tensor `index` was placed over (an in-place
  // op's output), or -1.
  int tensor_buffer_owner(int index) const;
  // Copies `bytes` into tensor `index`; kBadInput if type or size differ.
  Status SetTensor(int index, DataType type, const void* data, size_t bytes);

  // Memory figures (valid after AllocateTensors).
  size_t planned_bytes() const { return planned_bytes_; }
  size_t persistent_bytes() const { return arena_size_ - tail_; }
  size_t variable_bytes() const { return variable_bytes_; }
  // The arena this model needs: persistent data plus the planned region, or
  // the planner's work arrays where those are larger (tiny models: many
  // small buffers). An arena of this size allocates.
  size_t arena_used_bytes() const {
    return (planned_bytes_ > plan_work_bytes_ ? planned_bytes_ : plan_work_bytes_) +
           persistent_bytes();
  }
  // Bytes of the planned region alive while operator `op` runs.
  size_t LiveBytesAt(int op) const;
  // Bytes of operator `op`'s own scratch buffers (part of LiveBytesAt).
  size_t ScratchBytesAt(int op) const;
  // Name of operator `op` ("CONV_2D" or the custom name).
  const char* OperatorName(int op) const;

 private:
  struct TensorRecord;
  struct OpRecord;
  struct ScratchRecord;
  struct AliasRecord;
  class InitContextImpl;
  class PrepareContextImpl;
  class EvalContextImpl;

  void* AllocatePersistent(size_t bytes);
  Status LoadTensors();
  Status LoadOperators();
  Status PrepareOperators();
  bool ShareInputBuffer(int op, int input_tensor, int output_tensor);
  int AliasRoot(int tensor) const;
  Status PlanArena();
  void ResetVariables();
  Status OpErrorV(int op, const char* format, va_list args);
  Status OpError(int op, const char* format, ...);

  const uint8_t* model_data_;
  size_t model_size_;
  uint8_t* arena_;
  size_t arena_size_;
  size_t tail_;  // persistent data occupies [tail_, arena_size_)

  Model model_;
  ErrorReporter error_;
  TensorRecord* tensors_ = nullptr;
  OpRecord* ops_ = nullptr;
  ScratchRecord* scratch_ = nullptr;
  AliasRecord* aliases_ = nullptr;  // outputs placed over an input's buffer
  int num_scratch_ = 0;
  int scratch_capacity_ = 0;
  size_t planned_bytes_ = 0;
  size_t plan_work_bytes_ = 0;  // the planner's temporary arrays
  size_t variable_bytes_ = 0;
  bool allocated_ = false;
  bool preserve_all_tensors_ = false;
  OpProfiler* profiler_ = nullptr;
};

}  // namespace tflm_train

#endif  // TFLM_TRAIN_RUNTIME_INTERPRETER_H_
