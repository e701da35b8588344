// Backward of an int8 FULLY_CONNECTED (input flattened to [B, I], filter
// [O, I], output [B, O]) with the fused SGD update of its weights and bias.
// Real values and mask as for conv (conv_grad.h).
#ifndef TFLM_TRAIN_KERNELS_GRAD_FULLY_CONNECTED_GRAD_H_
#define TFLM_TRAIN_KERNELS_GRAD_FULLY_CONNECTED_GRAD_H_

#include <cstdint>

#include "ops_cc/kernels/filter_slice.h"
#include "ops_cc/kernels/grad/grad_common.h"
#include "ops_cc/kernels/grad/input_grad.h"
#include "ops_cc/kernels/grad/sgd_update.h"

namespace tflm_train {

struct FullyConnectedGradArgs {
  int batches = 1;      // B
  int input_depth = 0;  // I
  int output_depth = 0; // O
  float input_scale = 0.0f;
  int32_t input_zero_point = 0;
  const int8_t* x = nullptr;   // [B, I]
  int8_t* filter = nullptr;    // [O, I], updated in place (no slice)
  // With a slice: the weights are the merged filter, the filter is frozen
  // and the update writes the slice's rows (= update.channels) instead.
  FilterSlice slice;
  const float* filter_scales = nullptr;  // s_w per output channel
  OutputGrad g;                // of y [B, O]
};

// dL/dx [B, I], one batch row (I values) at a time in batch order into
// `sink` (input_grad.h). Each element's sum starts at 0 and adds
// (g * s_w[o]) * q_w[o, i] for o ascending, skipping g == 0 (the order of
// the scatter form "for each (b, o) with g != 0, add the terms to row b").
template <typename Sink>
void FullyConnectedInputGradTo(const FullyConnectedGradArgs& args, Sink& sink);

// FullyConnectedInputGradTo into dx [B, I].
void FullyConnectedInputGrad(const FullyConnectedGradArgs& args, float* dx);

// dL/dW[o, i] = s_x * sum over b of g[b, o] * (q_x[b, i] - z_x).
float FullyConnectedFilterGrad(const FullyConnectedGradArgs& args, int o,
                               int i);

// dL/db[o] = sum over b of g[b, o].
float FullyConnectedBiasGrad(const FullyConnectedGradArgs& args, int o);

// The fused op: dx (if non-null) from the current weights; then each weight
// of each updated channel (list order, then i) gets its gradient
// (FullyConnectedFilterGrad's value bit for bit, accumulated for up to 64
// inputs at once) and its update; then the bias of every channel.
void FullyConnectedGrad(const FullyConnectedGradArgs& args, float* dx,
                        const LayerUpdate& update);

template <typename Sink>
void FullyConnectedInputGradTo(const FullyConnectedGradArgs& a, Sink& sink) {
  WeightedRow rows[kWeightedRowBatch];
  for (int b = 0; b < a.batches; ++b) {
    float* d = sink.Begin(b);
    for (int i = 0; i < a.input_depth; ++i) d[i] = 0.0f;
    int count = 0;
    int cursor = 0;
    for (int o = 0; o < a.output_depth; ++o) {
      // Looked up before the skip: the cursor must see every o.
      const int8_t* w =
          MergedFilterRow(a.filter, a.input_depth, a.slice, o, &cursor);
      const float g = a.g.At(b * a.output_depth + o);
      if (g == 0.0f) continue;
      rows[count++] = {g * a.filter_scales[o], w};
      if (count == kWeightedRowBatch) {
        AddWeightedRows(d, a.input_depth, rows, count);
        count = 0;
      }
    }
    if (count > 0) AddWeightedRows(d, a.input_depth, rows, count);
    sink.End(b);
  }
}

}  // namespace tflm_train

#endif  // TFLM_TRAIN_KERNELS_GRAD_FULLY_CONNECTED_GRAD_H_
