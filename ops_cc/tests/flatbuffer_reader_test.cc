#include "ops_cc/runtime/flatbuffer_reader.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace tflm_train {
namespace {

// A hand-assembled flatbuffer (little-endian):
//   0: root uoffset = 16      4: file identifier "TEST"
//   8: vtable {size 8, table size 12, field0 at +4, field1 at +8}
//  16: table {soffset 8, int32 field0 = 42, uoffset field1 -> 28}
//  28: vector<int32> {length 3: 7, -8, 9}
class Buffer {
 public:
  Buffer() {
    Put32(0, 16);
    std::memcpy(&bytes_[4], "TEST", 4);
    Put16(8, 8);
    Put16(10, 12);
    Put16(12, 4);
    Put16(14, 8);
    Put32(16, 8);
    Put32(20, 42);
    Put32(24, 4);
    Put32(28, 3);
    Put32(32, 7);
    Put32(36, static_cast<uint32_t>(-8));
    Put32(40, 9);
  }
  void Put16(size_t at, uint16_t v) { std::memcpy(&bytes_[at], &v, 2); }
  void Put32(size_t at, uint32_t v) { std::memcpy(&bytes_[at], &v, 4); }
  const uint8_t* data() const { return bytes_.data(); }
  size_t size() const { return bytes_.size(); }

 private:
  alignas(8) std::vector<uint8_t> bytes_ = std::vector<uint8_t>(44, 0);
};

TEST(FlatbufferReader, ReadsScalarsAndVectors) {
  Buffer b;
  FbTable root = FbTable::Root(b.data(), b.size());
  ASSERT_TRUE(root.valid());
  EXPECT_EQ(root.Scalar<int32_t>(0, -1), 42);
  EXPECT_EQ(root.Scalar<int32_t>(5, -1), -1);  // slot past the vtable
  FbVector v = root.Vector(1, 4);
  ASSERT_TRUE(v.valid());
  ASSERT_EQ(v.length(), 3u);
  EXPECT_EQ(v.Get<int32_t>(0), 7);
  EXPECT_EQ(v.Get<int32_t>(1), -8);
  EXPECT_EQ(v.Get<int32_t>(2), 9);
  // An int32 field is not followed as an offset to a table.
  EXPECT_FALSE(root.Table(0).valid());
}

TEST(FlatbufferReader, StringsNeedTheirTerminator) {
  Buffer b;
  // Read as bytes, the vector is the string {7, 0, 0} followed by NUL.
  uint32_t length = 0;
  ASSERT_NE(FbTable::Root(b.data(), b.size()).String(1, &length), nullptr);
  EXPECT_EQ(length, 3u);
  b.Put32(28, 4);  // now the byte after the string is 0xf8 (from -8)
  EXPECT_EQ(FbTable::Root(b.data(), b.size()).String(1), nullptr);
}

TEST(FlatbufferReader, EveryTruncationIsRejectedOrSafe) {
  Buffer b;
  for (size_t n = 0; n < b.size(); ++n) {
    FbTable root = FbTable::Root(b.data(), n);
    // A prefix must never expose the full vector (it needs all 44 bytes).
    FbVector v = root.Vector(1, 4);
    EXPECT_FALSE(v.valid() && v.length() == 3) << "prefix " << n;
  }
}

TEST(FlatbufferReader, RejectsOffsetsOutsideTheBuffer) {
  {
    Buffer b;
    b.Put32(0, 1000);  // root beyond the end
    EXPECT_FALSE(FbTable::Root(b.data(), b.size()).valid());
  }
  {
    Buffer b;
    b.Put32(16, static_cast<uint32_t>(-100));  // vtable beyond the end
    EXPECT_FALSE(FbTable::Root(b.data(), b.size()).valid());
  }
  {
    Buffer b;
    b.Put32(28, 0x40000000);  // vector length past the end
    FbTable root = FbTable::Root(b.data(), b.size());
    ASSERT_TRUE(root.valid());
    EXPECT_FALSE(root.Vector(1, 4).valid());
  }
  {
    Buffer b;
    b.Put16(10, 200);  // table claims to be larger than the buffer
    EXPECT_FALSE(FbTable::Root(b.data(), b.size()).valid());
  }
  {
    Buffer b;
    b.Put16(12, 10);  // field0 would overlap the table end (10 + 4 > 12)
    FbTable root = FbTable::Root(b.data(), b.size());
    ASSERT_TRUE(root.valid());
    EXPECT_EQ(root.Scalar<int32_t>(0, -1), -1);
  }
}

TEST(FlatbufferReader, FuzzedBytesNeverCrash) {
  // Random corruption of every byte position; run under ASan/UBSan.
  Buffer clean;
  for (size_t at = 0; at < clean.size(); ++at)
    for (int value : {0x00, 0x01, 0x7f, 0x80, 0xff}) {
      Buffer b = clean;
      const_cast<uint8_t*>(b.data())[at] = static_cast<uint8_t>(value);
      FbTable root = FbTable::Root(b.data(), b.size());
      (void)root.Scalar<int32_t>(0, 0);
      FbVector v = root.Vector(1, 4);
      for (uint32_t i = 0; i < v.length(); ++i) (void)v.Get<int32_t>(i);
      (void)root.String(1);
      (void)v.TableAt(0);
    }
}

}  // namespace
}  // namespace tflm_train
