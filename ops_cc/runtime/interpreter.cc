#include "ops_cc/runtime/interpreter.h"

#include <climits>
#include <cstdarg>
#include <cstdio>
#include <cstring>

#include "ops_cc/ops/forward_ops.h"
#include "ops_cc/ops/training_ops.h"
#include "ops_cc/runtime/memory_planner.h"

namespace tflm_train {

// kAlias: a planned tensor placed over another one's buffer (an op computing
// in place); its AliasRecord names the tensor that owns the buffer.
enum TensorKind : uint8_t { kUnused = 0, kPlanned, kConstant, kVariable, kAlias };

struct Interpreter::TensorRecord {
  uint8_t* data;
  const int32_t* dims;  // into the model
  uint32_t bytes;
  int16_t first_op;     // lifetime of planned tensors
  int16_t last_op;
  DataType type;
  uint8_t rank;
  uint8_t kind;
};

struct Interpreter::ScratchRecord {
  uint32_t bytes;
  uint32_t offset;
  uint8_t* data;
  ScratchRecord* next;
};

// Few (one per in-place op), so kept in a list instead of a field of every
// tensor record.
struct Interpreter::AliasRecord {
  int32_t tensor;
  int32_t owner;  // a kPlanned tensor
  AliasRecord* next;
};

struct Interpreter::OpRecord {
  const OpKernel* kernel;
  void* op_data;
  const BuiltinOptionsStorage* builtin_options;  // null for custom ops
  const int32_t* inputs;
  const int32_t* outputs;
  const uint8_t* custom_options;
  const char* name;
  ScratchRecord* scratch;  // list in request order
  uint32_t custom_options_size;
  uint16_t num_inputs;
  uint16_t num_outputs;
  uint8_t num_scratch;
};

namespace {
constexpr int kMaxScratchPerOp = 12;  // TFLM's limit, kept for portability
}

// ---------------------------------------------------------------------------
// Kernel contexts over the interpreter's records.

class Interpreter::InitContextImpl : public InitContext {
 public:
  InitContextImpl(Interpreter* interpreter, const OpRecord& op)
      : interpreter_(interpreter), op_(op) {}
  const uint8_t* CustomOptions() const override { return op_.custom_options; }
  size_t CustomOptionsSize() const override { return op_.custom_options_size; }
  void* AllocatePersistent(size_t bytes) override {
    return interpreter_->AllocatePersistent(bytes);
  }

 private:
  Interpreter* interpreter_;
  const OpRecord& op_;
};

class Interpreter::PrepareContextImpl : public PrepareContext {
 public:
  PrepareContextImpl(Interpreter* interpreter, int op_index)
      : interpreter_(interpreter),
        op_index_(op_index),
        op_(interpreter->ops_[op_index]) {}

  int NumInputs() const override { return op_.num_inputs; }
  int NumOutputs() const override { return op_.num_outputs; }
  bool HasInput(int i) const override {
    return i >= 0 && i < op_.num_inputs && op_.inputs[i] >= 0;
  }
  bool HasOutput(int i) const override {
    return i >= 0 && i < op_.num_outputs && op_.outputs[i] >= 0;
  }
  Status Input(int i, TensorDesc* desc) override {
    if (!HasInput(i)) return Fail("input %d is missing", i);
    return Describe(op_.inputs[i], desc);
  }
  Status Output(int i, TensorDesc* desc) override {
    if (!HasOutput(i)) return Fail("output %d is missing", i);
    return Describe(op_.outputs[i], desc);
  }
  const void* ConstantInputData(int i) override {
    if (!HasInput(i)) return nullptr;
    const TensorRecord& t = interpreter_->tensors_[op_.inputs[i]];
    return t.kind == kConstant ? t.data : nullptr;
  }
  const void* BuiltinOptions() const override { return op_.builtin_options; }
  void* OpData() override { return op_.op_data; }
  void* AllocatePersistent(size_t bytes) override {
    return interpreter_->AllocatePersistent(bytes);
  }
  Status RequestScratch(size_t bytes, int* index) override {
    if (op_.num_scratch >= kMaxScratchPerOp)
      return Fail("more than %d scratch buffers", kMaxScratchPerOp);
    if (bytes > 0x7fffffffu) return Fail("scratch request too large");
    auto* record = static_cast<ScratchRecord*>(
        interpreter_->AllocatePersistent(sizeof(ScratchRecord)));
    if (record == nullptr)
      return interpreter_->error_.Report(Status::kArenaTooSmall, "operator %d (%s): arena too small for scratch records", op_index_, op_.name);
    *record = ScratchRecord{static_cast<uint32_t>(bytes), 0, nullptr, nullptr};
    ScratchRecord** link = &op_.scratch;
    while (*link != nullptr) link = &(*link)->next;
    *link = record;
    *index = op_.num_scratch++;
    return Status::kOk;
  }
  bool ShareInputBuffer(int input, int output) override {
    return HasInput(input) && HasOutput(output) &&
           interpreter_->ShareInputBuffer(op_index_, op_.inputs[input],
                                          op_.outputs[output]);
  }
  Status Fail(const char* format, ...) override {
    va_list args;
    va_start(args, format);
    interpreter_->OpErrorV(op_index_, format, args);
    va_end(args);
    return Status::kError;
  }

 private:
  Status Describe(int t, TensorDesc* desc) {
    const TensorRecord& rec = interpreter_->tensors_[t];
    *desc = TensorDesc();
    desc->type = rec.type;
    desc->shape.rank = rec.rank;
    for (int d = 0; d < rec.rank; ++d) desc->shape.dims[d] = rec.dims[d];
    desc->is_variable = rec.kind == kVariable;
    desc->is_constant = rec.kind == kConstant;
    QuantMeta q;
    TT_RETURN_IF_ERROR(interpreter_->model_.ReadQuant(t, &q));
    if (q.count > 0) {
      // Zero points are int64 in the file; hand out an int32 copy that lives
      // in the (not yet planned) start of the arena until Prepare returns.
      const size_t need = sizeof(int32_t) * static_cast<size_t>(q.count);
      if (temp_used_ + need > interpreter_->tail_)
        return interpreter_->error_.Report(Status::kArenaTooSmall, "operator %d (%s): arena too small for quantization parameters", op_index_, op_.name);
      auto* zero_points =
          reinterpret_cast<int32_t*>(interpreter_->arena_ + temp_used_);
      temp_used_ += (need + 7) & ~static_cast<size_t>(7);
      for (int c = 0; c < q.count; ++c)
        zero_points[c] = static_cast<int32_t>(q.zero_points.Get<int64_t>(c));
      desc->quant.scales = q.scales;
      desc->quant.zero_points = zero_points;
      desc->quant.count = q.count;
      desc->quant.quantized_dimension = q.quantized_dimension;
    }
    return Status::kOk;
  }

  Interpreter* interpreter_;
  int op_index_;
  OpRecord& op_;
  size_t temp_used_ = 0;
};

class Interpreter::EvalContextImpl : public EvalContext {
 public:
  EvalContextImpl(Interpreter* interpreter, int op_index)
      : interpreter_(interpreter),
        op_index_(op_index),
        op_(interpreter->ops_[op_index]) {}

  void* InputData(int i) override {
    if (i < 0 || i >= op_.num_inputs || op_.inputs[i] < 0) return nullptr;
    return interpreter_->tensors_[op_.inputs[i]].data;
  }
  void* OutputData(int i) override {
    if (i < 0 || i >= op_.num_outputs || op_.outputs[i] < 0) return nullptr;
    return interpreter_->tensors_[op_.outputs[i]].data;
  }
  Shape InputShape(int i) override {
    if (i < 0 || i >= op_.num_inputs || op_.inputs[i] < 0) return Shape();
    return interpreter_->tensor_shape(op_.inputs[i]);
  }
  Shape OutputShape(int i) override {
    if (i < 0 || i >= op_.num_outputs || op_.outputs[i] < 0) return Shape();
    return interpreter_->tensor_shape(op_.outputs[i]);
  }
  void* Scratch(int index) override {
    ScratchRecord* s = op_.scratch;
    for (int k = 0; s != nullptr && k < index; ++k) s = s->next;
    return s != nullptr ? s->data : nullptr;
  }
  void* OpData() override { return op_.op_data; }
  Status Fail(const char* format, ...) override {
    va_list args;
    va_start(args, format);
    interpreter_->OpErrorV(op_index_, format, args);
    va_end(args);
    return Status::kError;
  }

 private:
  Interpreter* interpreter_;
  int op_index_;
  OpRecord& op_;
};

// ---------------------------------------------------------------------------

Interpreter::Interpreter(const uint8_t* model, size_t model_size,
                         uint8_t* arena, size_t arena_size)
    : model_data_(model),
      model_size_(model_size),
      arena_(arena),
      arena_size_(arena_size),
      tail_(arena_size) {}

Status Interpreter::OpErrorV(int op, const char* format, va_list args) {
  char detail[200];
  vsnprintf(detail, sizeof(detail), format, args);
  return error_.Report(Status::kError, "operator %d (%s): %s", op,
                       OperatorName(op), detail);
}

Status Interpreter::OpError(int op, const char* format, ...) {
  va_list args;
  va_start(args, format);
  const Status status = OpErrorV(op, format, args);
  va_end(args);
  return status;
}

const char* Interpreter::OperatorName(int op) const {
  if (ops_ == nullptr || op < 0 || op >= model_.num_operators()) return "?";
  return ops_[op].name;
}

void* Interpreter::AllocatePersistent(size_t bytes) {
  const size_t aligned = (bytes + 15) & ~static_cast<size_t>(15);
  // The planned region has not been laid out yet while persistent memory
  // is taken, so the only bound is the arena start.
  if (aligned > tail_ || arena_ == nullptr) return nullptr;
  // Keep the arena end 16-byte aligned relative to the arena pointer.
  tail_ = (tail_ - aligned) & ~static_cast<size_t>(15);
  return arena_ + tail_;
}

Status Interpreter::AllocateTensors() {
  if (allocated_)
    return error_.Report(Status::kError, "AllocateTensors called twice");
  error_.Clear();
  if (arena_ == nullptr || reinterpret_cast<uintptr_t>(arena_) % 16 != 0)
    return error_.Report(Status::kError, "arena must be non-null and 16-byte aligned");
  TT_RETURN_IF_ERROR(model_.Init(model_data_, model_size_, &error_));
  TT_RETURN_IF_ERROR(LoadTensors());
  TT_RETURN_IF_ERROR(LoadOperators());
  TT_RETURN_IF_ERROR(PrepareOperators());
  TT_RETURN_IF_ERROR(PlanArena());
  ResetVariables();
  allocated_ = true;
  return Status::kOk;
}

Status Interpreter::LoadTensors() {
  const int n = model_.num_tensors();
  tensors_ = static_cast<TensorRecord*>(
      AllocatePersistent(sizeof(TensorRecord) * static_cast<size_t>(n)));
  if (tensors_ == nullptr && n > 0)
    return error_.Report(Status::kArenaTooSmall, "arena of %zu bytes is too small for %d tensor records", arena_size_, n);
  for (int i = 0; i < n; ++i) {
    TensorMeta meta;
    TT_RETURN_IF_ERROR(model_.ReadTensor(i, &meta));
    TensorRecord& t = tensors_[i];
    t = TensorRecord{};
    t.dims = meta.dims;
    t.rank = static_cast<uint8_t>(meta.rank);
    t.type = meta.type;
    t.bytes = static_cast<uint32_t>(meta.bytes);
    t.first_op = SHRT_MAX;
    t.last_op = -1;
    if (meta.data != nullptr) {
      t.kind = kConstant;
      t.data = const_cast<uint8_t*>(meta.data);  // never written: see ops
    } else if (meta.is_variable) {
      t.kind = kVariable;
      t.data = static_cast<uint8_t*>(AllocatePersistent(meta.bytes));
      if (t.data == nullptr)
        return error_.Report(Status::kArenaTooSmall, "tensor %d '%s': arena too small for %zu bytes of variable", i, meta.name, meta.bytes);
      variable_bytes_ += meta.bytes;
    } else {
      t.kind = kUnused;  // becomes kPlanned when an op or the graph uses it
    }
  }
  return Status::kOk;
}

Status Interpreter::LoadOperators() {
  const int n = model_.num_operators();
  ops_ = static_cast<OpRecord*>(
      AllocatePersistent(sizeof(OpRecord) * static_cast<size_t>(n)));
  if (ops_ == nullptr && n > 0)
    return error_.Report(Status::kArenaTooSmall, "arena of %zu bytes is too small for %d operator records", arena_size_, n);
  for (int i = 0; i < n; ++i) {
    OperatorMeta meta;
    TT_RETURN_IF_ERROR(model_.ReadOperator(i, &meta));
    OpRecord& op = ops_[i];
    op = OpRecord{};
    if (meta.builtin_code == kBuiltinCustom) {
      op.name = meta.custom_name;
      op.kernel = FindTrainingKernel(meta.custom_name);
      if (op.kernel == nullptr)
        return error_.Report(Status::kUnsupportedOp, "operator %d: unknown custom operator '%s'", i, meta.custom_name);
    } else {
      op.name = BuiltinName(meta.builtin_code);
      op.kernel = FindForwardKernel(meta.builtin_code);
      if (op.kernel == nullptr)
        return error_.Report(Status::kUnsupportedOp, "operator %d: unsupported builtin operator %s (code %d)", i, op.name, meta.builtin_code);
      auto* options = static_cast<BuiltinOptionsStorage*>(
          AllocatePersistent(sizeof(BuiltinOptionsStorage)));
      if (options == nullptr)
        return error_.Report(Status::kArenaTooSmall, "operator %d (%s): arena too small", i, op.name);
      *options = meta.builtin_options;
      op.builtin_options = options;
    }
    op.inputs = meta.inputs;
    op.outputs = meta.outputs;
    op.num_inputs = static_cast<uint16_t>(meta.num_inputs);
    op.num_outputs = static_cast<uint16_t>(meta.num_outputs);
    op.custom_options = meta.custom_options;
    op.custom_options_size = static_cast<uint32_t>(meta.custom_options_size);

    // Lifetimes of the tensors this op touches.
    for (int k = 0; k < op.num_outputs; ++k) {
      const int t = op.outputs[k];
      if (t < 0) continue;
      TensorRecord& rec = tensors_[t];
      if (rec.bytes == 0)
        return error_.Report(Status::kMalformedModel, "operator %d (%s): output %d is tensor %d, which is empty (a zero dimension)", i, op.name, k, t);
      if (rec.kind == kConstant)
        return error_.Report(Status::kMalformedModel, "operator %d (%s): output %d is constant tensor %d", i, op.name, k, t);
      if (rec.kind == kVariable) continue;
      if (rec.kind == kPlanned && rec.first_op <= i)
        return error_.Report(Status::kMalformedModel, "operator %d (%s): tensor %d is written by more than one operator", i, op.name, t);
      rec.kind = kPlanned;
      rec.first_op = static_cast<int16_t>(i);
      if (rec.last_op < i) rec.last_op = static_cast<int16_t>(i);
    }
  }
  // Graph inputs exist before the first op, outputs after the last.
  for (int k = 0; k < model_.num_inputs(); ++k) {
    TensorRecord& rec = tensors_[model_.input(k)];
    if (rec.bytes == 0)
      return error_.Report(Status::kMalformedModel, "graph input tensor %d is empty (a zero dimension)", model_.input(k));
    if (rec.kind != kUnused && rec.kind != kPlanned) continue;
    if (rec.kind == kPlanned)
      return error_.Report(Status::kMalformedModel, "graph input tensor %d is also written by an operator", model_.input(k));
    rec.kind = kPlanned;
    rec.first_op = 0;
    rec.last_op = 0;
  }
  for (int i = 0; i < n; ++i) {
    const OpRecord& op = ops_[i];
    for (int k = 0; k < op.num_inputs; ++k) {
      const int t = op.inputs[k];
      if (t < 0) continue;
      TensorRecord& rec = tensors_[t];
      if (rec.bytes == 0)
        return error_.Report(Status::kMalformedModel, "operator %d (%s): input %d is tensor %d, which is empty (a zero dimension)", i, op.name, k, t);
      if (rec.kind == kConstant || rec.kind == kVariable) continue;
      if (rec.kind == kUnused || rec.first_op > i)
        return error_.Report(Status::kMalformedModel, "operator %d (%s): input tensor %d is read before any operator writes it", i, op.name, t);
      if (rec.last_op < i) rec.last_op = static_cast<int16_t>(i);
    }
  }
  for (int k = 0; k < model_.num_outputs(); ++k) {
    TensorRecord& rec = tensors_[model_.output(k)];
    if (rec.kind == kUnused)
      return error_.Report(Status::kMalformedModel, "graph output tensor %d is never written", model_.output(k));
    if (rec.kind == kPlanned) rec.last_op = static_cast<int16_t>(n);
  }
  return Status::kOk;
}

Status Interpreter::PrepareOperators() {
  for (int i = 0; i < model_.num_operators(); ++i) {
    OpRecord& op = ops_[i];
    if (op.kernel->init != nullptr) {
      InitContextImpl init_context(this, op);
      op.op_data = op.kernel->init(init_context);
    }
    if (op.kernel->prepare == nullptr) continue;
    PrepareContextImpl context(this, i);
    const Status status = op.kernel->prepare(context);
    if (status != Status::kOk) {
      // Kernels report through Fail(); make sure a message exists.
      OpError(i, "prepare failed");
      return status;
    }
  }
  return Status::kOk;
}

int Interpreter::AliasRoot(int tensor) const {
  for (const AliasRecord* a = aliases_; a != nullptr; a = a->next)
    if (a->tensor == tensor) return a->owner;
  return tensor;
}

bool Interpreter::ShareInputBuffer(int op, int input_tensor,
                                   int output_tensor) {
  if (preserve_all_tensors_ || input_tensor == output_tensor) return false;
  for (int k = 0; k < model_.num_inputs(); ++k)
    if (model_.input(k) == input_tensor) return false;  // the caller's data
  const TensorRecord& in = tensors_[input_tensor];
  TensorRecord& out = tensors_[output_tensor];
  // The input's last reader is this op, the output is first written here.
  if ((in.kind != kPlanned && in.kind != kAlias) || in.last_op != op ||
      out.kind != kPlanned || out.first_op != op || out.bytes > in.bytes)
    return false;
  auto* record = static_cast<AliasRecord*>(AllocatePersistent(sizeof(AliasRecord)));
  if (record == nullptr) return false;  // computes out of place instead
  const int owner = AliasRoot(input_tensor);
  *record = AliasRecord{output_tensor, owner, aliases_};
  aliases_ = record;
  out.kind = kAlias;
  // The owner's buffer now lives as long as the output.
  TensorRecord& root = tensors_[owner];
  if (root.last_op < out.last_op) root.last_op = out.last_op;
  return true;
}

Status Interpreter::PlanArena() {
  int count = 0;
  for (int t = 0; t < model_.num_tensors(); ++t)
    if (tensors_[t].kind == kPlanned) ++count;
  for (int i = 0; i < model_.num_operators(); ++i) count += ops_[i].num_scratch;

  // Planner work arrays live in the not-yet-used start of the arena.
  const size_t work = sizeof(PlannedBuffer) * count + sizeof(int) * count;
  plan_work_bytes_ = work;
  if (work > tail_)
    return error_.Report(Status::kArenaTooSmall, "arena too small to plan %d buffers", count);
  auto* buffers = reinterpret_cast<PlannedBuffer*>(arena_);
  int* order = reinterpret_cast<int*>(buffers + count);
  int b = 0;
  for (int t = 0; t < model_.num_tensors(); ++t) {
    const TensorRecord& rec = tensors_[t];
    if (rec.kind != kPlanned) continue;
    if (preserve_all_tensors_)
      buffers[b++] = PlannedBuffer{AlignUp(rec.bytes), 0, model_.num_operators(), 0};
    else
      buffers[b++] = PlannedBuffer{AlignUp(rec.bytes), rec.first_op, rec.last_op, 0};
  }
  for (int i = 0; i < model_.num_operators(); ++i)
    for (ScratchRecord* s = ops_[i].scratch; s != nullptr; s = s->next)
      buffers[b++] = PlannedBuffer{AlignUp(s->bytes), i, i, 0};

  planned_bytes_ = PlanMemory(buffers, count, order);
  if (planned_bytes_ > tail_)
    return error_.Report(Status::kArenaTooSmall, "arena too small: needs %zu bytes (%zu planned + %zu persistent), has %zu", planned_bytes_ + persistent_bytes(), planned_bytes_, persistent_bytes(), arena_size_);

  // Results out of the work arrays before the region is used for data.
  b = 0;
  for (int t = 0; t < model_.num_tensors(); ++t) {
    TensorRecord& rec = tensors_[t];
    if (rec.kind != kPlanned) continue;
    rec.data = arena_ + buffers[b++].offset;
  }
  for (int i = 0; i < model_.num_operators(); ++i)
    for (ScratchRecord* s = ops_[i].scratch; s != nullptr; s = s->next) {
      s->offset = buffers[b++].offset;
      s->data = arena_ + s->offset;
    }
  for (const AliasRecord* a = aliases_; a != nullptr; a = a->next)
    tensors_[a->tensor].data = tensors_[a->owner].data;
  return Status::kOk;
}

void Interpreter::ResetVariables() {
  // Variables start at their zero point, as TFLM does.
  for (int t = 0; t < model_.num_tensors(); ++t) {
    TensorRecord& rec = tensors_[t];
    if (rec.kind != kVariable) continue;
    int32_t zero_point = 0;
    QuantMeta q;
    if (model_.ReadQuant(t, &q) == Status::kOk && q.count > 0)
      zero_point = static_cast<int32_t>(q.zero_points.Get<int64_t>(0));
    if (rec.type == DataType::kInt8)
      memset(rec.data, static_cast<int8_t>(zero_point), rec.bytes);
    else
      memset(rec.data, 0, rec.bytes);
  }
}

Status Interpreter::Invoke() {
  if (!allocated_)
    return error_.Report(Status::kError, "Invoke called before AllocateTensors succeeded");
  error_.Clear();
  for (int i = 0; i < model_.num_operators(); ++i) {
    EvalContextImpl context(this, i);
    if (profiler_ != nullptr) profiler_->BeginOp(i);
    const Status status = ops_[i].kernel->eval(context);
    if (profiler_ != nullptr) profiler_->EndOp(i);
    if (status != Status::kOk) {
      OpError(i, "eval failed");
      return status;
    }
  }
  return Status::kOk;
}

Status Interpreter::Reset() {
  if (!allocated_)
    return error_.Report(Status::kError, "Reset called before AllocateTensors succeeded");
  ResetVariables();
  for (int i = 0; i < model_.num_operators(); ++i)
    if (ops_[i].kernel->reset != nullptr) ops_[i].kernel->reset(ops_[i].op_data);
  return Status::kOk;
}

void* Interpreter::tensor_data(int index) const {
  if (!allocated_ || index < 0 || index >= model_.num_tensors()) return nullptr;
  return tensors_[index].data;
}

size_t Interpreter::tensor_bytes(int index) const {
  if (!allocated_ || index < 0 || index >= model_.num_tensors()) return 0;
  return tensors_[index].bytes;
}

DataType Interpreter::tensor_type(int index) const {
  if (!allocated_ || index < 0 || index >= model_.num_tensors())
    return DataType::kFloat32;
  return tensors_[index].type;
}

bool Interpreter::tensor_is_variable(int index) const {
  return allocated_ && index >= 0 && index < model_.num_tensors() &&
         tensors_[index].kind == kVariable;
}

int Interpreter::tensor_buffer_owner(int index) const {
  if (!allocated_ || index < 0 || index >= model_.num_tensors() ||
      tensors_[index].kind != kAlias)
    return -1;
  return AliasRoot(index);
}

Shape Interpreter::tensor_shape(int index) const {
  Shape s;
  if (tensors_ == nullptr || index < 0 || index >= model_.num_tensors()) return s;
  const TensorRecord& rec = tensors_[index];
  s.rank = rec.rank;
  for (int d = 0; d < rec.rank; ++d) s.dims[d] = rec.dims[d];
  return s;
}

Status Interpreter::SetTensor(int index, DataType type, const void* data,
                              size_t bytes) {
  if (!allocated_ || index < 0 || index >= model_.num_tensors())
    return error_.Report(Status::kBadInput, "tensor %d does not exist", index);
  const TensorRecord& rec = tensors_[index];
  if (rec.data == nullptr || rec.kind == kConstant)
    return error_.Report(Status::kBadInput, "tensor %d cannot be written", index);
  if (type != rec.type)
    return error_.Report(Status::kBadInput, "tensor %d: expected %s data, got %s", index, DataTypeName(rec.type), DataTypeName(type));
  if (bytes != rec.bytes)
    return error_.Report(Status::kBadInput, "tensor %d: expected %u bytes, got %zu", index, rec.bytes, bytes);
  memcpy(rec.data, data, bytes);
  return Status::kOk;
}

size_t Interpreter::LiveBytesAt(int op) const {
  if (!allocated_ || op < 0 || op >= model_.num_operators()) return 0;
  size_t live = 0;
  for (int t = 0; t < model_.num_tensors(); ++t) {
    const TensorRecord& rec = tensors_[t];
    if (rec.kind == kPlanned && rec.first_op <= op && op <= rec.last_op)
      live += AlignUp(rec.bytes);
  }
  return live + ScratchBytesAt(op);
}

size_t Interpreter::ScratchBytesAt(int op) const {
  if (!allocated_ || op < 0 || op >= model_.num_operators()) return 0;
  size_t bytes = 0;
  for (ScratchRecord* s = ops_[op].scratch; s != nullptr; s = s->next)
    bytes += AlignUp(s->bytes);
  return bytes;
}

}  // namespace tflm_train
