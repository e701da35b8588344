// What the input-gradient kernels (ConvInputGradTo, DepthwiseConvInputGradTo,
// FullyConnectedInputGradTo) share: the sink they write dL/dx to, and the
// weighted sum of int8 filter rows that conv and fully connected reduce to.
#ifndef TFLM_TRAIN_KERNELS_GRAD_INPUT_GRAD_H_
#define TFLM_TRAIN_KERNELS_GRAD_INPUT_GRAD_H_

#include <cstdint>

namespace tflm_train {

// Where an input-gradient kernel puts dL/dx: one input cell at a time, in
// increasing cell order. A cell is the `depth` channel values of one (n, iy,
// ix) of an NHWC input, or one batch row of a FULLY_CONNECTED input.
// Begin(cell) returns `depth` floats that the kernel fills with that cell's
// sums (zeroing and accumulating into them, or writing each sum once; their
// prior contents are never read); End(cell) is called when they are
// complete, after
// which the kernel never reads or writes them again (so a sink may hand out
// one scratch buffer for every cell, and record or convert each finished
// cell in End).
// FloatDxSink: dx itself, Begin returns dx + cell * depth, End does nothing.
struct FloatDxSink {
  float* dx;
  int depth;

  float* Begin(int64_t cell) { return dx + cell * depth; }
  void End(int64_t /*cell*/) {}
};

// One term row of an input cell's gradient: the float gs = g * s_w[o] of an
// output channel with g != 0 and the int8 filter row (the tap's I weights) it
// multiplies.
struct WeightedRow {
  float gs;
  const int8_t* w;
};

// Rows gathered before they are added to the cell (a WeightedRow each, on
// the stack).
constexpr int kWeightedRowBatch = 32;

// d[i] += rows[0].gs * w0[i], then rows[1].gs * w1[i], ... for i < n: each
// element receives its terms in row order, exactly as adding one row after
// the other (blocks of elements stay in registers across the rows). The rows
// are the caller's scratch: each w is left advanced by n.
void AddWeightedRows(float* d, int n, WeightedRow* rows, int count);

}  // namespace tflm_train

#endif  // TFLM_TRAIN_KERNELS_GRAD_INPUT_GRAD_H_
