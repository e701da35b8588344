// Keeps the first error message of a runtime call (one line, bounded).
#ifndef TFLM_TRAIN_RUNTIME_ERROR_REPORTER_H_
#define TFLM_TRAIN_RUNTIME_ERROR_REPORTER_H_

#include <cstdarg>
#include <cstddef>

#include "ops_cc/core/status.h"

namespace tflm_train {

class ErrorReporter {
 public:
  // Records the message (the first one wins until Clear) and returns status.
  Status Report(Status status, const char* format, ...);
  Status ReportV(Status status, const char* format, va_list args);
  void Clear() { message_[0] = '\0'; }
  const char* message() const { return message_; }

 private:
  char message_[256] = {0};
};

}  // namespace tflm_train

#endif  // TFLM_TRAIN_RUNTIME_ERROR_REPORTER_H_
