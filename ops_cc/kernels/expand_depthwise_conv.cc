#include "ops_cc/kernels/expand_depthwise_conv.h"

#include <cstring>

#include "ops_cc/kernels/depthwise_conv.h"

namespace tflm_train {

int ExpandDepthwiseBandRows(const ConvParams& depthwise, int filter_h,
                            int in_h) {
  const int span = (filter_h - 1) * depthwise.dilation_h + 1;
  return span < in_h ? span : in_h;
}

void ExpandDepthwiseConvPerChannel(const ConvOperands& expand,
                                   const ConvOperands& depthwise,
                                   const Shape& input_shape,
                                   const int8_t* input,
                                   const Shape& output_shape, int8_t* output,
                                   int8_t* band) {
  const int batches = input_shape.dims[0];
  const int in_h = input_shape.dims[1];
  const int in_w = input_shape.dims[2];
  const int in_c = input_shape.dims[3];
  const int mid_c = expand.filter_shape.dims[0];
  const int out_h = output_shape.dims[1];
  const int out_w = output_shape.dims[2];
  const int out_c = output_shape.dims[3];
  const int span = (depthwise.filter_shape.dims[1] - 1) *
                       depthwise.params.dilation_h + 1;
  const int64_t row_bytes = static_cast<int64_t>(in_w) * mid_c;
  const Shape in_row = {4, {1, 1, in_w, in_c}};
  const Shape mid_row = {4, {1, 1, in_w, mid_c}};
  const Shape out_row = {4, {1, 1, out_w, out_c}};

  for (int b = 0; b < batches; ++b) {
    const int8_t* in_batch = input + b * static_cast<int64_t>(in_h) * in_w * in_c;
    // The band holds expanded rows [first, first + rows), in order.
    int first = 0, rows = 0;
    for (int oy = 0; oy < out_h; ++oy) {
      const int y0 = oy * depthwise.params.stride_h - depthwise.params.pad_h;
      const int lo = y0 > 0 ? y0 : 0;
      const int hi = y0 + span < in_h ? y0 + span : in_h;
      // Drop the rows above the window (the window only moves down).
      int drop = lo - first;
      if (drop > rows) drop = rows;
      if (drop > 0) {
        std::memmove(band, band + drop * row_bytes, (rows - drop) * row_bytes);
        first += drop;
        rows -= drop;
      }
      if (rows == 0) first = lo;
      // Expand the window's rows not yet in the band, each once.
      for (int y = first + rows; y < hi; ++y) {
        ref::ConvPerChannel(expand.params, expand.multipliers, expand.shifts,
                            in_row, in_batch + static_cast<int64_t>(y) * in_w * in_c,
                            expand.filter_shape, expand.filter, expand.bias,
                            mid_row, band + (y - first) * row_bytes);
      }
      if (hi > first + rows) rows = hi - first;
      // The depthwise output row over the band: its rows [0, rows) are
      // expanded rows [first, ...), so the window starts at y0 - first;
      // band rows past `rows` are the tensor's bottom padding.
      ConvParams params = depthwise.params;
      params.pad_h = first - y0;
      const Shape band_shape = {4, {1, rows, in_w, mid_c}};
      ref::DepthwiseConvPerChannel(
          params, depthwise.multipliers, depthwise.shifts, band_shape, band,
          depthwise.filter_shape, depthwise.filter, depthwise.bias, out_row,
          output + (static_cast<int64_t>(b) * out_h + oy) * out_w * out_c);
    }
  }
}

}  // namespace tflm_train
