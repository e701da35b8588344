// Optional CMSIS-NN forward kernels for the standalone runtime.
//
// Built only when the user's build defines TFLM_TRAIN_CMSIS_NN and puts a
// CMSIS-NN tree's Include/ on the include path and its Source/*.c in the
// link (`tflm-train firmware --cmsis-nn DIR`; the way TFLM's
// OPTIMIZED_KERNEL_DIR=cmsis_nn does). Nothing of CMSIS-NN is part of this
// repository. Without the define the portable kernels in ops_cc/kernels run
// (they are the reference); with it, CONV_2D, DEPTHWISE_CONV_2D,
// FULLY_CONNECTED, AVERAGE_POOL_2D and MAX_POOL_2D call CMSIS-NN's s8
// kernels where CMSIS-NN covers the case (decided per operator in Prepare,
// see each wrapper) and keep the portable kernel elsewhere. CMSIS-NN's s8
// kernels compute what the portable ones do, bit for bit (TFLite's
// numerics), so the trained weights do not depend on the choice.
//
// The TFLM adapter (ops_cc/tflm) does not compile these wrappers: TFLM
// brings its own CMSIS-NN kernels for the builtins.
#ifndef TFLM_TRAIN_OPS_FORWARD_CMSIS_NN_H_
#define TFLM_TRAIN_OPS_FORWARD_CMSIS_NN_H_

#ifdef TFLM_TRAIN_CMSIS_NN

#include <cstdint>

#include "arm_nnfunctions.h"
#include "ops_cc/core/shape.h"
#include "ops_cc/ops/op_util.h"

namespace tflm_train {
namespace cmsis {

// CMSIS-NN keeps several dimensions in uint16_t; larger tensors keep the
// portable kernel.
inline bool FitsDims(const Shape& s) {
  for (int i = 0; i < s.rank; ++i)
    if (s.dims[i] <= 0 || s.dims[i] > 0xffff) return false;
  return true;
}

// A rank-4 NHWC shape as cmsis_nn_dims.
inline cmsis_nn_dims Dims(const Shape& s) {
  return cmsis_nn_dims{s.dims[0], s.dims[1], s.dims[2], s.dims[3]};
}

// An op's choice of CMSIS-NN (made in Prepare) and its buffer: scratch
// `buffer` (-1: none) of `buffer_bytes`.
struct Choice {
  bool use = false;
  int8_t buffer = -1;
  int32_t buffer_bytes = 0;
};

// Marks the op as CMSIS-NN's and requests its buffer (none if
// buffer_bytes <= 0).
inline Status Use(PrepareContext& c, int32_t buffer_bytes, Choice* choice) {
  choice->use = true;
  if (buffer_bytes <= 0) return Status::kOk;
  int index = -1;
  TT_RETURN_IF_ERROR(c.RequestScratch(static_cast<size_t>(buffer_bytes), &index));
  choice->buffer = static_cast<int8_t>(index);
  choice->buffer_bytes = buffer_bytes;
  return Status::kOk;
}

// The buffer as CMSIS-NN's context.
inline cmsis_nn_context Context(EvalContext& c, const Choice& choice) {
  return cmsis_nn_context{choice.buffer >= 0 ? c.Scratch(choice.buffer) : nullptr,
                          choice.buffer_bytes};
}

}  // namespace cmsis
}  // namespace tflm_train

#endif  // TFLM_TRAIN_CMSIS_NN
#endif  // TFLM_TRAIN_OPS_FORWARD_CMSIS_NN_H_
