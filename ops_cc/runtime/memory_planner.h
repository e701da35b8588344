// Greedy-by-size offline arena planner (the strategy TFLM's default planner
// uses): buffers are placed largest first at the lowest offset that does not
// overlap, in address, any already placed buffer alive at the same time.
#ifndef TFLM_TRAIN_RUNTIME_MEMORY_PLANNER_H_
#define TFLM_TRAIN_RUNTIME_MEMORY_PLANNER_H_

#include <cstddef>
#include <cstdint>

namespace tflm_train {

struct PlannedBuffer {
  uint32_t bytes;      // size (already rounded up to the alignment)
  int32_t first_op;    // lifetime, inclusive, in operator indices
  int32_t last_op;
  uint32_t offset;     // result
};

constexpr uint32_t kArenaAlignment = 16;

inline uint32_t AlignUp(uint32_t n) {
  return (n + kArenaAlignment - 1) & ~(kArenaAlignment - 1);
}

// Plans `count` buffers; `order` is caller-provided scratch space of `count`
// ints. Returns the peak number of bytes (end of the highest buffer).
size_t PlanMemory(PlannedBuffer* buffers, int count, int* order);

}  // namespace tflm_train

#endif  // TFLM_TRAIN_RUNTIME_MEMORY_PLANNER_H_
