// The one fake host the C++ op tests run op wrappers on: tensors in plain
// vectors, and Init/Prepare/Eval contexts (ops_cc/ops/kernel_context.h) over
// them, with the error message of the last Fail.
#ifndef TFLM_TRAIN_TESTS_FAKE_CONTEXT_H_
#define TFLM_TRAIN_TESTS_FAKE_CONTEXT_H_

#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "ops_cc/core/shape.h"
#include "ops_cc/ops/forward_ops.h"
#include "ops_cc/ops/kernel_context.h"

namespace tflm_train {

struct FakeTensor {
  DataType type = DataType::kFloat32;
  Shape shape;
  std::vector<uint8_t> data;
  std::vector<float> scales;  // empty: not quantized
  std::vector<int32_t> zero_points;
  int quantized_dimension = 0;
  bool is_variable = false;
  bool is_constant = false;

  template <typename T>
  T* As() {
    return reinterpret_cast<T*>(data.data());
  }
};

template <typename T>
FakeTensor MakeTensor(DataType type, std::vector<int> dims,
                      std::vector<T> values = {}) {
  FakeTensor t;
  t.type = type;
  t.shape.rank = static_cast<int>(dims.size());
  for (size_t d = 0; d < dims.size(); ++d) t.shape.dims[d] = dims[d];
  t.data.resize(sizeof(T) * static_cast<size_t>(t.shape.FlatSize()));
  if (!values.empty()) std::memcpy(t.data.data(), values.data(), t.data.size());
  return t;
}

inline Shape MakeShape(std::initializer_list<int32_t> dims) {
  Shape s;
  for (int32_t d : dims) s.dims[s.rank++] = d;
  return s;
}

inline void Quantize(FakeTensor* t, std::vector<float> scales,
                     std::vector<int32_t> zero_points, int dimension = 0) {
  t->scales = std::move(scales);
  t->zero_points = std::move(zero_points);
  t->quantized_dimension = dimension;
}

// An int8 tensor quantized per tensor, zero-filled.
inline FakeTensor Int8Tensor(Shape shape, float scale, int32_t zero_point) {
  FakeTensor t;
  t.type = DataType::kInt8;
  t.shape = shape;
  t.data.resize(static_cast<size_t>(shape.FlatSize()));
  Quantize(&t, {scale}, {zero_point});
  return t;
}

template <typename T>
FakeTensor ConstTensor(DataType type, Shape shape, std::vector<T> values) {
  FakeTensor t;
  t.type = type;
  t.shape = shape;
  t.is_constant = true;
  t.data.resize(values.size() * sizeof(T));
  std::memcpy(t.data.data(), values.data(), t.data.size());
  return t;
}

// One operator: its inputs and outputs (null = absent), custom options
// (flexbuffer bytes) or builtin options.
class FakeOp : public InitContext, public PrepareContext, public EvalContext {
 public:
  std::vector<FakeTensor*> inputs, outputs;
  const void* builtin_options = nullptr;

  FakeOp() = default;
  FakeOp(std::vector<FakeTensor*> in, std::vector<FakeTensor*> out,
         const uint8_t* options = nullptr, size_t options_size = 0)
      : inputs(std::move(in)),
        outputs(std::move(out)),
        options_(options),
        options_size_(options_size) {}
  // Inputs and outputs by index into `table` (-1 = absent); the table must
  // not grow while the op lives.
  FakeOp(std::vector<FakeTensor>* table, const std::vector<int>& in,
         const std::vector<int>& out, const uint8_t* options = nullptr,
         size_t options_size = 0)
      : FakeOp(Pick(table, in), Pick(table, out), options, options_size) {}

  // Init and Prepare on the first call, then Eval (unless prepare_only):
  // op data persists across calls, as in an interpreter.
  Status Run(const OpKernel& kernel, bool prepare_only = false) {
    if (!initialized_) {
      op_data_ = kernel.init != nullptr ? kernel.init(*this) : nullptr;
      TT_RETURN_IF_ERROR(kernel.prepare(*this));
      initialized_ = true;
    }
    return prepare_only ? Status::kOk : kernel.eval(*this);
  }
  // A fresh Init, Prepare and Eval: for checking Prepare again after the
  // test changed a tensor or an option.
  Status RunFresh(const OpKernel& kernel) {
    initialized_ = false;
    return Run(kernel);
  }
  const std::string& error() const { return error_; }

  // InitContext.
  const uint8_t* CustomOptions() const override { return options_; }
  size_t CustomOptionsSize() const override { return options_size_; }
  void* AllocatePersistent(size_t bytes) override {
    persistent_.emplace_back((bytes + 7) / 8 + 1);
    return persistent_.back().data();
  }

  // PrepareContext.
  int NumInputs() const override { return static_cast<int>(inputs.size()); }
  int NumOutputs() const override { return static_cast<int>(outputs.size()); }
  bool HasInput(int i) const override {
    return i >= 0 && i < NumInputs() && inputs[i] != nullptr;
  }
  bool HasOutput(int i) const override {
    return i >= 0 && i < NumOutputs() && outputs[i] != nullptr;
  }
  Status Input(int i, TensorDesc* desc) override {
    if (!HasInput(i)) return Status::kError;
    Describe(*inputs[i], desc);
    return Status::kOk;
  }
  Status Output(int i, TensorDesc* desc) override {
    if (!HasOutput(i)) return Status::kError;
    Describe(*outputs[i], desc);
    return Status::kOk;
  }
  const void* ConstantInputData(int i) override {
    return HasInput(i) && inputs[i]->is_constant ? inputs[i]->data.data()
                                                 : nullptr;
  }
  const void* BuiltinOptions() const override { return builtin_options; }
  void* OpData() override { return op_data_; }
  Status RequestScratch(size_t bytes, int* index) override {
    scratch_.emplace_back((bytes + 7) / 8);
    *index = static_cast<int>(scratch_.size()) - 1;
    return Status::kOk;
  }
  Status Fail(const char* format, ...) override {
    char buffer[256];
    va_list args;
    va_start(args, format);
    vsnprintf(buffer, sizeof(buffer), format, args);
    va_end(args);
    error_ = buffer;
    return Status::kError;
  }

  // EvalContext.
  void* InputData(int i) override {
    return HasInput(i) ? inputs[i]->data.data() : nullptr;
  }
  void* OutputData(int i) override {
    return HasOutput(i) ? outputs[i]->data.data() : nullptr;
  }
  Shape InputShape(int i) override {
    return HasInput(i) ? inputs[i]->shape : Shape();
  }
  Shape OutputShape(int i) override {
    return HasOutput(i) ? outputs[i]->shape : Shape();
  }
  void* Scratch(int index) override { return scratch_[index].data(); }

 private:
  static std::vector<FakeTensor*> Pick(std::vector<FakeTensor>* table,
                                       const std::vector<int>& indices) {
    std::vector<FakeTensor*> out;
    for (int i : indices) out.push_back(i >= 0 ? &(*table)[i] : nullptr);
    return out;
  }
  static void Describe(const FakeTensor& t, TensorDesc* d) {
    *d = TensorDesc();
    d->type = t.type;
    d->shape = t.shape;
    d->is_variable = t.is_variable;
    d->is_constant = t.is_constant;
    if (!t.scales.empty()) {
      d->quant.scales = t.scales.data();
      d->quant.zero_points = t.zero_points.data();
      d->quant.count = static_cast<int>(t.scales.size());
      d->quant.quantized_dimension = t.quantized_dimension;
    }
  }

  const uint8_t* options_ = nullptr;
  size_t options_size_ = 0;
  std::vector<std::vector<uint64_t>> persistent_, scratch_;
  void* op_data_ = nullptr;
  bool initialized_ = false;
  std::string error_;
};

// Runs the standalone runtime's forward kernel of a builtin on a fresh op.
inline Status RunBuiltin(FakeOp& op, int builtin_code) {
  const OpKernel* kernel = FindForwardKernel(builtin_code);
  if (kernel == nullptr) return Status::kUnsupportedOp;
  return op.RunFresh(*kernel);
}

}  // namespace tflm_train

#endif  // TFLM_TRAIN_TESTS_FAKE_CONTEXT_H_
