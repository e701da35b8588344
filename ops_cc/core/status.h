// Status codes shared by kernels, op wrappers and runtimes.
#ifndef TFLM_TRAIN_CORE_STATUS_H_
#define TFLM_TRAIN_CORE_STATUS_H_

namespace tflm_train {

enum class Status : int {
  kOk = 0,
  kError = 1,           // generic: invalid argument, unsupported configuration
  kMalformedModel = 2,  // the flatbuffer or a field in it is invalid
  kUnsupportedOp = 3,   // an operator the runtime has no kernel for
  kArenaTooSmall = 4,   // planning needs more bytes than the arena has
  kBadInput = 5,        // wrong input shape/type, label out of range
  kNotFound = 6,        // no valid saved state (persistence)
  kStorageError = 7,    // a storage callback failed (persistence)
};

const char* StatusName(Status s);

}  // namespace tflm_train

// Propagates a non-OK status to the caller.
#define TT_RETURN_IF_ERROR(expr)                                   \
  do {                                                             \
    const ::tflm_train::Status tt_status_ = (expr);                \
    if (tt_status_ != ::tflm_train::Status::kOk) return tt_status_; \
  } while (0)

#endif  // TFLM_TRAIN_CORE_STATUS_H_
