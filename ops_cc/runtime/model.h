// Validated access to a TFLite flatbuffer (subgraph 0 only), read with the
// project's own bounds-checked reader. Field slots follow TFLite's schema.
#ifndef TFLM_TRAIN_RUNTIME_MODEL_H_
#define TFLM_TRAIN_RUNTIME_MODEL_H_

#include <cstddef>
#include <cstdint>

#include "ops_cc/core/shape.h"
#include "ops_cc/core/status.h"
#include "ops_cc/ops/builtin_options.h"
#include "ops_cc/runtime/error_reporter.h"
#include "ops_cc/runtime/flatbuffer_reader.h"

namespace tflm_train {

// What the runtime needs to know about one tensor.
struct TensorMeta {
  DataType type = DataType::kFloat32;
  int rank = 0;
  const int32_t* dims = nullptr;    // points into the model
  const uint8_t* data = nullptr;    // constant data, null if none
  size_t data_size = 0;
  size_t bytes = 0;                 // element count * element size
  bool is_variable = false;
  const char* name = "";
};

// Quantization parameters as stored (zero points are int64 in the file).
struct QuantMeta {
  const float* scales = nullptr;
  FbVector zero_points;  // int64
  int count = 0;
  int quantized_dimension = 0;
};

struct OperatorMeta {
  int builtin_code = -1;
  const char* custom_name = nullptr;  // for CUSTOM ops
  const int32_t* inputs = nullptr;    // tensor indices, -1 = absent
  int num_inputs = 0;
  const int32_t* outputs = nullptr;
  int num_outputs = 0;
  const uint8_t* custom_options = nullptr;
  size_t custom_options_size = 0;
  BuiltinOptionsStorage builtin_options;
};

// Printable name of a builtin operator code ("CONV_2D"), or "BUILTIN".
const char* BuiltinName(int code);

class Model {
 public:
  // Validates the top-level structure: root table, one or more subgraphs,
  // tensor and buffer tables, input/output indices. The model bytes must
  // stay alive and unchanged while the Model is used.
  Status Init(const uint8_t* data, size_t size, ErrorReporter* error);

  int num_tensors() const { return static_cast<int>(tensors_.length()); }
  int num_operators() const { return static_cast<int>(operators_.length()); }
  int num_inputs() const { return static_cast<int>(inputs_.length()); }
  int num_outputs() const { return static_cast<int>(outputs_.length()); }
  int input(int i) const { return inputs_.Get<int32_t>(i); }
  int output(int i) const { return outputs_.Get<int32_t>(i); }

  Status ReadTensor(int index, TensorMeta* out) const;
  Status ReadQuant(int index, QuantMeta* out) const;
  Status ReadOperator(int index, OperatorMeta* out) const;
  // The buffer of the metadata entry `name`, null if absent or invalid.
  const uint8_t* Metadata(const char* name, size_t* size) const;

 private:
  Status ParseBuiltinOptions(int index, const FbTable& op,
                             OperatorMeta* out) const;

  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  ErrorReporter* error_ = nullptr;
  FbTable model_;
  FbVector opcodes_, buffers_, tensors_, operators_, inputs_, outputs_;
};

}  // namespace tflm_train

#endif  // TFLM_TRAIN_RUNTIME_MODEL_H_
