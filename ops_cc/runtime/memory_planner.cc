#include "ops_cc/runtime/memory_planner.h"

namespace tflm_train {
namespace {

bool LifetimesOverlap(const PlannedBuffer& a, const PlannedBuffer& b) {
  return a.first_op <= b.last_op && b.first_op <= a.last_op;
}

}  // namespace

size_t PlanMemory(PlannedBuffer* buffers, int count, int* order) {
  // Placement order: larger first, then earlier first_op, then index, so the
  // plan is deterministic.
  for (int i = 0; i < count; ++i) order[i] = i;
  for (int i = 1; i < count; ++i) {
    const int key = order[i];
    int j = i - 1;
    while (j >= 0) {
      const PlannedBuffer& a = buffers[order[j]];
      const PlannedBuffer& k = buffers[key];
      const bool after = a.bytes < k.bytes ||
                         (a.bytes == k.bytes && (a.first_op > k.first_op ||
                                                 (a.first_op == k.first_op &&
                                                  order[j] > key)));
      if (!after) break;
      order[j + 1] = order[j];
      --j;
    }
    order[j + 1] = key;
  }

  size_t peak = 0;
  for (int i = 0; i < count; ++i) {
    PlannedBuffer& b = buffers[order[i]];
    // Lowest offset that clears every placed, time-overlapping buffer: move
    // past each conflict and rescan until none remains.
    uint32_t offset = 0;
    bool moved = true;
    while (moved) {
      moved = false;
      for (int j = 0; j < i; ++j) {
        const PlannedBuffer& p = buffers[order[j]];
        if (!LifetimesOverlap(b, p)) continue;
        const bool address_overlap =
            offset < p.offset + p.bytes && p.offset < offset + b.bytes;
        if (address_overlap) {
          offset = p.offset + p.bytes;
          moved = true;
        }
      }
    }
    b.offset = offset;
    if (offset + b.bytes > peak) peak = offset + b.bytes;
  }
  return peak;
}

}  // namespace tflm_train
