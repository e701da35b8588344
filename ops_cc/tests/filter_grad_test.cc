// The gradient kernels' loop orders are restructured for speed; each result
// must equal, bit for bit, the straightforward loop it replaces (the
// documented summation order).
//
// ConvGrad's and FullyConnectedGrad's weight updates accumulate the filter
// gradient for a chunk of input channels at once; they must equal, bit for
// bit, the update of each weight with ConvFilterGrad's /
// FullyConnectedFilterGrad's value (the documented per-weight sums) in
// row-major order — including the stochastic rounding draws and the momentum
// slots, which follow the visiting order. Random shapes with more input
// channels than one chunk, strides, dilations, padding, zero gradients and
// masked outputs.
#include <gtest/gtest.h>

#include <climits>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "ops_cc/kernels/grad/conv_grad.h"
#include "ops_cc/kernels/grad/depthwise_conv_grad.h"
#include "ops_cc/kernels/grad/fully_connected_grad.h"

namespace tflm_train {
namespace {

struct Case {
  int in_c, kernel, stride, dilation, pad;
  int batch = 1, in_h = 7, in_w = 6;
  bool packed_mask = false;  // g's mask from packed bits, else from q_y
};

// How the kernels read g (OutputGrad, grad_common.h): the mask from the
// int8 y or from its packed bits; dy float32, int8 (random, from rng), or a
// fused MEAN's [N, C] float dy broadcast over `cells` cells.
enum class TestMask { kInt8Y, kPacked, kNone };
enum class TestDy { kFloat, kInt8, kMean };
struct TestGradView {
  std::vector<uint8_t> bits;
  std::vector<int8_t> dy_q;
};

// Points g (range already set, dy the float dy) at q_y's mask and its dy as
// given; the view's buffers live in *store.
void SetGradView(TestMask mask, TestDy dy, const std::vector<int8_t>& q_y,
                 int cells, int channels, float dy_scale, std::mt19937& rng,
                 OutputGrad* g, TestGradView* store) {
  g->q_y = nullptr;
  g->bits = nullptr;
  if (mask == TestMask::kInt8Y) {
    g->q_y = q_y.data();
  } else if (mask == TestMask::kPacked) {
    store->bits.assign((q_y.size() + 7) / 8, 0);
    PackMask(q_y.data(), static_cast<int64_t>(q_y.size()), g->range,
             store->bits.data());
    g->bits = store->bits.data();
  }
  if (dy == TestDy::kInt8) {
    store->dy_q.resize(q_y.size());
    for (auto& v : store->dy_q)
      v = static_cast<int8_t>(static_cast<int>(rng() % 255) - 127);
    g->dy = nullptr;
    g->dy_q = store->dy_q.data();
    g->dy_scale = dy_scale;
  }
  if (dy == TestDy::kMean) {
    g->broadcast_cells = cells;
    g->channels = channels;
  }
}

// The views the layer-gradient tests run: int8 y mask and float dy; packed
// mask and int8 dy; packed mask and a fused MEAN's [N, C] dy; and (the
// input-gradient test) packed mask and float dy; no mask and float dy.
void SetLayerGradView(int view, const std::vector<int8_t>& q_y, int cells,
                      int channels, std::mt19937& rng, OutputGrad* g,
                      TestGradView* store) {
  const TestMask masks[] = {TestMask::kInt8Y, TestMask::kPacked, TestMask::kPacked,
                            TestMask::kPacked, TestMask::kNone};
  const TestDy dys[] = {TestDy::kFloat, TestDy::kInt8, TestDy::kMean, TestDy::kFloat,
                        TestDy::kFloat};
  SetGradView(masks[view], dys[view], q_y, cells, channels, 0.0037f, rng, g,
              store);
}

TEST(ConvGrad, ChunkedFilterUpdateEqualsThePerWeightReference) {
  std::mt19937 rng(7);
  // The 3x3 stride-1 tap-shared path (pairs of input channels, an odd last
  // one; odd widths; rows read through padding; dilation; several bands);
  // the generic path for groups of 4, 3 or 2 channels (one or several tiles
  // of output rows, or the first channel applied as it goes; blocks of 8,
  // 4, 1 input channels) and for one channel (g plane in scratch or looked
  // up; blocks of 16, 4, 1).
  const Case cases[] = {{150, 1, 1, 1, 0},
                        {70, 3, 2, 1, 1},
                        {64, 3, 1, 2, 2},
                        {5, 3, 1, 1, 1},
                        {129, 1, 2, 1, 0},
                        {16, 3, 1, 1, 1, 2, 8, 8},
                        {16, 3, 1, 1, 1, 2, 8, 8, true},
                        {17, 3, 1, 1, 0, 1, 5, 9},
                        {6, 3, 1, 2, 1, 3, 9, 7, true},
                        {3, 3, 1, 1, 2},
                        {16, 1, 1, 1, 0, 2, 8, 8, true},
                        {21, 1, 1, 1, 0, 1, 19, 18},
                        {7, 3, 2, 2, 1, 2, 9, 9, true},
                        {9, 5, 1, 1, 2, 2, 6, 6},
                        {40, 3, 1, 1, 1, 1, 8, 8},
                        {40, 3, 1, 1, 1, 1, 19, 18},
                        {16, 3, 1, 1, 1, 1, 14, 30},
                        {100, 1, 1, 1, 0, 1, 3, 3, true},
                        {200, 1, 1, 1, 0, 1, 3, 3}};
  for (const Case& c : cases) {
    const int out_c = 6, in_h = c.in_h, in_w = c.in_w;
    const int span = (c.kernel - 1) * c.dilation + 1;
    const int out_h = (in_h + 2 * c.pad - span) / c.stride + 1;
    const int out_w = (in_w + 2 * c.pad - span) / c.stride + 1;
    const Shape x_shape = {4, {c.batch, in_h, in_w, c.in_c}};
    const Shape f_shape = {4, {out_c, c.kernel, c.kernel, c.in_c}};
    const Shape y_shape = {4, {c.batch, out_h, out_w, out_c}};
    std::vector<int8_t> x(x_shape.FlatSize()), q_y(y_shape.FlatSize());
    for (auto& v : x) v = static_cast<int8_t>(static_cast<int>(rng() % 256) - 128);
    for (auto& v : q_y) v = static_cast<int8_t>(static_cast<int>(rng() % 256) - 128);
    std::vector<float> dy(y_shape.FlatSize());
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (auto& v : dy) v = rng() % 5 == 0 ? 0.0f : u(rng);
    std::vector<int8_t> filter(f_shape.FlatSize());
    for (auto& v : filter) v = static_cast<int8_t>(static_cast<int>(rng() % 255) - 127);
    std::vector<float> scales(out_c);
    for (auto& v : scales) v = 0.002f + 0.001f * static_cast<float>(rng() % 20);

    ConvGradArgs a;
    a.stride_h = a.stride_w = c.stride;
    a.dilation_h = a.dilation_w = c.dilation;
    a.pad_h = a.pad_w = c.pad;
    a.input_scale = 0.03f;
    a.input_zero_point = -5;
    a.x_shape = x_shape;
    a.x = x.data();
    a.filter_shape = f_shape;
    a.filter_scales = scales.data();
    a.y_shape = y_shape;
    a.g.dy = dy.data();
    a.g.range.act_min = -100;  // some outputs masked
    a.g.range.act_max = 110;
    TestGradView view_store;
    SetGradView(c.packed_mask ? TestMask::kPacked : TestMask::kInt8Y, TestDy::kFloat, q_y,
                0, 0, 0.0f, rng, &a.g, &view_store);

    // A subset, or (with the packed mask) all channels (no list).
    const std::vector<int32_t> channels =
        c.packed_mask ? std::vector<int32_t>{0, 1, 2, 3, 4, 5} : std::vector<int32_t>{0, 2, 5};
    const int64_t row = static_cast<int64_t>(c.kernel) * c.kernel * c.in_c;
    const int64_t slots = static_cast<int64_t>(channels.size()) * row;
    // Reference: one weight at a time with ConvFilterGrad, same slot order.
    std::vector<int8_t> expected = filter;
    std::vector<float> expected_velocity(slots, 0.1f);
    uint32_t expected_rng = 12345;
    {
      LayerUpdate ref;
      ref.rule.rounding = Rounding::kStochastic;
      ref.rule.rng_state = &expected_rng;
      ref.rule.momentum = 0.9f;
      ref.weight_slots.velocity = expected_velocity.data();
      int64_t slot = 0;
      for (int32_t o : channels)
        for (int ky = 0; ky < c.kernel; ++ky)
          for (int kx = 0; kx < c.kernel; ++kx)
            for (int i = 0; i < c.in_c; ++i) {
              int8_t& w = expected[Offset4(f_shape, o, ky, kx, i)];
              w = SgdUpdateInt8(w, ConvFilterGrad(a, o, ky, kx, i), 40.0f, scales[o],
                                ref.rule, ref.weight_slots, slot++);
            }
    }
    std::vector<int8_t> updated = filter;
    std::vector<float> velocity(slots, 0.1f);
    uint32_t state = 12345;
    LayerUpdate update;
    update.update_weights = true;
    update.channels = c.packed_mask ? nullptr : channels.data();
    update.num_channels = static_cast<int>(channels.size());
    update.weight_lr = 40.0f;
    update.rule.rounding = Rounding::kStochastic;
    update.rule.rng_state = &state;
    update.rule.momentum = 0.9f;
    update.weight_slots.velocity = velocity.data();
    a.filter = updated.data();
    ConvGrad(a, nullptr, update);

    EXPECT_EQ(updated, expected) << "in_c " << c.in_c << " kernel " << c.kernel
                                 << " stride " << c.stride << " dilation " << c.dilation
                                 << " batch " << c.batch;
    EXPECT_EQ(velocity, expected_velocity);
    EXPECT_EQ(state, expected_rng);
    EXPECT_NE(updated, filter);  // the update moved weights
  }
}

// DepthwiseConvGrad's weight update sums runs of listed channels together
// (8, 4 or 1 at a time); it must equal the per-weight reference in the
// (ky, kx, k) slot order. Multipliers 1 and 2, strides, dilation, padding,
// channel lists with runs and gaps or none, and every way g is read.
TEST(DepthwiseConvGrad, BlockedFilterUpdateEqualsThePerWeightReference) {
  std::mt19937 rng(8);
  struct Geometry { int in_c, multiplier, kernel, stride, dilation, pad; };
  const Geometry cases[] = {{21, 1, 3, 1, 1, 1}, {7, 2, 3, 2, 1, 1},
                            {12, 1, 3, 1, 2, 2}, {5, 3, 5, 2, 1, 2}};
  for (const Geometry& c : cases)
  for (const int view : {0, 1, 2}) {  // as in GatheredSumsEqualTheScatterLoops
  for (const bool listed : {false, true}) {
    const int channels = c.in_c * c.multiplier, in_h = 7, in_w = 6, batch = 2;
    const int span = (c.kernel - 1) * c.dilation + 1;
    const int out_h = (in_h + 2 * c.pad - span) / c.stride + 1;
    const int out_w = (in_w + 2 * c.pad - span) / c.stride + 1;
    ConvGradArgs a;
    a.stride_h = a.stride_w = c.stride;
    a.dilation_h = a.dilation_w = c.dilation;
    a.pad_h = a.pad_w = c.pad;
    a.input_scale = 0.03f;
    a.input_zero_point = 3;
    a.x_shape = {4, {batch, in_h, in_w, c.in_c}};
    a.filter_shape = {4, {1, c.kernel, c.kernel, channels}};
    a.y_shape = {4, {batch, out_h, out_w, channels}};
    std::vector<int8_t> x(a.x_shape.FlatSize()), q_y(a.y_shape.FlatSize());
    for (auto& v : x) v = static_cast<int8_t>(static_cast<int>(rng() % 256) - 128);
    for (auto& v : q_y) v = static_cast<int8_t>(static_cast<int>(rng() % 256) - 128);
    std::vector<float> dy(view == 2 ? batch * channels : a.y_shape.FlatSize());
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (auto& v : dy) v = rng() % 5 == 0 ? (rng() % 2 ? 0.0f : -0.0f) : u(rng);
    std::vector<int8_t> filter(a.filter_shape.FlatSize());
    for (auto& v : filter) v = static_cast<int8_t>(static_cast<int>(rng() % 255) - 127);
    std::vector<float> scales(channels);
    for (auto& v : scales) v = 0.002f + 0.001f * static_cast<float>(rng() % 20);
    a.x = x.data();
    a.filter_scales = scales.data();
    a.g.dy = dy.data();
    a.g.range.act_min = -100;
    a.g.range.act_max = 110;
    TestGradView view_store;
    SetLayerGradView(view, q_y, out_h * out_w, channels, rng, &a.g, &view_store);
    // Runs of 9 (8 + 1), 4 and 2 with gaps, or all channels (no list).
    std::vector<int32_t> list;
    for (int ch = 0; ch < channels; ++ch)
      if (!listed || ch < 9 || (ch >= 10 && ch < 14) || ch == 15 || ch == 16 || ch == 19)
        list.push_back(ch);
    const int count = static_cast<int>(list.size());
    const int64_t slots = static_cast<int64_t>(c.kernel) * c.kernel * count;
    std::vector<int8_t> expected = filter;
    std::vector<float> expected_velocity(slots, 0.1f);
    uint32_t expected_rng = 99;
    {
      SgdRule rule;
      rule.rounding = Rounding::kStochastic;
      rule.rng_state = &expected_rng;
      rule.momentum = 0.9f;
      OptimizerSlots ref_slots;
      ref_slots.velocity = expected_velocity.data();
      int64_t slot = 0;
      for (int ky = 0; ky < c.kernel; ++ky)
        for (int kx = 0; kx < c.kernel; ++kx)
          for (int32_t ch : list) {
            int8_t& w = expected[Offset4(a.filter_shape, 0, ky, kx, ch)];
            w = SgdUpdateInt8(w, DepthwiseConvFilterGrad(a, ky, kx, ch), 40.0f,
                              scales[ch], rule, ref_slots, slot++);
          }
    }
    std::vector<int8_t> updated = filter;
    std::vector<float> velocity(slots, 0.1f);
    uint32_t state = 99;
    LayerUpdate update;
    update.update_weights = true;
    update.channels = listed ? list.data() : nullptr;
    update.num_channels = count;
    update.weight_lr = 40.0f;
    update.rule.rounding = Rounding::kStochastic;
    update.rule.rng_state = &state;
    update.rule.momentum = 0.9f;
    update.weight_slots.velocity = velocity.data();
    a.filter = updated.data();
    DepthwiseConvGrad(a, nullptr, update);
    EXPECT_EQ(updated, expected) << "in_c " << c.in_c << " multiplier " << c.multiplier
                                 << " view " << view << " listed " << listed;
    EXPECT_EQ(velocity, expected_velocity);
    EXPECT_EQ(state, expected_rng);
    EXPECT_NE(updated, filter);
  }
  }
}

TEST(FullyConnectedGrad, ChunkedFilterUpdateEqualsThePerWeightReference) {
  std::mt19937 rng(9);
  for (const int depth : {5, 64, 150}) {
    const int batches = 3, units = 7;
    std::vector<int8_t> x(batches * depth), q_y(batches * units);
    for (auto& v : x) v = static_cast<int8_t>(static_cast<int>(rng() % 256) - 128);
    for (auto& v : q_y) v = static_cast<int8_t>(static_cast<int>(rng() % 256) - 128);
    std::vector<float> dy(batches * units);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (auto& v : dy) v = rng() % 5 == 0 ? 0.0f : u(rng);
    std::vector<int8_t> filter(units * depth);
    for (auto& v : filter) v = static_cast<int8_t>(static_cast<int>(rng() % 255) - 127);
    std::vector<float> scales(units);
    for (auto& v : scales) v = 0.002f + 0.001f * static_cast<float>(rng() % 20);
    FullyConnectedGradArgs a;
    a.batches = batches;
    a.input_depth = depth;
    a.output_depth = units;
    a.input_scale = 0.03f;
    a.input_zero_point = 4;
    a.x = x.data();
    a.filter_scales = scales.data();
    a.g.q_y = q_y.data();
    a.g.dy = dy.data();
    a.g.range.act_min = -90;
    a.g.range.act_max = 120;
    const int32_t channels[] = {1, 3, 6};
    const int64_t slots = 3 * depth;
    std::vector<int8_t> expected = filter;
    std::vector<float> expected_velocity(slots, -0.2f);
    uint32_t expected_rng = 777;
    {
      SgdRule rule;
      rule.rounding = Rounding::kStochastic;
      rule.rng_state = &expected_rng;
      rule.momentum = 0.5f;
      OptimizerSlots ref_slots;
      ref_slots.velocity = expected_velocity.data();
      int64_t slot = 0;
      for (int32_t o : channels)
        for (int i = 0; i < depth; ++i) {
          int8_t& w = expected[o * depth + i];
          w = SgdUpdateInt8(w, FullyConnectedFilterGrad(a, o, i), 40.0f, scales[o], rule,
                            ref_slots, slot++);
        }
    }
    std::vector<int8_t> updated = filter;
    std::vector<float> velocity(slots, -0.2f);
    uint32_t state = 777;
    LayerUpdate update;
    update.update_weights = true;
    update.channels = channels;
    update.num_channels = 3;
    update.weight_lr = 40.0f;
    update.rule.rounding = Rounding::kStochastic;
    update.rule.rng_state = &state;
    update.rule.momentum = 0.5f;
    update.weight_slots.velocity = velocity.data();
    a.filter = updated.data();
    FullyConnectedGrad(a, nullptr, update);
    EXPECT_EQ(updated, expected) << "depth " << depth;
    EXPECT_EQ(velocity, expected_velocity);
    EXPECT_EQ(state, expected_rng);
    EXPECT_NE(updated, filter);
  }
}

// The input-gradient kernels: a float dx of a filter with several taps
// tap by tap (float weight rows, 16-sum register blocks), otherwise each
// input cell's terms gathered (register blocks, two 1x1-conv cells at once,
// masked terms skipped).
// References: the documented scatter loops, one output cell, channel (and,
// for depthwise, tap) at a time, each term added to dx as it comes.
void ReferenceConvInputGrad(const ConvGradArgs& a, std::vector<float>* dx) {
  dx->assign(a.x_shape.FlatSize(), 0.0f);
  const int in_c = a.x_shape.dims[3];
  for (int n = 0; n < a.y_shape.dims[0]; ++n)
  for (int oy = 0; oy < a.y_shape.dims[1]; ++oy)
    for (int ox = 0; ox < a.y_shape.dims[2]; ++ox)
      for (int o = 0; o < a.y_shape.dims[3]; ++o) {
        const float g = a.g.At(Offset4(a.y_shape, n, oy, ox, o));
        if (g == 0.0f) continue;
        const float gs = g * a.filter_scales[o];
        for (int ky = 0; ky < a.filter_shape.dims[1]; ++ky) {
          const int iy = oy * a.stride_h - a.pad_h + ky * a.dilation_h;
          if (iy < 0 || iy >= a.x_shape.dims[1]) continue;
          for (int kx = 0; kx < a.filter_shape.dims[2]; ++kx) {
            const int ix = ox * a.stride_w - a.pad_w + kx * a.dilation_w;
            if (ix < 0 || ix >= a.x_shape.dims[2]) continue;
            for (int i = 0; i < in_c; ++i)
              (*dx)[Offset4(a.x_shape, n, iy, ix, i)] +=
                  gs * static_cast<float>(a.filter[Offset4(a.filter_shape, o, ky, kx, i)]);
          }
        }
      }
}

void ReferenceDepthwiseInputGrad(const ConvGradArgs& a, std::vector<float>* dx) {
  dx->assign(a.x_shape.FlatSize(), 0.0f);
  const int channels = a.filter_shape.dims[3];
  const int multiplier = channels / a.x_shape.dims[3];
  for (int n = 0; n < a.y_shape.dims[0]; ++n)
  for (int oy = 0; oy < a.y_shape.dims[1]; ++oy)
    for (int ox = 0; ox < a.y_shape.dims[2]; ++ox)
      for (int ky = 0; ky < a.filter_shape.dims[1]; ++ky) {
        const int iy = oy * a.stride_h - a.pad_h + ky * a.dilation_h;
        if (iy < 0 || iy >= a.x_shape.dims[1]) continue;
        for (int kx = 0; kx < a.filter_shape.dims[2]; ++kx) {
          const int ix = ox * a.stride_w - a.pad_w + kx * a.dilation_w;
          if (ix < 0 || ix >= a.x_shape.dims[2]) continue;
          for (int c = 0; c < channels; ++c) {
            const float g = a.g.At(Offset4(a.y_shape, n, oy, ox, c));
            if (g == 0.0f) continue;
            (*dx)[Offset4(a.x_shape, n, iy, ix, c / multiplier)] +=
                g * a.filter_scales[c] *
                static_cast<float>(a.filter[Offset4(a.filter_shape, 0, ky, kx, c)]);
          }
        }
      }
}

bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(InputGrad, GatheredSumsEqualTheScatterLoops) {
  std::mt19937 rng(11);
  struct Geometry {
    int in_c, kernel, stride, dilation, pad, out_c, multiplier;
    int in_w = 6;
  };
  // Input depths that hit the tap-by-tap blocks of 16, 8 and 1 channels and
  // several weight chunks (70), 1x1 cells in pairs, strides, dilation, pad 0
  // and 2 (readers outside the output at the edges), more than 24 output
  // channels (the ScaledRun form).
  const Geometry cases[] = {{7, 1, 1, 1, 0, 13, 1}, {5, 3, 2, 1, 1, 9, 1},
                            {3, 3, 1, 2, 2, 6, 2},  {70, 3, 1, 1, 1, 70, 1},
                            {4, 5, 2, 1, 2, 11, 3}, {20, 1, 1, 1, 0, 40, 1},
                            {24, 1, 2, 1, 0, 8, 1}, {400, 1, 1, 1, 0, 9, 1},
                            {16, 3, 1, 1, 1, 16, 1, 7}, {9, 3, 1, 1, 0, 5, 1, 7},
                            {12, 5, 1, 1, 2, 4, 1}, {2, 3, 1, 1, 1, 30, 1}};
  for (const Geometry& c : cases) {
    // Dense and sparse g: 1x1 cells are summed in pairs or one by one.
    for (const int zero_one_in : {3, 50}) {
    for (const bool depthwise : {false, true}) {
    // How g is read: the five views of SetLayerGradView.
    for (const int view : {0, 1, 2, 3, 4}) {
      const int in_h = 7, in_w = c.in_w;
      const int channels = depthwise ? c.in_c * c.multiplier : c.out_c;
      const int span = (c.kernel - 1) * c.dilation + 1;
      const int out_h = (in_h + 2 * c.pad - span) / c.stride + 1;
      const int out_w = (in_w + 2 * c.pad - span) / c.stride + 1;
      ConvGradArgs a;
      a.stride_h = a.stride_w = c.stride;
      a.dilation_h = a.dilation_w = c.dilation;
      a.pad_h = a.pad_w = c.pad;
      a.x_shape = {4, {2, in_h, in_w, c.in_c}};
      a.filter_shape = depthwise ? Shape{4, {1, c.kernel, c.kernel, channels}}
                                 : Shape{4, {channels, c.kernel, c.kernel, c.in_c}};
      a.y_shape = {4, {2, out_h, out_w, channels}};
      std::vector<int8_t> filter(a.filter_shape.FlatSize()), q_y(a.y_shape.FlatSize());
      for (auto& v : filter) v = static_cast<int8_t>(static_cast<int>(rng() % 255) - 127);
      for (auto& v : q_y) v = static_cast<int8_t>(static_cast<int>(rng() % 256) - 128);
      std::vector<float> dy(view == 2 ? 2 * channels : a.y_shape.FlatSize()),
          scales(channels);
      std::uniform_real_distribution<float> u(-1.0f, 1.0f);
      // Many zeros (whole cells too) so that groups of fewer than 4 occur.
      for (auto& v : dy)
        v = rng() % zero_one_in == 0 ? (rng() % 2 ? 0.0f : -0.0f) : u(rng);
      for (auto& v : scales) v = 0.002f + 0.001f * static_cast<float>(rng() % 20);
      a.filter = filter.data();
      a.filter_scales = scales.data();
      a.g.dy = dy.data();
      a.g.range.act_min = -110;
      a.g.range.act_max = 100;
      TestGradView view_store;
      SetLayerGradView(view, q_y, out_h * out_w, channels, rng, &a.g, &view_store);
      std::vector<float> expected, dx(a.x_shape.FlatSize(), 7.0f);
      if (depthwise) {
        ReferenceDepthwiseInputGrad(a, &expected);
        DepthwiseConvInputGrad(a, dx.data());
      } else {
        ReferenceConvInputGrad(a, &expected);
        ConvInputGrad(a, dx.data());
        // The cell-by-cell form the int8 sinks use (ConvInputGrad takes the
        // tap-by-tap one for filters of several taps).
        std::vector<float> gathered(a.x_shape.FlatSize(), 7.0f);
        FloatDxSink sink{gathered.data(), c.in_c};
        ConvInputGradTo(a, sink);
        EXPECT_TRUE(SameBits(gathered, expected)) << "gathered conv in_c " << c.in_c;
        // The same sums with channels 1 and 3 from a slice over a frozen
        // filter whose own rows there are different.
        const int64_t row = a.filter_shape.FlatSize() / channels;
        const int32_t sliced[] = {1, 3};
        std::vector<int8_t> rows, frozen = filter;
        for (const int32_t o : sliced) {
          rows.insert(rows.end(), filter.begin() + o * row, filter.begin() + (o + 1) * row);
          for (int64_t k = 0; k < row; ++k) frozen[o * row + k] = static_cast<int8_t>(k % 7 - 3);
        }
        a.filter = frozen.data();
        a.slice = {rows.data(), sliced, channels > 3 ? 2 : 0};
        if (a.slice.count == 0) a.filter = filter.data();
        std::vector<float> from_slice(a.x_shape.FlatSize(), 7.0f);
        ConvInputGrad(a, from_slice.data());
        EXPECT_TRUE(SameBits(from_slice, expected)) << "sliced conv in_c " << c.in_c;
      }
      EXPECT_TRUE(SameBits(dx, expected))
          << (depthwise ? "depthwise" : "conv") << " in_c " << c.in_c << " kernel " << c.kernel
          << " view " << view;
      bool nonzero = false;
      for (float v : dx) nonzero = nonzero || v != 0.0f;
      EXPECT_TRUE(nonzero);
    }
    }
    }
  }
}

TEST(InputGrad, FullyConnectedGatheredSumsEqualTheScatterLoop) {
  std::mt19937 rng(12);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (const int depth : {1, 5, 16, 37}) {
    FullyConnectedGradArgs a;
    a.batches = 3;
    a.input_depth = depth;
    a.output_depth = 45;  // more than one batch of rows
    std::vector<int8_t> filter(a.output_depth * depth);
    std::vector<float> dy(a.batches * a.output_depth), scales(a.output_depth);
    for (auto& v : filter) v = static_cast<int8_t>(static_cast<int>(rng() % 255) - 127);
    for (auto& v : dy) v = rng() % 4 == 0 ? (rng() % 2 ? 0.0f : -0.0f) : u(rng);
    for (auto& v : scales) v = 0.002f + 0.001f * static_cast<float>(rng() % 20);
    a.filter = filter.data();
    a.filter_scales = scales.data();
    a.g.dy = dy.data();
    std::vector<float> expected(a.batches * depth, 0.0f), dx(expected.size(), 7.0f);
    for (int b = 0; b < a.batches; ++b)
      for (int o = 0; o < a.output_depth; ++o) {
        const float g = dy[b * a.output_depth + o];
        if (g == 0.0f) continue;
        const float gs = g * scales[o];
        for (int i = 0; i < depth; ++i)
          expected[b * depth + i] += gs * static_cast<float>(filter[o * depth + i]);
      }
    FullyConnectedInputGrad(a, dx.data());
    EXPECT_TRUE(SameBits(dx, expected)) << "depth " << depth;
  }
}

// UpdateConvBias sums up to 24 channels' bias gradients together; each
// bias must step exactly as with the straightforward per-channel sum of At
// over the output cells, in channel order (stochastic rounding draws and
// momentum slots follow it). More channels than one chunk, every view of g.
TEST(ConvGrad, ChunkedBiasUpdateEqualsThePerChannelSums) {
  std::mt19937 rng(5);
  for (const int out_c : {5, 24, 53}) {
    for (int view = 0; view < 4; ++view) {
      const Shape y_shape = {4, {2, 3, 5, out_c}};
      const int64_t n = y_shape.FlatSize();
      std::vector<int8_t> q_y(n);
      std::vector<float> dy(n);
      std::uniform_real_distribution<float> u(-1.0f, 1.0f);
      for (int64_t k = 0; k < n; ++k) {
        q_y[k] = static_cast<int8_t>(static_cast<int>(rng() % 256) - 128);
        dy[k] = u(rng);
      }
      ConvGradArgs a;
      a.y_shape = y_shape;
      a.g.dy = dy.data();
      a.g.range = {-90, 100};
      const TestDy dys[] = {TestDy::kFloat, TestDy::kFloat, TestDy::kInt8, TestDy::kMean};
      TestGradView view_store;
      SetGradView(view == 0 ? TestMask::kInt8Y : TestMask::kPacked, dys[view], q_y,
                  15, out_c, 0.02f, rng, &a.g, &view_store);
      std::vector<float> bias_scales(out_c);
      for (auto& v : bias_scales) v = 1e-4f * static_cast<float>(1 + rng() % 9);
      std::vector<int32_t> bias(out_c);
      for (auto& v : bias) v = static_cast<int32_t>(rng() % 2001) - 1000;

      std::vector<int32_t> expected = bias;
      std::vector<float> expected_velocity(out_c, 0.1f);
      uint32_t expected_rng = 99;
      SgdRule rule;
      rule.rounding = Rounding::kStochastic;
      rule.momentum = 0.9f;
      rule.qas = true;
      rule.rng_state = &expected_rng;
      OptimizerSlots ref_slots;
      ref_slots.velocity = expected_velocity.data();
      for (int o = 0; o < out_c; ++o) {
        float sum = 0.0f;
        for (int64_t k = 0; k < n / out_c; ++k) sum += a.g.At(k * out_c + o);
        expected[o] = SgdUpdateInt32(expected[o], sum, 1e-3f, bias_scales[o],
                                     rule, ref_slots, o);
      }

      std::vector<float> velocity(out_c, 0.1f);
      uint32_t state = 99;
      LayerUpdate update;
      update.bias = bias.data();
      update.bias_scales = bias_scales.data();
      update.bias_lr = 1e-3f;
      update.rule = rule;
      update.rule.rng_state = &state;
      update.bias_slots.velocity = velocity.data();
      const std::vector<int32_t> before = bias;
      UpdateConvBias(a, update);
      EXPECT_EQ(bias, expected) << "out_c " << out_c << " view " << view;
      EXPECT_NE(bias, before);  // the update moved biases
      EXPECT_EQ(velocity, expected_velocity);
      EXPECT_EQ(state, expected_rng);
    }
  }
}

// OutputGrad::Values reads the mask 24 elements at a time; it must equal At
// element by element: int8 y mask, packed mask, no mask, int8 dy, fused
// MEAN broadcast, runs that start mid-byte.
TEST(OutputGrad, ValuesEqualAt) {
  const int cells = 6, channels = 11, n = cells * channels;
  std::vector<int8_t> q_y(n), dy_q(n);
  std::vector<float> dy(n);
  for (int k = 0; k < n; ++k) {
    q_y[k] = static_cast<int8_t>(k * 53 % 256 - 128);
    dy_q[k] = static_cast<int8_t>(k * 29 % 255 - 127);
    dy[k] = 0.25f * static_cast<float>(k % 7) - 0.75f;
  }
  const ActivationMask range{-128, 40};
  std::vector<uint8_t> bits((n + 7) / 8);
  PackMask(q_y.data(), n, range, bits.data());
  for (int view = 0; view < 5; ++view) {
    OutputGrad g;
    g.dy = dy.data();
    g.range = range;
    if (view == 0) g.q_y = q_y.data();
    if (view == 1 || view == 3 || view == 4) g.bits = bits.data();
    if (view == 3) {
      g.dy_q = dy_q.data();
      g.dy_scale = 0.01f;
    }
    if (view == 4) {
      g.broadcast_cells = cells;
      g.channels = channels;
    }
    for (const int k0 : {0, 3, 13}) {
      std::vector<float> values(n - k0);
      g.Values(k0, n - k0, values.data());
      for (int k = k0; k < n; ++k)
        EXPECT_EQ(values[k - k0], g.At(k)) << "view " << view << " element " << k;
    }
  }
}

// PackMask packs one unsigned compare per element; every bit must be
// ActivationMask::Passes of its element, for any range (also empty, reversed
// and beyond int8) and lengths that end mid-byte.
TEST(PackMask, EachBitIsPassesOfItsElement) {
  std::vector<int8_t> q(259);
  for (size_t k = 0; k < q.size(); ++k) q[k] = static_cast<int8_t>(k * 37 + k / 256);
  const int32_t bounds[][2] = {{-128, 127}, {-128, 5},   {-3, 127},
                               {-1, 0},     {0, 0},      {7, -7},
                               {INT32_MIN, INT32_MAX},   {INT32_MAX, INT32_MIN},
                               {-200, 300}, {126, 127},  {-129, 128}};
  for (const auto& b : bounds) {
    const ActivationMask range{b[0], b[1]};
    for (const int64_t n : {int64_t{0}, int64_t{5}, int64_t{8}, int64_t{259}}) {
      std::vector<uint8_t> bits((n + 7) / 8 + 1, 0xAB);
      PackMask(q.data(), n, range, bits.data());
      for (int64_t k = 0; k < n; ++k)
        EXPECT_EQ((bits[k / 8] >> (k % 8)) & 1, range.Passes(q[k]) ? 1 : 0)
            << "range [" << b[0] << ", " << b[1] << "] element " << k;
      if (n % 8 != 0) EXPECT_EQ(bits[n / 8] >> (n % 8), 0) << "unused bits";
      EXPECT_EQ(bits[(n + 7) / 8], 0xAB) << "wrote past the last byte";
    }
  }
}

}  // namespace
}  // namespace tflm_train
