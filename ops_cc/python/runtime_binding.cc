// Python binding of the standalone runtime: the host simulator.
//
// It is deliberately thin: the interpreter is exposed tensor by tensor and
// tflm_train.runtime (Python) implements training steps on top, reading the
// training metadata itself.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <cstddef>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "ops_cc/runtime/interpreter.h"
#include "ops_cc/runtime/training_session.h"

namespace py = pybind11;

namespace tflm_train {
namespace python {
namespace {

// A name from the model as str; bytes that are not UTF-8 (a corrupt file)
// become U+FFFD instead of raising.
py::str Text(const char* name) {
  PyObject* text = PyUnicode_DecodeUTF8(name, static_cast<Py_ssize_t>(std::strlen(name)),
                                        "replace");
  if (text == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::str>(text);
}

// RuntimeError carrying a runtime message (which may quote model names).
[[noreturn]] void RaiseRuntimeError(const char* message) {
  PyErr_SetObject(PyExc_RuntimeError, Text(message).ptr());
  throw py::error_already_set();
}

py::dtype NumpyType(DataType type) {
  switch (type) {
    case DataType::kFloat32: return py::dtype::of<float>();
    case DataType::kInt32: return py::dtype::of<int32_t>();
    case DataType::kUInt8: return py::dtype::of<uint8_t>();
    case DataType::kInt64: return py::dtype::of<int64_t>();
    case DataType::kBool: return py::dtype::of<bool>();
    case DataType::kInt16: return py::dtype::of<int16_t>();
    case DataType::kInt8: return py::dtype::of<int8_t>();
  }
  throw std::invalid_argument("unsupported tensor type");
}

DataType FromNumpy(const py::dtype& dtype) {
  if (dtype.is(py::dtype::of<float>())) return DataType::kFloat32;
  if (dtype.is(py::dtype::of<int32_t>())) return DataType::kInt32;
  if (dtype.is(py::dtype::of<uint8_t>())) return DataType::kUInt8;
  if (dtype.is(py::dtype::of<int64_t>())) return DataType::kInt64;
  if (dtype.is(py::dtype::of<bool>())) return DataType::kBool;
  if (dtype.is(py::dtype::of<int16_t>())) return DataType::kInt16;
  if (dtype.is(py::dtype::of<int8_t>())) return DataType::kInt8;
  throw std::invalid_argument("unsupported numpy dtype " +
                              std::string(py::str(dtype)));
}

// Accumulates wall time per operator across invocations.
class WallClockProfiler : public OpProfiler {
 public:
  explicit WallClockProfiler(int num_ops) : seconds_(num_ops, 0.0) {}
  void BeginOp(int) override { start_ = std::chrono::steady_clock::now(); }
  void EndOp(int op) override {
    seconds_[op] += std::chrono::duration<double>(
                        std::chrono::steady_clock::now() - start_)
                        .count();
  }
  const std::vector<double>& seconds() const { return seconds_; }

 private:
  std::vector<double> seconds_;
  std::chrono::steady_clock::time_point start_;
};

// 16-byte aligned storage unit for the model copy and the arena.
struct alignas(16) Block {
  uint8_t bytes[16];
};

// Owns aligned copies of the model and the arena.
class HostInterpreter {
 public:
  HostInterpreter(const py::bytes& model, size_t arena_size,
                  bool preserve_all_tensors) {
    std::string bytes = model;
    model_.resize((bytes.size() + 15) / 16);
    std::memcpy(model_.data(), bytes.data(), bytes.size());
    arena_.resize((arena_size + 15) / 16);
    interpreter_ = std::make_unique<Interpreter>(
        reinterpret_cast<const uint8_t*>(model_.data()), bytes.size(),
        reinterpret_cast<uint8_t*>(arena_.data()), arena_.size() * sizeof(Block));
    interpreter_->set_preserve_all_tensors(preserve_all_tensors);
    Check(interpreter_->AllocateTensors());
  }

  void Invoke() { Check(interpreter_->Invoke()); }

  // Runs Invoke `repeats` times and returns the seconds spent in each
  // operator, summed over the runs.
  std::vector<double> ProfileInvoke(int repeats) {
    WallClockProfiler profiler(interpreter_->num_operators());
    interpreter_->set_profiler(&profiler);
    Status status = Status::kOk;
    for (int r = 0; r < repeats && status == Status::kOk; ++r)
      status = interpreter_->Invoke();
    interpreter_->set_profiler(nullptr);
    Check(status);
    return profiler.seconds();
  }
  void Reset() { Check(interpreter_->Reset()); }

  py::array GetTensor(int index) const {
    CheckIndex(index);
    const Shape shape = interpreter_->tensor_shape(index);
    std::vector<py::ssize_t> dims(shape.dims, shape.dims + shape.rank);
    py::array out(NumpyType(interpreter_->tensor_type(index)), dims);
    const void* data = interpreter_->tensor_data(index);
    if (data == nullptr)
      throw std::runtime_error("tensor " + std::to_string(index) +
                               " has no memory (unused by the graph)");
    std::memcpy(out.mutable_data(), data, interpreter_->tensor_bytes(index));
    return out;
  }

  void SetTensor(int index, const py::array& value) {
    CheckIndex(index);
    py::array c = py::array::ensure(value, py::array::c_style);
    const Shape shape = interpreter_->tensor_shape(index);
    if (static_cast<int64_t>(c.size()) != shape.FlatSize())
      throw std::invalid_argument(
          "tensor " + std::to_string(index) + ": expected " +
          std::to_string(shape.FlatSize()) + " elements, got " +
          std::to_string(c.size()));
    Check(interpreter_->SetTensor(index, FromNumpy(c.dtype()), c.data(),
                                  static_cast<size_t>(c.nbytes())));
  }

  py::dict TensorInfo(int index) const {
    CheckIndex(index);
    const Shape shape = interpreter_->tensor_shape(index);
    py::dict d;
    d["shape"] = std::vector<int>(shape.dims, shape.dims + shape.rank);
    d["dtype"] = NumpyType(interpreter_->tensor_type(index));
    d["bytes"] = interpreter_->tensor_bytes(index);
    d["is_variable"] = interpreter_->tensor_is_variable(index);
    d["buffer_owner"] = interpreter_->tensor_buffer_owner(index);
    TensorMeta meta;
    Check(interpreter_->model().ReadTensor(index, &meta));
    d["name"] = Text(meta.name);
    QuantMeta quant;
    Check(interpreter_->model().ReadQuant(index, &quant));
    std::vector<float> scales(quant.scales, quant.scales + quant.count);
    std::vector<int64_t> zero_points;
    for (int c = 0; c < quant.count; ++c)
      zero_points.push_back(quant.zero_points.Get<int64_t>(c));
    d["scales"] = scales;
    d["zero_points"] = zero_points;
    d["quantized_dimension"] = quant.quantized_dimension;
    return d;
  }

  std::vector<int> Inputs() const {
    std::vector<int> v;
    for (int i = 0; i < interpreter_->model().num_inputs(); ++i)
      v.push_back(interpreter_->model().input(i));
    return v;
  }
  std::vector<int> Outputs() const {
    std::vector<int> v;
    for (int i = 0; i < interpreter_->model().num_outputs(); ++i)
      v.push_back(interpreter_->model().output(i));
    return v;
  }

  py::object Metadata(const std::string& name) const {
    size_t size = 0;
    const uint8_t* data = interpreter_->model().Metadata(name.c_str(), &size);
    if (data == nullptr) return py::none();
    return py::bytes(reinterpret_cast<const char*>(data), size);
  }

  py::dict Memory() const {
    py::dict d;
    d["planned_bytes"] = interpreter_->planned_bytes();
    d["persistent_bytes"] = interpreter_->persistent_bytes();
    d["variable_bytes"] = interpreter_->variable_bytes();
    d["arena_used_bytes"] = interpreter_->arena_used_bytes();
    return d;
  }

  std::vector<py::dict> Timeline() const {
    std::vector<py::dict> ops;
    for (int i = 0; i < interpreter_->num_operators(); ++i) {
      py::dict d;
      d["op"] = i;
      d["name"] = Text(interpreter_->OperatorName(i));
      d["live_bytes"] = interpreter_->LiveBytesAt(i);
      d["scratch_bytes"] = interpreter_->ScratchBytesAt(i);
      OperatorMeta meta;
      Check(interpreter_->model().ReadOperator(i, &meta));
      d["outputs"] = std::vector<int>(meta.outputs, meta.outputs + meta.num_outputs);
      ops.push_back(d);
    }
    return ops;
  }

  int num_tensors() const { return interpreter_->num_tensors(); }
  int num_operators() const { return interpreter_->num_operators(); }

 private:
  void Check(Status status) const {
    if (status != Status::kOk)
      RaiseRuntimeError(interpreter_->error_message());
  }
  void CheckIndex(int index) const {
    if (index < 0 || index >= interpreter_->num_tensors())
      throw std::out_of_range("tensor index " + std::to_string(index) +
                              " out of range");
  }

  std::vector<Block> model_;
  std::vector<Block> arena_;
  std::unique_ptr<Interpreter> interpreter_;
};

// The device's checks of a training model (TrainingSession::Init: reader,
// allocation, every op's Prepare, metadata) on the host; throws the one-line
// error.
void CheckTrainingModel(const py::bytes& model, size_t arena_size) {
  std::string bytes = model;
  std::vector<Block> aligned_model((bytes.size() + 15) / 16);
  std::memcpy(aligned_model.data(), bytes.data(), bytes.size());
  // Not zeroed: the runtime writes every byte it reads, and the check runs
  // on every host read of a training model, where zeroing tens of MB cost
  // more than the check itself.
  const size_t blocks = (arena_size + 15) / 16;
  std::unique_ptr<Block[]> arena(new Block[blocks]);
  TrainingSession session(reinterpret_cast<const uint8_t*>(aligned_model.data()),
                          bytes.size(), reinterpret_cast<uint8_t*>(arena.get()),
                          blocks * sizeof(Block));
  if (session.Init() != Status::kOk)
    RaiseRuntimeError(session.error_message());
}

}  // namespace

void BindRuntime(py::module_& m) {
  m.def("check_training_model", &CheckTrainingModel, py::arg("model"),
        py::arg("arena_size"),
        "Runs the device's TrainingSession::Init checks; raises RuntimeError.");
  py::class_<HostInterpreter>(m, "Interpreter")
      .def(py::init<const py::bytes&, size_t, bool>(), py::arg("model"),
           py::arg("arena_size"), py::arg("preserve_all_tensors") = false)
      .def("invoke", &HostInterpreter::Invoke)
      .def("profile_invoke", &HostInterpreter::ProfileInvoke,
           py::arg("repeats"))
      .def("reset", &HostInterpreter::Reset)
      .def("get_tensor", &HostInterpreter::GetTensor)
      .def("set_tensor", &HostInterpreter::SetTensor)
      .def("tensor_info", &HostInterpreter::TensorInfo)
      .def("memory", &HostInterpreter::Memory)
      .def("metadata", &HostInterpreter::Metadata)
      .def_property_readonly("inputs", &HostInterpreter::Inputs)
      .def_property_readonly("outputs", &HostInterpreter::Outputs)
      .def("timeline", &HostInterpreter::Timeline)
      .def_property_readonly("num_tensors", &HostInterpreter::num_tensors)
      .def_property_readonly("num_operators", &HostInterpreter::num_operators);
}

}  // namespace python
}  // namespace tflm_train
