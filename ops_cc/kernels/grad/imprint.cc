#include "ops_cc/kernels/grad/imprint.h"

#include "ops_cc/core/float_math.h"

namespace tflm_train {

bool ImprintSample(const ImprintArgs& a, int32_t label) {
  if (label < 0 || label >= a.num_classes || a.counts[label] >= a.shots)
    return false;
  float* sum = a.sums + static_cast<int64_t>(label) * a.depth;
  float norm2 = 0.0f;
  for (int j = 0; j < a.depth; ++j) {
    sum[j] += a.x_scale * static_cast<float>(a.x[j] - a.x_zero_point);
    norm2 += sum[j] * sum[j];
  }
  ++a.counts[label];
  const float norm = SqrtF(norm2);
  const float gain = norm > 0.0f && IsFinite(norm)
                         ? kImprintRowRms * SqrtF(static_cast<float>(a.depth)) / norm
                         : 0.0f;
  int8_t* row = a.filter + static_cast<int64_t>(label) * a.depth;
  for (int j = 0; j < a.depth; ++j) {
    int64_t q = FloorToInt64(sum[j] * gain + 0.5f);
    if (q < -127) q = -127;
    if (q > 127) q = 127;
    row[j] = static_cast<int8_t>(q);
  }
  // m = (sum of all sums) / total count; the offset is the imprinted rows'
  // mean dot product with m, the same for every imprinted class.
  int64_t total = 0;
  int imprinted = 0;
  for (int c = 0; c < a.num_classes; ++c) {
    total += a.counts[c];
    if (a.counts[c] > 0) ++imprinted;
  }
  const float inv_total = 1.0f / static_cast<float>(total);
  float* m = a.mean_scratch;
  for (int j = 0; j < a.depth; ++j) m[j] = 0.0f;
  for (int c = 0; c < a.num_classes; ++c)
    for (int j = 0; j < a.depth; ++j)
      m[j] += a.sums[static_cast<int64_t>(c) * a.depth + j];
  for (int j = 0; j < a.depth; ++j) m[j] *= inv_total;
  float offset = 0.0f;
  for (int c = 0; c < a.num_classes; ++c) {
    if (a.counts[c] == 0) continue;
    const int8_t* q = a.filter + static_cast<int64_t>(c) * a.depth;
    float dot = 0.0f;
    for (int j = 0; j < a.depth; ++j) dot += static_cast<float>(q[j]) * m[j];
    offset += dot;
  }
  offset /= static_cast<float>(imprinted);
  int64_t b = FloorToInt64(-offset / a.x_scale + 0.5f);
  if (b < INT32_MIN) b = INT32_MIN;
  if (b > INT32_MAX) b = INT32_MAX;
  for (int c = 0; c < a.num_classes; ++c)
    if (a.counts[c] > 0) a.bias[c] = static_cast<int32_t>(b);
  for (int c = 0; c < a.num_classes; ++c) {
    const int8_t* q = a.filter + static_cast<int64_t>(c) * a.depth;
    int64_t acc = a.bias[c];
    for (int j = 0; j < a.depth; ++j)
      acc += static_cast<int64_t>(q[j]) * (a.x[j] - a.x_zero_point);
    const float logit = a.x_scale * a.filter_scales[c] * static_cast<float>(acc);
    if (logit < a.output_range[0]) a.output_range[0] = logit;
    if (logit > a.output_range[1]) a.output_range[1] = logit;
  }
  return true;
}

}  // namespace tflm_train
