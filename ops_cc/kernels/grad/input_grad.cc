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

// The two-cell form of AddWeightedRowsBlock: 2 * kBlock partial sums.
template <int kBlock>
void AddWeightedRowPairsBlock(float* d0, float* d1, WeightedRowPair* rows,
                              int count) {
  float acc0[kBlock], acc1[kBlock];
#pragma GCC unroll 16
  for (int j = 0; j < kBlock; ++j) {
    acc0[j] = d0[j];
    acc1[j] = d1[j];
  }
  for (int r = 0; r < count; ++r) {
    const float gs0 = rows[r].gs[0];
    const float gs1 = rows[r].gs[1];
    const int8_t* w = rows[r].w;
#pragma GCC unroll 16
    for (int j = 0; j < kBlock; ++j) {
      const float wj = static_cast<float>(w[j]);
      acc0[j] += gs0 * wj;
      acc1[j] += gs1 * wj;
    }
    rows[r].w = w + kBlock;
  }
#pragma GCC unroll 16
  for (int j = 0; j < kBlock; ++j) {
    d0[j] = acc0[j];
    d1[j] = acc1[j];
  }
}

// Instructions per term on the Cortex-M4: 5 for one cell (load, convert,
// multiply, add), 7 for a pair (the conversion shared).
constexpr int kSingleTermCost = 5;
constexpr int kPairTermCost = 7;

}  // namespace

void AddWeightedRowPairs(float* d0, float* d1, int n, WeightedRowPair* rows,
                         int count) {
  int i = 0;
  for (; i + 8 <= n; i += 8)
    AddWeightedRowPairsBlock<8>(d0 + i, d1 + i, rows, count);
  for (; i < n; ++i) AddWeightedRowPairsBlock<1>(d0 + i, d1 + i, rows, count);
}

void AddWeightedRowPairsOrSingles(float* d0, float* d1, int n,
                                  WeightedRowPair* rows, int count) {
  int nonzero = 0;
  for (int r = 0; r < count; ++r)
    nonzero += (rows[r].gs[0] != 0.0f) + (rows[r].gs[1] != 0.0f);
  if (kPairTermCost * count <= kSingleTermCost * nonzero) {
    AddWeightedRowPairs(d0, d1, n, rows, count);
    return;
  }
  WeightedRow single[kWeightedRowBatch];
  float* const d[2] = {d0, d1};
  for (int cell = 0; cell < 2; ++cell) {
    int kept = 0;
    for (int r = 0; r < count; ++r) {
      if (rows[r].gs[cell] == 0.0f) continue;
      single[kept++] = {rows[r].gs[cell], rows[r].w};
      if (kept == kWeightedRowBatch) {
        AddWeightedRows(d[cell], n, single, kept);
        kept = 0;
      }
    }
    if (kept > 0) AddWeightedRows(d[cell], n, single, kept);
  }
}

void AddWeightedRows(float* d, int n, WeightedRow* rows, int count) {
  int i = 0;
  for (; i + 16 <= n; i += 16) AddWeightedRowsBlock<16>(d + i, rows, count);
  for (; i + 4 <= n; i += 4) AddWeightedRowsBlock<4>(d + i, rows, count);
  for (; i < n; ++i) AddWeightedRowsBlock<1>(d + i, rows, count);
}

}  // namespace tflm_train
