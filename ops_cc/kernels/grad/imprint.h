// Weight imprinting of a fresh classifier head (docs/format.md,
// "TFLMTRAIN_IMPRINT"), framework-free.
#ifndef TFLM_TRAIN_KERNELS_GRAD_IMPRINT_H_
#define TFLM_TRAIN_KERNELS_GRAD_IMPRINT_H_

#include <cstdint>

namespace tflm_train {

// Root-mean-square of an imprinted row in int8 units (127 / 4): room for
// elements 4x the typical one, and for fine-tuning to grow the row.
constexpr float kImprintRowRms = 31.75f;

struct ImprintArgs {
  int num_classes = 0;  // N: rows of filter, counts, sums
  int depth = 0;        // d: features per sample
  const int8_t* x = nullptr;  // [d] the head's input
  int32_t x_zero_point = 0;
  float x_scale = 0.0f;
  int shots = 0;          // k: samples imprinted per class
  int8_t* filter = nullptr;  // [N, d]
  int32_t* bias = nullptr;   // [N]
  int32_t* counts = nullptr;  // [N] samples imprinted so far
  float* sums = nullptr;      // [N, d] their real-valued feature sums
  float* mean_scratch = nullptr;  // [d] working memory
  const float* filter_scales = nullptr;  // [N] s_w[c]
  float* output_range = nullptr;         // [2] real [min, max], widened
};

// If class `label` has fewer than `shots` samples imprinted: adds the
// sample's real features x_r = s_x (x - z_x) to sums[label], counts it, and
// rewrites the class's row as the normalised class mean,
//   filter[label][j] = saturate(round(sums[j] * kImprintRowRms * sqrt(d) / |sums|))
// (nearest rounding; a zero sum leaves a zero row). Then every imprinted
// class gets the same bias, round(-o / s_x) with o the mean over imprinted
// classes c of filter[c] . m, m the mean feature of all imprinted samples:
// a common offset leaves the cosine classifier's ranking unchanged and puts
// the logits s_w (filter[c] . x_r - o) around 0 (int8 output resolution). Finally the output range widens to cover this sample's real
// logits under the new head, s_x s_w[c] (filter[c] . (x - z_x) + bias[c]),
// so that an exported model's int8 output holds what the imprinted head
// outputs. Returns whether the sample was imprinted (false for a label
// outside [0, N) or a class that is full).
bool ImprintSample(const ImprintArgs& a, int32_t label);

}  // namespace tflm_train

#endif  // TFLM_TRAIN_KERNELS_GRAD_IMPRINT_H_
