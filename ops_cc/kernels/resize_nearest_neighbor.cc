#include "ops_cc/kernels/resize_nearest_neighbor.h"

#include <cmath>
#include <cstring>

namespace tflm_train {
namespace ref {

int32_t NearestSourceIndex(const ResizeNearestParams& params, int32_t out_index,
                           int32_t in_size, int32_t out_size) {
  const float scale =
      (params.align_corners && out_size > 1)
          ? static_cast<float>(in_size - 1) / static_cast<float>(out_size - 1)
          : static_cast<float>(in_size) / static_cast<float>(out_size);
  const float offset = params.half_pixel_centers ? 0.5f : 0.0f;
  const float source = (static_cast<float>(out_index) + offset) * scale;
  // source >= 0, so truncation is the floor.
  int32_t index = params.align_corners
                      ? static_cast<int32_t>(std::round(source))
                      : static_cast<int32_t>(source);
  if (index > in_size - 1) index = in_size - 1;
  if (params.half_pixel_centers && index < 0) index = 0;
  return index;
}

void ResizeNearestNeighbor(const ResizeNearestParams& params,
                           const Shape& input_shape, const int8_t* input,
                           const Shape& output_shape, int8_t* output) {
  const int32_t batches = input_shape.dims[0];
  const int32_t in_h = input_shape.dims[1];
  const int32_t in_w = input_shape.dims[2];
  const int32_t depth = input_shape.dims[3];
  const int32_t out_h = output_shape.dims[1];
  const int32_t out_w = output_shape.dims[2];
  const size_t row_bytes = static_cast<size_t>(in_w) * depth;
  const size_t batch_bytes = static_cast<size_t>(in_h) * row_bytes;
  for (int32_t b = 0; b < batches; ++b) {
    const int8_t* in_batch = input + b * batch_bytes;
    for (int32_t y = 0; y < out_h; ++y) {
      const int8_t* in_row =
          in_batch + NearestSourceIndex(params, y, in_h, out_h) * row_bytes;
      for (int32_t x = 0; x < out_w; ++x) {
        const int32_t in_x = NearestSourceIndex(params, x, in_w, out_w);
        std::memcpy(output, in_row + static_cast<size_t>(in_x) * depth,
                    static_cast<size_t>(depth));
        output += depth;
      }
    }
  }
}

}  // namespace ref
}  // namespace tflm_train
