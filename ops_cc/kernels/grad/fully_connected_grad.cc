#include "ops_cc/kernels/grad/fully_connected_grad.h"

namespace tflm_train {

void FullyConnectedInputGrad(const FullyConnectedGradArgs& a, float* dx) {
  FloatDxSink sink{dx, a.input_depth};
  FullyConnectedInputGradTo(a, sink);
}

namespace {

// Weights of one filter row whose gradients are accumulated together (a
// float each, on the stack).
constexpr int kFilterGradChunk = 64;

// acc[j] = dL/dW[o, i0 + j] / s_x for j < len, summed in batch order as
// documented for FullyConnectedFilterGrad (its one-weight case), with g read
// once per batch row for the whole chunk.
void AccumulateFilterGradChunk(const FullyConnectedGradArgs& a, int o, int i0,
                               int len, float* acc) {
  for (int j = 0; j < len; ++j) acc[j] = 0.0f;
  for (int b = 0; b < a.batches; ++b) {
    const float g = a.g.At(b * a.output_depth + o);
    if (g == 0.0f) continue;
    const int8_t* xq = a.x + b * a.input_depth + i0;
    for (int j = 0; j < len; ++j)
      acc[j] += g * static_cast<float>(static_cast<int32_t>(xq[j]) -
                                       a.input_zero_point);
  }
}

}  // namespace

float FullyConnectedFilterGrad(const FullyConnectedGradArgs& a, int o, int i) {
  float acc = 0.0f;
  AccumulateFilterGradChunk(a, o, i, 1, &acc);
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
    float acc[kFilterGradChunk];
    for (int k = 0; k < count; ++k) {
      const int o = update.channels != nullptr ? update.channels[k] : k;
      int8_t* w = (a.slice.rows != nullptr ? a.slice.rows + k * a.input_depth
                                           : a.filter + o * a.input_depth);
      for (int i0 = 0; i0 < a.input_depth; i0 += kFilterGradChunk) {
        const int len = a.input_depth - i0 < kFilterGradChunk
                            ? a.input_depth - i0
                            : kFilterGradChunk;
        AccumulateFilterGradChunk(a, o, i0, len, acc);
        for (int j = 0; j < len; ++j)
          w[i0 + j] = SgdUpdateInt8(
              w[i0 + j], acc[j] * a.input_scale, update.weight_lr,
              a.filter_scales[o], update.rule, update.weight_slots,
              static_cast<int64_t>(k) * a.input_depth + i0 + j);
      }
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
