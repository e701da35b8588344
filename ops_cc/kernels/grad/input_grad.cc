#include "ops_cc/kernels/grad/input_grad.h"

namespace tflm_train {

namespace {

// d[0..kBlock) += the rows' terms, in row order per element, then each row's
// w moves on by kBlock. The kBlock partial sums stay in FPU registers for all
// rows (Cortex-M4: 32 single registers), so d is loaded and stored once.
template <int kBlock>
void AddWeightedRowsBlock(float* d, WeightedRow* rows, int count) {
  float acc[kBlock];
#pragma GCC unroll 16
  for (int j = 0; j < kBlock; ++j) acc[j] = d[j];
  for (int r = 0; r < count; ++r) {
    const float gs = rows[r].gs;
    const int8_t* w = rows[r].w;
#pragma GCC unroll 16
    for (int j = 0; j < kBlock; ++j) acc[j] += gs * static_cast<float>(w[j]);
    rows[r].w = w + kBlock;
  }
#pragma GCC unroll 16
  for (int j = 0; j < kBlock; ++j) d[j] = acc[j];
}

}  // namespace

void AddWeightedRows(float* d, int n, WeightedRow* rows, int count) {
  int i = 0;
  for (; i + 16 <= n; i += 16) AddWeightedRowsBlock<16>(d + i, rows, count);
  for (; i + 4 <= n; i += 4) AddWeightedRowsBlock<4>(d + i, rows, count);
  for (; i < n; ++i) AddWeightedRowsBlock<1>(d + i, rows, count);
}

}  // namespace tflm_train
