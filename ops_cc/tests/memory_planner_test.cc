#include "ops_cc/runtime/memory_planner.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

namespace tflm_train {
namespace {

// No two buffers alive at the same time may share an address.
void ExpectNoConflicts(const std::vector<PlannedBuffer>& b) {
  for (size_t i = 0; i < b.size(); ++i)
    for (size_t j = i + 1; j < b.size(); ++j) {
      const bool time = b[i].first_op <= b[j].last_op &&
                        b[j].first_op <= b[i].last_op;
      const bool space = b[i].offset < b[j].offset + b[j].bytes &&
                         b[j].offset < b[i].offset + b[i].bytes;
      EXPECT_FALSE(time && space) << "buffers " << i << " and " << j;
    }
}

size_t MaxLiveBytes(const std::vector<PlannedBuffer>& b, int num_ops) {
  size_t best = 0;
  for (int op = 0; op < num_ops; ++op) {
    size_t live = 0;
    for (const auto& x : b)
      if (x.first_op <= op && op <= x.last_op) live += x.bytes;
    best = std::max(best, live);
  }
  return best;
}

TEST(MemoryPlanner, ChainReusesMemory) {
  // a -> b -> c -> d: each buffer only overlaps its neighbours.
  std::vector<PlannedBuffer> b = {
      {64, 0, 1, 0}, {32, 1, 2, 0}, {64, 2, 3, 0}, {32, 3, 4, 0}};
  std::vector<int> order(b.size());
  const size_t peak = PlanMemory(b.data(), static_cast<int>(b.size()), order.data());
  ExpectNoConflicts(b);
  EXPECT_EQ(peak, 96u);  // the largest live pair: 64 + 32
}

TEST(MemoryPlanner, RandomLifetimesNeverConflictAndPeakIsBounded) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    const int num_ops = 1 + rng() % 30;
    std::vector<PlannedBuffer> b(1 + rng() % 40);
    for (auto& x : b) {
      const int a = rng() % num_ops, c = rng() % num_ops;
      x = PlannedBuffer{AlignUp(1 + rng() % 5000), std::min(a, c),
                        std::max(a, c), 0};
    }
    std::vector<int> order(b.size());
    const size_t peak = PlanMemory(b.data(), static_cast<int>(b.size()), order.data());
    ExpectNoConflicts(b);
    size_t total = 0, end = 0;
    for (const auto& x : b) {
      total += x.bytes;
      end = std::max<size_t>(end, x.offset + x.bytes);
      EXPECT_EQ(x.offset % kArenaAlignment, 0u);
    }
    EXPECT_EQ(peak, end);
    EXPECT_GE(peak, MaxLiveBytes(b, num_ops));  // no plan beats the live set
    EXPECT_LE(peak, total);                     // never worse than no reuse
  }
}

TEST(MemoryPlanner, DeterministicForEqualSizes) {
  std::vector<PlannedBuffer> a = {{16, 0, 2, 0}, {16, 1, 3, 0}, {16, 2, 4, 0}};
  std::vector<PlannedBuffer> b = a;
  std::vector<int> order(3);
  PlanMemory(a.data(), 3, order.data());
  PlanMemory(b.data(), 3, order.data());
  for (int i = 0; i < 3; ++i) EXPECT_EQ(a[i].offset, b[i].offset);
}

}  // namespace
}  // namespace tflm_train
