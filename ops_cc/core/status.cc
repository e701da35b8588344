#include "ops_cc/core/status.h"

namespace tflm_train {

const char* StatusName(Status s) {
  switch (s) {
    case Status::kOk: return "ok";
    case Status::kError: return "error";
    case Status::kMalformedModel: return "malformed model";
    case Status::kUnsupportedOp: return "unsupported op";
    case Status::kArenaTooSmall: return "arena too small";
    case Status::kBadInput: return "bad input";
    case Status::kNotFound: return "not found";
    case Status::kStorageError: return "storage error";
  }
  return "unknown status";
}

}  // namespace tflm_train
