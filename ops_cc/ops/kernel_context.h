// The small interface every op wrapper is written against.
//
// It mirrors TFLM's two-phase kernel life cycle so that the same wrapper runs
// under TFLM (ops_cc/tflm/, over MicroContext and kernel_util) and under the
// project's standalone runtime (ops_cc/runtime/):
//   Init(options)      -> op-private state pointer (may be null)
//   Prepare(context)   -> validates tensors, fills op data, requests scratch.
//                         Quantization parameters are only visible here.
//   Eval(context)      -> raw data pointers, shapes and scratch buffers only.
//   Reset(op data)     -> called when the interpreter resets its variables.
// Wrappers must not rely on anything else a host might offer.
#ifndef TFLM_TRAIN_OPS_KERNEL_CONTEXT_H_
#define TFLM_TRAIN_OPS_KERNEL_CONTEXT_H_

#include <cstddef>
#include <cstdint>

#include "ops_cc/core/shape.h"
#include "ops_cc/core/status.h"

namespace tflm_train {

// Quantization of one tensor: real = scale * (q - zero_point). `count` is 1
// for per-tensor quantization, the channel count for per-channel, 0 if the
// tensor is not quantized.
//
// `scales` stay valid for the interpreter's lifetime, so op data may keep
// the pointer instead of a copy: they point into the model's scale vector
// (standalone runtime), and under TFLM TfLiteAffineQuantization::scale is
// that vector reinterpreted, for temporary tensors too (micro_allocator.cc,
// InitializeTfLiteTensorFromFlatbuffer -> FlatBufferVectorToTfLiteTypeArray;
// the model outlives the interpreter). `zero_points` are copies, valid only
// until Prepare returns.
struct QuantParams {
  const float* scales = nullptr;
  const int32_t* zero_points = nullptr;
  int count = 0;
  int quantized_dimension = 0;
};

// What Prepare may learn about a tensor.
struct TensorDesc {
  DataType type = DataType::kFloat32;
  Shape shape;
  QuantParams quant;
  bool is_variable = false;  // lives in persistent RAM, kernels may update it
  bool is_constant = false;  // points into the model (flash): never written
};

class InitContext {
 public:
  virtual ~InitContext() = default;
  // Raw custom_options bytes (a flexbuffer map); null/0 for builtins.
  virtual const uint8_t* CustomOptions() const = 0;
  virtual size_t CustomOptionsSize() const = 0;
  // Persistent memory for the lifetime of the interpreter; null on failure.
  virtual void* AllocatePersistent(size_t bytes) = 0;
};

class PrepareContext {
 public:
  virtual ~PrepareContext() = default;
  virtual int NumInputs() const = 0;
  virtual int NumOutputs() const = 0;
  // False when the slot is absent (index -1 in the model) or out of range.
  virtual bool HasInput(int i) const = 0;
  virtual bool HasOutput(int i) const = 0;
  virtual Status Input(int i, TensorDesc* desc) = 0;
  virtual Status Output(int i, TensorDesc* desc) = 0;
  // Data of a constant input (e.g. PAD paddings), null otherwise.
  virtual const void* ConstantInputData(int i) = 0;
  // The op's parsed builtin options (standalone runtime only, see
  // ops_cc/ops/builtin_options.h) or null for custom ops.
  virtual const void* BuiltinOptions() const = 0;
  virtual void* OpData() = 0;
  // Persistent memory for the lifetime of the interpreter; null on failure.
  virtual void* AllocatePersistent(size_t bytes) = 0;
  // Scratch memory valid during this op's Eval, fetched by index there.
  virtual Status RequestScratch(size_t bytes, int* index) = 0;
  // Asks that output `output` be placed over input `input`'s buffer (the
  // op then computes in place, e.g. a depthwise convolution writing output
  // rows over consumed input rows). True only where the runtime can: the
  // input is a planned tensor that no later op reads and the output is no
  // larger. The standalone runtime grants it (docs/architecture.md, "The
  // standalone runtime"); TFLM's planner cannot express it, so its adapter
  // keeps this default.
  virtual bool ShareInputBuffer(int input, int output) {
    (void)input;
    (void)output;
    return false;
  }
  // Reports a one-line error naming the op; returns kError for convenience.
  virtual Status Fail(const char* format, ...) = 0;
};

class EvalContext {
 public:
  virtual ~EvalContext() = default;
  // Null when the slot is absent.
  virtual void* InputData(int i) = 0;
  virtual void* OutputData(int i) = 0;
  virtual Shape InputShape(int i) = 0;
  virtual Shape OutputShape(int i) = 0;
  virtual void* Scratch(int index) = 0;
  virtual void* OpData() = 0;
  virtual Status Fail(const char* format, ...) = 0;

  template <typename T>
  T* Input(int i) {
    return static_cast<T*>(InputData(i));
  }
  template <typename T>
  T* Output(int i) {
    return static_cast<T*>(OutputData(i));
  }
};

// One operator implementation.
struct OpKernel {
  // Builtin operator code, or -1 for a custom op.
  int builtin_code;
  // Custom op name (null for builtins).
  const char* custom_name;
  // Returns the op data (from context.AllocatePersistent) or null; a null
  // return from an op that needs data makes Prepare fail.
  void* (*init)(InitContext& context);
  Status (*prepare)(PrepareContext& context);
  Status (*eval)(EvalContext& context);
  // Called when the interpreter resets variables (may be null).
  void (*reset)(void* op_data);
};

}  // namespace tflm_train

#endif  // TFLM_TRAIN_OPS_KERNEL_CONTEXT_H_
