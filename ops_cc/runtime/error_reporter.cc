#include "ops_cc/runtime/error_reporter.h"

#include <cstdio>

namespace tflm_train {

Status ErrorReporter::ReportV(Status status, const char* format,
                              va_list args) {
  if (message_[0] == '\0') {
    vsnprintf(message_, sizeof(message_), format, args);
    // Keep it one line.
    for (char* c = message_; *c; ++c)
      if (*c == '\n') *c = ' ';
  }
  return status;
}

Status ErrorReporter::Report(Status status, const char* format, ...) {
  va_list args;
  va_start(args, format);
  ReportV(status, format, args);
  va_end(args);
  return status;
}

}  // namespace tflm_train
