#include "ops_cc/kernels/grad/fully_connected_grad.h"

namespace tflm_train {

void FullyConnectedInputGrad(const FullyConnectedGradArgs& a, float* dx) {
  const int in = a.input_depth;
  const int out = a.output_depth;
  for (int k = 0; k < a.batches * in; ++k) dx[k] = 0.0f;
  for (int b = 0; b < a.batches; ++b) {
    float* d = dx + b * in;
    int cursor = 0;
    for (int o = 0; o < out; ++o) {
      // Looked up before the skip: the cursor must see every o.
      const int8_t* w = MergedFilterRow(a.filter, in, a.slice, o, &cursor);
      const float g = a.g.At(b * out + o);
      if (g == 0.0f) continue;
      const float gs = g * a.filter_scales[o];
      for (int i = 0; i < in; ++i) d[i] += gs * static_cast<float>(w[i]);
    }
  }
}

float FullyConnectedFilterGrad(const FullyConnectedGradArgs& a, int o, int i) {
  float acc = 0.0f;
  for (int b = 0; b < a.batches; ++b) {
    const int k = b * a.output_depth + o;
    const float g = a.g.At(k);
    if (g == 0.0f) continue;
    const int32_t xq = a.x[b * a.input_depth + i];
    acc += g * static_cast<float>(xq - a.input_zero_point);
  }
  return acc * a.input_scale;
}

float FullyConnectedBiasGrad(const FullyConnectedGradArgs& a, int o) {
  float acc = 0.0f;
  for (int b = 0; b < a.batches; ++b) {
    const int k = b * a.output_depth + o;
    acc += a.g.At(k);
  }
  return acc;
}

void FullyConnectedGrad(const FullyConnectedGradArgs& a, float* dx,
                        const LayerUpdate& update) {
  if (dx != nullptr) FullyConnectedInputGrad(a, dx);
  if (update.update_weights) {
    const int count =
        update.channels != nullptr ? update.num_channels : a.output_depth;
    for (int k = 0; k < count; ++k) {
      const int o = update.channels != nullptr ? update.channels[k] : k;
      int8_t* w = (a.slice.rows != nullptr ? a.slice.rows + k * a.input_depth
                                           : a.filter + o * a.input_depth);
      for (int i = 0; i < a.input_depth; ++i)
        w[i] = SgdUpdateInt8(w[i], FullyConnectedFilterGrad(a, o, i),
                             update.weight_lr, a.filter_scales[o], update.rule,
                             update.weight_slots,
                             static_cast<int64_t>(k) * a.input_depth + i);
    }
  }
  if (update.bias != nullptr) {
    for (int o = 0; o < a.output_depth; ++o)
      update.bias[o] = SgdUpdateInt32(update.bias[o],
                                      FullyConnectedBiasGrad(a, o),
                                      update.bias_lr, update.bias_scales[o],
                                      update.rule, update.bias_slots, o);
  }
}

}  // namespace tflm_train
