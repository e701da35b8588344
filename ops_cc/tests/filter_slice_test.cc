// Channel-sliced filters (kernels/filter_slice.h) at the kernel level: the
// forward kernels and the CONV_2D / FULLY_CONNECTED gradients with a slice
// give bit for bit what they give on the merged filter held whole, and the
// update lands in the slice rows exactly as it lands in the whole filter's.
// Random shapes and values; some output gradients are zero so that the
// gradient's skip of zero cells meets the slice's channel cursor.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "ops_cc/kernels/conv.h"
#include "ops_cc/kernels/fully_connected.h"
#include "ops_cc/kernels/grad/conv_grad.h"
#include "ops_cc/kernels/grad/fully_connected_grad.h"

namespace tflm_train {
namespace {

struct Sliced {
  std::vector<int8_t> frozen;  // the full filter with the trained rows scrambled
  std::vector<int8_t> rows;    // trained rows, in list order
  std::vector<int32_t> channels;
};

// Splits `merged` ([out, row]) into a frozen filter whose listed rows hold
// garbage (so reading them would show) and the slice of the listed rows.
Sliced Slice(const std::vector<int8_t>& merged, int out, int row,
             std::mt19937& rng) {
  Sliced s;
  s.frozen = merged;
  for (int o = 0; o < out; ++o) {
    if (rng() % 3 != 0) continue;
    s.channels.push_back(o);
    s.rows.insert(s.rows.end(), merged.begin() + o * row,
                  merged.begin() + (o + 1) * row);
    for (int i = 0; i < row; ++i) s.frozen[o * row + i] = 99;
  }
  if (s.channels.empty()) {  // at least one listed channel
    s.channels.push_back(out - 1);
    s.rows.assign(merged.end() - row, merged.end());
    for (int i = 0; i < row; ++i) s.frozen[(out - 1) * row + i] = 99;
  }
  return s;
}

std::vector<int8_t> RandomInt8(std::mt19937& rng, size_t n) {
  std::vector<int8_t> v(n);
  for (auto& x : v) x = static_cast<int8_t>(static_cast<int>(rng() % 255) - 127);
  return v;
}

std::vector<float> RandomGrad(std::mt19937& rng, size_t n) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = rng() % 4 == 0 ? 0.0f : u(rng);
  return v;
}

TEST(FilterSliceTest, ConvForwardAndGradEqualTheMergedFilter) {
  std::mt19937 rng(3);
  for (int trial = 0; trial < 20; ++trial) {
    const int in_c = 1 + rng() % 4, out_c = 2 + rng() % 6, k = 1 + rng() % 3;
    const int h = k + rng() % 4, w = k + rng() % 4;
    const Shape x_shape = {4, {1, h, w, in_c}};
    const Shape f_shape = {4, {out_c, k, k, in_c}};
    const int row = k * k * in_c;
    ConvParams p;
    p.pad_h = p.pad_w = k / 2;
    p.input_offset = 3;
    p.output_offset = -2;
    const int oh = h + 2 * p.pad_h - k + 1, ow = w + 2 * p.pad_w - k + 1;
    const Shape y_shape = {4, {1, oh, ow, out_c}};
    const auto x = RandomInt8(rng, x_shape.FlatSize());
    auto merged = RandomInt8(rng, f_shape.FlatSize());
    Sliced s = Slice(merged, out_c, row, rng);
    std::vector<int32_t> mult(out_c), shift(out_c), bias(out_c);
    for (int o = 0; o < out_c; ++o) {
      mult[o] = 1 << 30;
      shift[o] = -static_cast<int>(rng() % 8);
      bias[o] = static_cast<int32_t>(rng() % 2001) - 1000;
    }
    std::vector<int8_t> y_ref(y_shape.FlatSize()), y(y_shape.FlatSize());
    ref::ConvPerChannel(p, mult.data(), shift.data(), x_shape, x.data(),
                        f_shape, merged.data(), bias.data(), y_shape,
                        y_ref.data());
    ref::ConvPerChannel(p, mult.data(), shift.data(), x_shape, x.data(),
                        f_shape, s.frozen.data(), bias.data(), y_shape,
                        y.data(),
                        {s.rows.data(), s.channels.data(),
                         static_cast<int>(s.channels.size())});
    ASSERT_EQ(y, y_ref) << "trial " << trial;

    std::vector<float> scales(out_c);
    for (auto& v : scales) v = 0.01f + 0.001f * (rng() % 50);
    const auto dy = RandomGrad(rng, y_shape.FlatSize());
    ConvGradArgs a;
    a.pad_h = p.pad_h;
    a.pad_w = p.pad_w;
    a.input_scale = 0.05f;
    a.input_zero_point = -3;
    a.x_shape = x_shape;
    a.x = x.data();
    a.filter_shape = f_shape;
    a.filter_scales = scales.data();
    a.y_shape = y_shape;
    a.g.q_y = y_ref.data();
    a.g.dy = dy.data();
    LayerUpdate u;
    u.update_weights = true;
    u.channels = s.channels.data();
    u.num_channels = static_cast<int>(s.channels.size());
    u.weight_lr = 0.5f;
    std::vector<float> dx_ref(x_shape.FlatSize()), dx(x_shape.FlatSize());
    a.filter = merged.data();
    ConvGrad(a, dx_ref.data(), u);
    a.filter = s.frozen.data();
    a.slice = {s.rows.data(), s.channels.data(), u.num_channels};
    ConvGrad(a, dx.data(), u);
    ASSERT_EQ(0, std::memcmp(dx.data(), dx_ref.data(), dx.size() * 4))
        << "trial " << trial;
    for (size_t j = 0; j < s.channels.size(); ++j)
      for (int i = 0; i < row; ++i)
        ASSERT_EQ(s.rows[j * row + i], merged[s.channels[j] * row + i]);
    for (int o = 0, j = 0; o < out_c; ++o) {  // frozen rows untouched
      if (j < u.num_channels && s.channels[j] == o) { ++j; continue; }
      for (int i = 0; i < row; ++i)
        ASSERT_EQ(s.frozen[o * row + i], merged[o * row + i]);
    }
  }
}

TEST(FilterSliceTest, FullyConnectedForwardAndGradEqualTheMergedFilter) {
  std::mt19937 rng(5);
  for (int trial = 0; trial < 20; ++trial) {
    const int depth = 1 + rng() % 9, units = 2 + rng() % 7, rows = 1 + rng() % 3;
    const auto x = RandomInt8(rng, rows * depth);
    auto merged = RandomInt8(rng, units * depth);
    Sliced s = Slice(merged, units, depth, rng);
    const Shape f_shape = {2, {units, depth}};
    const Shape y_shape = {2, {rows, units}};
    FullyConnectedParams p;
    p.input_offset = 1;
    p.per_channel = trial % 2 == 0;
    const int32_t mult = 1 << 30, shift = -4;
    std::vector<int32_t> mults(units, mult), shifts(units, shift), bias(units);
    for (auto& b : bias) b = static_cast<int32_t>(rng() % 401) - 200;
    std::vector<int8_t> y_ref(rows * units), y(rows * units);
    ref::FullyConnected(p, mults.data(), shifts.data(), x.data(), f_shape,
                        merged.data(), bias.data(), y_shape, y_ref.data());
    ref::FullyConnected(p, mults.data(), shifts.data(), x.data(), f_shape,
                        s.frozen.data(), bias.data(), y_shape, y.data(),
                        {s.rows.data(), s.channels.data(),
                         static_cast<int>(s.channels.size())});
    ASSERT_EQ(y, y_ref) << "trial " << trial;

    std::vector<float> scales(units, 0.02f);
    const auto dy = RandomGrad(rng, rows * units);
    FullyConnectedGradArgs a;
    a.batches = rows;
    a.input_depth = depth;
    a.output_depth = units;
    a.input_scale = 0.1f;
    a.x = x.data();
    a.filter_scales = scales.data();
    a.g.q_y = y_ref.data();
    a.g.dy = dy.data();
    LayerUpdate u;
    u.update_weights = true;
    u.channels = s.channels.data();
    u.num_channels = static_cast<int>(s.channels.size());
    u.weight_lr = 0.5f;
    std::vector<float> dx_ref(rows * depth), dx(rows * depth);
    a.filter = merged.data();
    FullyConnectedGrad(a, dx_ref.data(), u);
    a.filter = s.frozen.data();
    a.slice = {s.rows.data(), s.channels.data(), u.num_channels};
    FullyConnectedGrad(a, dx.data(), u);
    ASSERT_EQ(0, std::memcmp(dx.data(), dx_ref.data(), dx.size() * 4));
    for (size_t j = 0; j < s.channels.size(); ++j)
      for (int i = 0; i < depth; ++i)
        ASSERT_EQ(s.rows[j * depth + i], merged[s.channels[j] * depth + i]);
  }
}

}  // namespace
}  // namespace tflm_train
