#include "ops_cc/kernels/grad/broadcast_grad.h"

#include "ops_cc/kernels/broadcast.h"

namespace tflm_train {

bool MakeBroadcastWalk(const Shape& a, const Shape& b, const Shape& y,
                       BroadcastWalk* walk) {
  if (!ShapesBroadcast(a, b, y)) return false;
  int64_t a_size = 1, b_size = 1, y_size = 1;
  for (int i = kMaxRank - 1; i >= 0; --i) {
    const int32_t da = AlignedDim(a, i), db = AlignedDim(b, i);
    const int32_t dy = AlignedDim(y, i);
    walk->dims[i] = dy;
    walk->a_stride[i] = da == 1 ? 0 : static_cast<int32_t>(a_size);
    walk->b_stride[i] = db == 1 ? 0 : static_cast<int32_t>(b_size);
    a_size *= da;
    b_size *= db;
    y_size *= dy;
    if (y_size > INT32_MAX) return false;
  }
  walk->a_size = a_size;
  walk->b_size = b_size;
  walk->y_size = y_size;
  return true;
}

void BinaryBroadcastGrad(const BroadcastWalk& walk, const OutputGrad& grad,
                         const BinaryGradArgs& args, float* da, float* db) {
  if (da != nullptr)
    for (int64_t i = 0; i < walk.a_size; ++i) da[i] = 0.0f;
  if (db != nullptr)
    for (int64_t i = 0; i < walk.b_size; ++i) db[i] = 0.0f;
  if (walk.y_size == 0) return;
  constexpr int kLast = kMaxRank - 1;
  const int32_t row = walk.dims[kLast];
  const int32_t a_step = walk.a_stride[kLast], b_step = walk.b_stride[kLast];
  int32_t index[kMaxRank] = {0, 0, 0, 0, 0, 0};
  int64_t a_offset = 0, b_offset = 0;
  for (int64_t k = 0; k < walk.y_size; k += row) {
    // One innermost row: y[k + r] reads a[a_offset + r * a_step] and
    // b[b_offset + r * b_step].
    for (int32_t r = 0; r < row; ++r) {
      const float g = grad.At(k + r);
      const int64_t ia = a_offset + static_cast<int64_t>(r) * a_step;
      const int64_t ib = b_offset + static_cast<int64_t>(r) * b_step;
      if (da != nullptr)
        da[ia] += args.b == nullptr ? g : g * args.b_real(args.b[ib]);
      if (db != nullptr)
        db[ib] += args.a == nullptr ? g : g * args.a_real(args.a[ia]);
    }
    // Advance the outer index (dimensions kMaxRank - 2 .. 0).
    for (int d = kLast - 1; d >= 0; --d) {
      a_offset += walk.a_stride[d];
      b_offset += walk.b_stride[d];
      if (++index[d] < walk.dims[d]) break;
      a_offset -= static_cast<int64_t>(walk.a_stride[d]) * walk.dims[d];
      b_offset -= static_cast<int64_t>(walk.b_stride[d]) * walk.dims[d];
      index[d] = 0;
    }
  }
}

}  // namespace tflm_train
