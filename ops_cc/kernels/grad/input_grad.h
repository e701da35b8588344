// What the input-gradient kernels (ConvInputGradTo, DepthwiseConvInputGradTo,
// FullyConnectedInputGradTo) share: the sink they write dL/dx to, and the
// weighted sum of int8 filter rows that conv and fully connected reduce to.
#ifndef TFLM_TRAIN_KERNELS_GRAD_INPUT_GRAD_H_
#define TFLM_TRAIN_KERNELS_GRAD_INPUT_GRAD_H_

#include <cstdint>

#include "ops_cc/kernels/grad/float_loads.h"

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

// The rows of two input cells that read the same filter rows (neighbouring
// cells of a 1x1 convolution): gs[0] for the first cell, gs[1] for the
// second, 0 where that cell's g is 0.
struct WeightedRowPair {
  float gs[2];
  const int8_t* w;
};

// AddWeightedRows(d0, ...) with the rows' gs[0] and AddWeightedRows(d1, ...)
// with their gs[1], the same bits: each element's terms in row order, and a
// row whose gs is 0 for one cell adds +-0 to it, which changes no bit of a
// sum that started at +0 (such a sum is never -0). Each weight is converted
// to float once for both cells.
void AddWeightedRowPairs(float* d0, float* d1, int n, WeightedRowPair* rows,
                         int count);

// The same sums as AddWeightedRowPairs; when too few rows are non-zero for
// both cells, the cells are summed one after the other instead, leaving out
// their zero rows (worth the count for the sparse output gradients of 1x1
// convolutions).
void AddWeightedRowPairsOrSingles(float* d0, float* d1, int n,
                                  WeightedRowPair* rows, int count);

namespace input_grad_internal {

// AddFloatRows for elements [0, kBlock) of rows n floats apart (kBlock a
// multiple of 8, or 1); the kBlock partial sums stay in FPU registers.
template <int kBlock, typename RowGs>
void AddFloatRowsBlock(float* d, int n, const RowGs& gs, const float* w,
                       int count) {
  float acc[kBlock];
#pragma GCC unroll 16
  for (int j = 0; j < kBlock; ++j) acc[j] = d[j];
  for (int r = 0; r < count; ++r, w += n) {
    const float g = gs(r);
    if (g == 0.0f) continue;
    if (kBlock == 1) {
      acc[0] += g * w[0];
      continue;
    }
#pragma GCC unroll 2
    for (int h = 0; h < kBlock; h += 8) {
      float v[8];
      LoadFloats<8>(w + h, v);
#pragma GCC unroll 8
      for (int j = 0; j < 8; ++j) acc[h + j] += g * v[j];
    }
  }
#pragma GCC unroll 16
  for (int j = 0; j < kBlock; ++j) d[j] = acc[j];
}

}  // namespace input_grad_internal

// d[i] += gs(r) * w[r * n + i] for i < n and rows r < count in increasing
// order, skipping rows whose gs(r) is +-0 (which would change no bit of a
// sum that is never -0): AddWeightedRows' sums for weights already converted
// to float (a filter tap's rows, converted once and added to many cells).
// gs(r) is the row's g * s_w[o], computed once per call and row.
template <typename RowGs>
void AddFloatRows(float* d, int n, const RowGs& gs, const float* w,
                  int count) {
  using input_grad_internal::AddFloatRowsBlock;
  int i = 0;
  for (; i + 16 <= n; i += 16) AddFloatRowsBlock<16>(d + i, n, gs, w + i, count);
  for (; i + 8 <= n; i += 8) AddFloatRowsBlock<8>(d + i, n, gs, w + i, count);
  for (; i < n; ++i) AddFloatRowsBlock<1>(d + i, n, gs, w + i, count);
}

// Floats of scratch the conv input gradient keeps on the stack (1.5 KB): in
// ConvInputGradTo the second cell of a pair of 1x1-conv input cells (so
// pairs need an input depth of at most this) or the scaled output gradient
// rows read by one input row; in ConvInputGrad a tap's float weights.
constexpr int kConvInputGradScratch = 384;

}  // namespace tflm_train

#endif  // TFLM_TRAIN_KERNELS_GRAD_INPUT_GRAD_H_
