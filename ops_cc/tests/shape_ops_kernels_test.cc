// The shape ops (STRIDED_SLICE, TRANSPOSE, SQUEEZE, EXPAND_DIMS,
// RESIZE_NEAREST_NEIGHBOR) and MEAN over any axes: small hand-checked cases,
// the mean against a direct re-derivation, and the op wrappers' refusals
// through a fake context. (Bit-exactness against TFLM itself:
// tests/test_forward_shape_ops.py.)
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "ops_cc/core/quantization.h"
#include "ops_cc/kernels/mean.h"
#include "ops_cc/kernels/resize_nearest_neighbor.h"
#include "ops_cc/kernels/strided_slice.h"
#include "ops_cc/kernels/transpose.h"
#include "ops_cc/ops/builtin_options.h"
#include "ops_cc/ops/forward_ops.h"
#include "ops_cc/tests/fake_context.h"

namespace tflm_train {
namespace {

// int8 tensor with values 0, 1, 2, ... (scale 0.5, zero point -3).
FakeTensor Iota(Shape shape) {
  FakeTensor t = Int8Tensor(shape, 0.5f, -3);
  for (size_t i = 0; i < t.data.size(); ++i) t.data[i] = static_cast<uint8_t>(i);
  return t;
}

FakeTensor Int32Const(std::vector<int32_t> values) {
  return ConstTensor<int32_t>(DataType::kInt32,
                              MakeShape({static_cast<int32_t>(values.size())}),
                              values);
}

std::vector<int> Values(const FakeTensor& t) {
  std::vector<int> v;
  for (uint8_t b : t.data) v.push_back(static_cast<int8_t>(b));
  return v;
}

Status RunOp(FakeOp& op, int builtin_code) {
  const OpKernel* kernel = FindForwardKernel(builtin_code);
  if (kernel == nullptr) return Status::kUnsupportedOp;
  return op.RunFresh(*kernel);
}

// Expects Prepare to fail with a message containing `text`.
void ExpectRefused(FakeOp& op, int code, const std::string& text) {
  EXPECT_EQ(RunOp(op, code), Status::kError);
  EXPECT_NE(op.error().find(text), std::string::npos) << op.error();
}

TEST(ShapeOps, KernelTable) {
  for (int code : {kBuiltinStridedSlice, kBuiltinTranspose, kBuiltinSqueeze,
                   kBuiltinExpandDims, kBuiltinResizeNearestNeighbor,
                   kBuiltinMean}) {
    const OpKernel* k = FindForwardKernel(code);
    ASSERT_NE(k, nullptr) << code;
    EXPECT_EQ(k->builtin_code, code);
  }
}

// ---- STRIDED_SLICE -------------------------------------------------------

TEST(StridedSlice, ResolvesAxesLikeTflm) {
  // Positive stride: negative indices count from the end, clamp to [0, n].
  SliceAxis a = ref::ResolveSliceAxis(7, 1, 5, 2, false, false, false);
  EXPECT_EQ(a.start, 1);
  EXPECT_EQ(a.count, 2);  // 1, 3
  a = ref::ResolveSliceAxis(7, -3, 100, 1, false, false, false);
  EXPECT_EQ(a.start, 4);
  EXPECT_EQ(a.count, 3);
  a = ref::ResolveSliceAxis(7, 5, 2, 1, false, false, false);
  EXPECT_EQ(a.count, 0);  // empty
  // Negative stride: clamp to [-1, n - 1]; masks take the whole axis.
  a = ref::ResolveSliceAxis(7, 100, -100, -3, false, false, false);
  EXPECT_EQ(a.start, 6);
  EXPECT_EQ(a.count, 3);  // 6, 3, 0
  a = ref::ResolveSliceAxis(7, 0, 0, -1, true, true, false);
  EXPECT_EQ(a.start, 6);
  EXPECT_EQ(a.count, 7);
  a = ref::ResolveSliceAxis(7, 3, 3, 2, true, false, false);
  EXPECT_EQ(a.start, 0);
  EXPECT_EQ(a.count, 2);  // 0, 2
  // Shrink: one element at begin, none when begin was clamped to n.
  a = ref::ResolveSliceAxis(7, -1, 0, 1, false, false, true);
  EXPECT_EQ(a.start, 6);
  EXPECT_EQ(a.count, 1);
  EXPECT_EQ(ref::ResolveSliceAxis(7, 7, 8, 1, false, false, true).count, 0);
  EXPECT_EQ(ref::ResolveSliceAxis(7, 2, 3, -1, false, false, true).count, 0);
  // Huge strides do not overflow.
  a = ref::ResolveSliceAxis(7, 5, 7, INT32_MAX, false, false, false);
  EXPECT_EQ(a.count, 1);
  a = ref::ResolveSliceAxis(7, 5, -100, INT32_MIN, false, false, false);
  EXPECT_EQ(a.count, 1);
}

struct SliceFixture {
  FakeTensor input = Iota(MakeShape({2, 3, 4}));
  FakeTensor begin = Int32Const({0, 1, -1});
  FakeTensor end = Int32Const({0, 3, 0});
  FakeTensor strides = Int32Const({1, 1, -2});
  FakeTensor output = Int8Tensor(MakeShape({2, 2, 2}), 0.5f, -3);
  StridedSliceOptions options;
  FakeOp op;
  SliceFixture() {
    // x[0:, 1:3, -1:0:-2]: the end mask takes every batch.
    options.end_mask = 1;
    op.inputs = {&input, &begin, &end, &strides};
    op.outputs = {&output};
    op.builtin_options = &options;
  }
};

TEST(StridedSlice, ByHand) {
  SliceFixture f;
  ASSERT_EQ(RunOp(f.op, kBuiltinStridedSlice), Status::kOk) << f.op.error();
  // input[b][r][c] = 12b + 4r + c; rows 1, 2; columns 3, 1.
  EXPECT_EQ(Values(f.output),
            (std::vector<int>{7, 5, 11, 9, 19, 17, 23, 21}));
  // Shrink axis 1 at index -1 (row 2): output [2, 2].
  f.options.shrink_axis_mask = 2;
  f.begin = Int32Const({0, -1, -1});
  f.output = Int8Tensor(MakeShape({2, 2}), 0.5f, -3);
  ASSERT_EQ(RunOp(f.op, kBuiltinStridedSlice), Status::kOk) << f.op.error();
  EXPECT_EQ(Values(f.output), (std::vector<int>{11, 9, 23, 21}));
}

TEST(StridedSlice, ScalarAndEmpty) {
  FakeTensor input = Iota(MakeShape({3}));
  FakeTensor begin = Int32Const({1});
  FakeTensor end = Int32Const({2});
  FakeTensor strides = Int32Const({1});
  FakeTensor output = Int8Tensor(Shape(), 0.5f, -3);  // rank 0
  StridedSliceOptions options;
  options.shrink_axis_mask = 1;
  FakeOp op({&input, &begin, &end, &strides}, {&output});
  op.builtin_options = &options;
  ASSERT_EQ(RunOp(op, kBuiltinStridedSlice), Status::kOk) << op.error();
  EXPECT_EQ(Values(output), (std::vector<int>{1}));
  options.shrink_axis_mask = 0;
  begin = Int32Const({2});
  end = Int32Const({1});
  output = Int8Tensor(MakeShape({0}), 0.5f, -3);
  EXPECT_EQ(RunOp(op, kBuiltinStridedSlice), Status::kOk) << op.error();
}

TEST(StridedSlice, RefusesWhatItCannotRunLikeTflm) {
  {
    SliceFixture f;
    f.begin.is_constant = false;
    ExpectRefused(f.op, kBuiltinStridedSlice, "begin must be a constant int32");
  }
  {
    SliceFixture f;
    f.strides = ConstTensor<float>(DataType::kFloat32, MakeShape({3}),
                                   {1.0f, 1.0f, 1.0f});
    ExpectRefused(f.op, kBuiltinStridedSlice, "strides must be a constant int32");
  }
  {
    SliceFixture f;
    f.end = Int32Const({0, 3});
    ExpectRefused(f.op, kBuiltinStridedSlice, "end has 2 elements, expected 3");
  }
  {
    SliceFixture f;
    f.strides = Int32Const({1, 0, 1});
    ExpectRefused(f.op, kBuiltinStridedSlice, "stride of dimension 1 is 0");
  }
  {
    SliceFixture f;
    f.options.ellipsis_mask = 2;
    ExpectRefused(f.op, kBuiltinStridedSlice, "ellipsis");
  }
  {
    SliceFixture f;
    f.options.new_axis_mask = 1;
    ExpectRefused(f.op, kBuiltinStridedSlice, "new-axis");
  }
  {
    SliceFixture f;
    f.options.offset = true;
    ExpectRefused(f.op, kBuiltinStridedSlice, "offset");
  }
  {
    SliceFixture f;  // shrink at index 3 of a dimension of 3
    f.options.shrink_axis_mask = 2;
    f.begin = Int32Const({0, 3, -1});
    f.output = Int8Tensor(MakeShape({2, 2}), 0.5f, -3);
    ExpectRefused(f.op, kBuiltinStridedSlice, "selects no element");
  }
  {
    SliceFixture f;
    f.output = Int8Tensor(MakeShape({2, 2, 3}), 0.5f, -3);
    ExpectRefused(f.op, kBuiltinStridedSlice, "output dimension 2");
  }
  {
    SliceFixture f;
    f.output = Int8Tensor(MakeShape({2, 2, 2, 1}), 0.5f, -3);
    ExpectRefused(f.op, kBuiltinStridedSlice, "output rank 4, expected 3");
  }
  {
    SliceFixture f;
    f.output.zero_points = {0};
    ExpectRefused(f.op, kBuiltinStridedSlice, "differs from the input");
  }
  {
    SliceFixture f;
    f.input = Iota(MakeShape({1, 1, 2, 3, 4}));
    ExpectRefused(f.op, kBuiltinStridedSlice, "rank 5 exceeds 4");
  }
  {
    SliceFixture f;
    f.op.inputs.pop_back();
    ExpectRefused(f.op, kBuiltinStridedSlice, "expected 4 inputs");
  }
  {
    SliceFixture f;
    f.op.builtin_options = nullptr;
    ExpectRefused(f.op, kBuiltinStridedSlice, "missing builtin options");
  }
}

// ---- TRANSPOSE -----------------------------------------------------------

struct TransposeFixture {
  FakeTensor input = Iota(MakeShape({2, 3, 4}));
  FakeTensor perm = Int32Const({2, 0, 1});
  FakeTensor output = Int8Tensor(MakeShape({4, 2, 3}), 0.5f, -3);
  FakeOp op;
  TransposeFixture() {
    op.inputs = {&input, &perm};
    op.outputs = {&output};
  }
};

TEST(Transpose, ByHand) {
  TransposeFixture f;
  ASSERT_EQ(RunOp(f.op, kBuiltinTranspose), Status::kOk) << f.op.error();
  // output[c][a][b] = input[a][b][c] = 12a + 4b + c.
  const std::vector<int> got = Values(f.output);
  for (int c = 0; c < 4; ++c)
    for (int a = 0; a < 2; ++a)
      for (int b = 0; b < 3; ++b)
        EXPECT_EQ(got[(c * 2 + a) * 3 + b], 12 * a + 4 * b + c);
  // Rank 2 is a matrix transpose; rank 1 a copy.
  f.input = Iota(MakeShape({2, 3}));
  f.perm = Int32Const({1, 0});
  f.output = Int8Tensor(MakeShape({3, 2}), 0.5f, -3);
  ASSERT_EQ(RunOp(f.op, kBuiltinTranspose), Status::kOk) << f.op.error();
  EXPECT_EQ(Values(f.output), (std::vector<int>{0, 3, 1, 4, 2, 5}));
  f.input = Iota(MakeShape({5}));
  f.perm = Int32Const({0});
  f.output = Int8Tensor(MakeShape({5}), 0.5f, -3);
  ASSERT_EQ(RunOp(f.op, kBuiltinTranspose), Status::kOk) << f.op.error();
  EXPECT_EQ(Values(f.output), (std::vector<int>{0, 1, 2, 3, 4}));
}

TEST(Transpose, Rank5AgainstIndexArithmetic) {
  TransposeParams p;
  p.rank = 5;
  const int32_t perm[5] = {3, 0, 4, 2, 1};
  const Shape in = MakeShape({2, 3, 1, 4, 2});
  std::vector<int8_t> input(48), output(48);
  for (int i = 0; i < 48; ++i) input[i] = static_cast<int8_t>(i);
  for (int d = 0; d < 5; ++d) p.perm[d] = perm[d];
  ref::Transpose(p, in, input.data(), output.data());
  int32_t stride[5];
  stride[4] = 1;
  for (int d = 3; d >= 0; --d) stride[d] = stride[d + 1] * in.dims[d + 1];
  int out_pos = 0;
  int32_t idx[5];
  for (idx[0] = 0; idx[0] < in.dims[perm[0]]; ++idx[0])
    for (idx[1] = 0; idx[1] < in.dims[perm[1]]; ++idx[1])
      for (idx[2] = 0; idx[2] < in.dims[perm[2]]; ++idx[2])
        for (idx[3] = 0; idx[3] < in.dims[perm[3]]; ++idx[3])
          for (idx[4] = 0; idx[4] < in.dims[perm[4]]; ++idx[4]) {
            int32_t src = 0;
            for (int d = 0; d < 5; ++d) src += idx[d] * stride[perm[d]];
            ASSERT_EQ(output[out_pos++], input[src]);
          }
}

TEST(Transpose, RefusesBadPermutations) {
  {
    TransposeFixture f;
    f.perm.is_constant = false;
    ExpectRefused(f.op, kBuiltinTranspose, "perm must be a constant int32");
  }
  {
    TransposeFixture f;
    f.perm = Int32Const({2, 0, 0});
    ExpectRefused(f.op, kBuiltinTranspose, "not a permutation");
  }
  {
    TransposeFixture f;
    f.perm = Int32Const({3, 0, 1});
    ExpectRefused(f.op, kBuiltinTranspose, "not a permutation");
  }
  {
    TransposeFixture f;
    f.perm = Int32Const({-1, 0, 1});
    ExpectRefused(f.op, kBuiltinTranspose, "not a permutation");
  }
  {
    TransposeFixture f;
    f.perm = Int32Const({1, 0});
    ExpectRefused(f.op, kBuiltinTranspose, "perm has 2 elements, expected 3");
  }
  {
    TransposeFixture f;
    f.perm = ConstTensor<int32_t>(DataType::kInt32, MakeShape({1, 3}),
                                  {2, 0, 1});
    ExpectRefused(f.op, kBuiltinTranspose, "perm must be a vector");
  }
  {
    TransposeFixture f;
    f.output = Int8Tensor(MakeShape({4, 3, 2}), 0.5f, -3);
    ExpectRefused(f.op, kBuiltinTranspose, "output dimension 1 is 3, expected 2");
  }
  {
    TransposeFixture f;
    f.input = Iota(MakeShape({1, 1, 1, 2, 3, 4}));
    f.perm = Int32Const({0, 1, 2, 5, 3, 4});
    ExpectRefused(f.op, kBuiltinTranspose, "rank 6 is outside 1..5");
  }
  {
    TransposeFixture f;
    f.output.scales = {0.25f};
    ExpectRefused(f.op, kBuiltinTranspose, "differs from the input");
  }
}

// ---- SQUEEZE and EXPAND_DIMS ---------------------------------------------

TEST(Squeeze, ListedNegativeAndAll) {
  FakeTensor input = Iota(MakeShape({1, 3, 1, 2}));
  FakeTensor output = Int8Tensor(MakeShape({1, 3, 2}), 0.5f, -3);
  const int32_t dims[2] = {-2, 3};
  SqueezeOptions options;
  options.squeeze_dims = dims;
  options.num_squeeze_dims = 1;
  FakeOp op({&input}, {&output});
  op.builtin_options = &options;
  ASSERT_EQ(RunOp(op, kBuiltinSqueeze), Status::kOk) << op.error();
  EXPECT_EQ(Values(output), Values(input));
  options.num_squeeze_dims = 0;  // every dimension of 1, the batch too
  output = Int8Tensor(MakeShape({3, 2}), 0.5f, -3);
  EXPECT_EQ(RunOp(op, kBuiltinSqueeze), Status::kOk) << op.error();
  EXPECT_EQ(Values(output), Values(input));
  output = Int8Tensor(MakeShape({1, 3, 2}), 0.5f, -3);  // not all squeezed
  ExpectRefused(op, kBuiltinSqueeze, "output shape does not match");
  options.num_squeeze_dims = 2;  // dimension 3 has size 2
  ExpectRefused(op, kBuiltinSqueeze, "cannot squeeze dimension 3 of size 2");
  const int32_t out_of_range[1] = {4};
  options.squeeze_dims = out_of_range;
  options.num_squeeze_dims = 1;
  ExpectRefused(op, kBuiltinSqueeze, "squeeze dimension 4 is out of range");
  options.num_squeeze_dims = 9;
  ExpectRefused(op, kBuiltinSqueeze, "9 squeeze dimensions, at most 8");
  op.builtin_options = nullptr;
  ExpectRefused(op, kBuiltinSqueeze, "missing builtin options");
}

TEST(ExpandDims, AxisAndRefusals) {
  FakeTensor input = Iota(MakeShape({3, 2}));
  FakeTensor axis = ConstTensor<int32_t>(DataType::kInt32, Shape(), {-1});
  FakeTensor output = Int8Tensor(MakeShape({3, 2, 1}), 0.5f, -3);
  FakeOp op({&input, &axis}, {&output});
  ASSERT_EQ(RunOp(op, kBuiltinExpandDims), Status::kOk) << op.error();
  EXPECT_EQ(Values(output), Values(input));
  axis = Int32Const({0});
  output = Int8Tensor(MakeShape({1, 3, 2}), 0.5f, -3);
  ASSERT_EQ(RunOp(op, kBuiltinExpandDims), Status::kOk) << op.error();
  axis = Int32Const({-3});
  EXPECT_EQ(RunOp(op, kBuiltinExpandDims), Status::kOk) << op.error();
  axis = Int32Const({1});  // output would be [3, 1, 2]
  ExpectRefused(op, kBuiltinExpandDims, "output shape does not match");
  axis = Int32Const({3});
  ExpectRefused(op, kBuiltinExpandDims, "axis 3 is out of range for rank 2");
  axis = Int32Const({-4});
  ExpectRefused(op, kBuiltinExpandDims, "axis -4 is out of range");
  axis = Int32Const({0, 1});
  ExpectRefused(op, kBuiltinExpandDims, "axis has 2 elements, expected 1");
  axis = Int32Const({0});
  axis.is_constant = false;
  ExpectRefused(op, kBuiltinExpandDims, "axis must be a constant int32");
  axis = ConstTensor<int32_t>(DataType::kInt32, MakeShape({1, 1}), {0});
  ExpectRefused(op, kBuiltinExpandDims, "scalar or a vector");
}

// ---- RESIZE_NEAREST_NEIGHBOR ---------------------------------------------

std::vector<int> SourceIndices(bool align, bool half, int in, int out) {
  ResizeNearestParams p;
  p.align_corners = align;
  p.half_pixel_centers = half;
  std::vector<int> v;
  for (int i = 0; i < out; ++i) v.push_back(ref::NearestSourceIndex(p, i, in, out));
  return v;
}

TEST(ResizeNearest, SourceIndicesByHand) {
  // Half-pixel, 2 -> 4: (i + 0.5) * 0.5 = 0.25, 0.75, 1.25, 1.75.
  EXPECT_EQ(SourceIndices(false, true, 2, 4), (std::vector<int>{0, 0, 1, 1}));
  // Legacy, 3 -> 2: i * 1.5 = 0, 1.5 -> floor.
  EXPECT_EQ(SourceIndices(false, false, 3, 2), (std::vector<int>{0, 1}));
  // Aligned corners, 3 -> 5: i * 0.5 rounded half away from zero.
  EXPECT_EQ(SourceIndices(true, false, 3, 5),
            (std::vector<int>{0, 1, 1, 2, 2}));
  // Aligned corners with one output: scale in / out.
  EXPECT_EQ(SourceIndices(true, false, 4, 1), (std::vector<int>{0}));
  // Half-pixel downscale 5 -> 2: 1.25, 3.75.
  EXPECT_EQ(SourceIndices(false, true, 5, 2), (std::vector<int>{1, 3}));
  // Half-pixel 2 -> 3: (i + 0.5) * 2/3 = 0.33, 1.0, 1.67.
  EXPECT_EQ(SourceIndices(false, true, 2, 3), (std::vector<int>{0, 1, 1}));
}

struct ResizeFixture {
  FakeTensor input = Iota(MakeShape({1, 2, 2, 2}));
  FakeTensor size = Int32Const({3, 4});
  FakeTensor output = Int8Tensor(MakeShape({1, 3, 4, 2}), 0.5f, -3);
  ResizeNearestNeighborOptions options;
  FakeOp op;
  ResizeFixture() {
    options.half_pixel_centers = true;
    op.inputs = {&input, &size};
    op.outputs = {&output};
    op.builtin_options = &options;
  }
};

TEST(ResizeNearest, ByHand) {
  ResizeFixture f;
  ASSERT_EQ(RunOp(f.op, kBuiltinResizeNearestNeighbor), Status::kOk)
      << f.op.error();
  // Rows 0, 1, 1 (2 -> 3); columns 0, 0, 1, 1 (2 -> 4); pixel (y, x) holds
  // 4y + 2x, 4y + 2x + 1.
  EXPECT_EQ(Values(f.output),
            (std::vector<int>{0, 1, 0, 1, 2, 3, 2, 3,  //
                              4, 5, 4, 5, 6, 7, 6, 7,  //
                              4, 5, 4, 5, 6, 7, 6, 7}));
}

TEST(ResizeNearest, Refusals) {
  {
    ResizeFixture f;
    f.size.is_constant = false;
    ExpectRefused(f.op, kBuiltinResizeNearestNeighbor,
                  "size must be a constant int32");
  }
  {
    ResizeFixture f;
    f.size = Int32Const({4, 3});
    ExpectRefused(f.op, kBuiltinResizeNearestNeighbor,
                  "output shape is not [1, 4, 3, 2]");
  }
  {
    ResizeFixture f;
    f.size = Int32Const({3, 4, 1});
    ExpectRefused(f.op, kBuiltinResizeNearestNeighbor,
                  "size has 3 elements, expected 2");
  }
  {
    ResizeFixture f;
    f.size = Int32Const({0, 4});
    ExpectRefused(f.op, kBuiltinResizeNearestNeighbor, "is not positive");
  }
  {
    ResizeFixture f;
    f.input = Iota(MakeShape({2, 2, 2}));
    ExpectRefused(f.op, kBuiltinResizeNearestNeighbor,
                  "input must have rank 4");
  }
  {
    ResizeFixture f;
    f.input = Iota(MakeShape({1, 0, 2, 2}));
    ExpectRefused(f.op, kBuiltinResizeNearestNeighbor, "input is empty");
  }
  {
    ResizeFixture f;
    f.output = Int8Tensor(MakeShape({1, 3, 4, 2}), 0.5f, 0);
    ExpectRefused(f.op, kBuiltinResizeNearestNeighbor, "differs from the input");
  }
  {
    ResizeFixture f;
    f.op.builtin_options = nullptr;
    ExpectRefused(f.op, kBuiltinResizeNearestNeighbor, "missing builtin options");
  }
}

// ---- MEAN over any axes --------------------------------------------------

// TFLM's algorithm written out directly: sum each input element into its
// output slot (row-major over the kept dimensions), then requantize with
// the multiplier scaled by 2^k / count.
std::vector<int8_t> NaiveMean(const MeanParams& p, const Shape& shape,
                              uint32_t mask, const std::vector<int8_t>& in) {
  int64_t outputs = 1, count = 1;
  for (int d = 0; d < shape.rank; ++d)
    ((mask >> d) & 1 ? count : outputs) *= shape.dims[d];
  std::vector<int32_t> sums(static_cast<size_t>(outputs), 0);
  std::vector<int32_t> idx(static_cast<size_t>(shape.rank), 0);
  for (size_t i = 0; i < in.size(); ++i) {
    int64_t o = 0;
    for (int d = 0; d < shape.rank; ++d)
      if (!((mask >> d) & 1)) o = o * shape.dims[d] + idx[d];
    sums[static_cast<size_t>(o)] += in[i];
    for (int d = shape.rank - 1; d >= 0; --d) {
      if (++idx[d] < shape.dims[d]) break;
      idx[d] = 0;
    }
  }
  int k = 0;
  while ((count >> (k + 1)) != 0) ++k;
  if (k > 31 + p.shift) k = 31 + p.shift;
  const int32_t m =
      static_cast<int32_t>((static_cast<int64_t>(p.multiplier) << k) / count);
  std::vector<int8_t> out;
  for (int32_t s : sums) {
    int32_t v = MultiplyByQuantizedMultiplier(
                    s - static_cast<int32_t>(p.input_zero_point * count), m,
                    p.shift - k) +
                p.output_zero_point;
    v = v < -128 ? -128 : (v > 127 ? 127 : v);
    out.push_back(static_cast<int8_t>(v));
  }
  return out;
}

TEST(Mean, ByHandOverTime) {
  // [1, 3, 2] over axis 1, same quantization: (1 + 2 + 4) / 3 = 2.33 -> 2;
  // (-1 - 2 - 2) / 3 = -1.67 -> -2.
  MeanParams p;
  QuantizeMultiplier(1.0, &p.multiplier, &p.shift);
  const int8_t in[6] = {1, -1, 2, -2, 4, -2};
  int8_t out[2] = {};
  ref::Mean(p, MakeShape({1, 3, 2}), 1u << 1, in, out);
  EXPECT_EQ(out[0], 2);
  EXPECT_EQ(out[1], -2);
}

TEST(Mean, AnyAxesMatchTheDirectAlgorithm) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> dim(1, 5), byte(-128, 127), zp(-20, 20);
  std::uniform_real_distribution<double> ratio(0.05, 8.0);
  for (int trial = 0; trial < 400; ++trial) {
    Shape shape;
    shape.rank = 1 + trial % 5;
    for (int d = 0; d < shape.rank; ++d) shape.dims[d] = dim(rng);
    const uint32_t mask = static_cast<uint32_t>(rng()) & ((1u << shape.rank) - 1);
    MeanParams p;
    p.input_zero_point = zp(rng);
    p.output_zero_point = zp(rng);
    QuantizeMultiplier(ratio(rng), &p.multiplier, &p.shift);
    std::vector<int8_t> in(static_cast<size_t>(shape.FlatSize()));
    for (int8_t& v : in) v = static_cast<int8_t>(byte(rng));
    const std::vector<int8_t> expected = NaiveMean(p, shape, mask, in);
    std::vector<int8_t> out(expected.size(), 99);
    ref::Mean(p, shape, mask, in.data(), out.data());
    ASSERT_EQ(out, expected) << "trial " << trial << " mask " << mask;
  }
}

TEST(Mean, EmptyInputGivesZeros) {
  MeanParams p;
  p.output_zero_point = 5;
  QuantizeMultiplier(1.0, &p.multiplier, &p.shift);
  int8_t out[3] = {7, 7, 7};
  ref::Mean(p, MakeShape({3, 0}), 1u << 1, nullptr, out);
  EXPECT_EQ(out[0], 0);
  EXPECT_EQ(out[2], 0);
}

TEST(Mean, WrapperChecksAxesAndShape) {
  FakeTensor input = Int8Tensor(MakeShape({1, 6, 4}), 0.1f, 3);
  FakeTensor axes = ConstTensor<int32_t>(DataType::kInt32, Shape(), {1});
  FakeTensor output = Int8Tensor(MakeShape({1, 4}), 0.05f, -2);
  ReducerOptions options;
  FakeOp op({&input, &axes}, {&output});
  op.builtin_options = &options;
  EXPECT_EQ(RunOp(op, kBuiltinMean), Status::kOk) << op.error();
  options.keep_dims = true;
  ExpectRefused(op, kBuiltinMean, "output shape does not match");
  output = Int8Tensor(MakeShape({1, 1, 4}), 0.05f, -2);
  EXPECT_EQ(RunOp(op, kBuiltinMean), Status::kOk) << op.error();
  axes = Int32Const({-1, 2, 0});  // repeats are fine
  output = Int8Tensor(MakeShape({1, 6, 1}), 0.05f, -2);
  EXPECT_EQ(RunOp(op, kBuiltinMean), Status::kOk) << op.error();
  axes = Int32Const({3});
  ExpectRefused(op, kBuiltinMean, "axis 3 is out of range for rank 3");
  axes = Int32Const({-4});
  ExpectRefused(op, kBuiltinMean, "axis -4 is out of range");
  axes = Int32Const({1});
  axes.is_constant = false;
  ExpectRefused(op, kBuiltinMean, "axes must be a constant int32");
  input = Int8Tensor(Shape(), 0.1f, 3);
  axes = Int32Const({0});
  ExpectRefused(op, kBuiltinMean, "rank >= 1");
}

}  // namespace
}  // namespace tflm_train
