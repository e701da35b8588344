#include "ops_cc/core/sha256.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "gtest/gtest.h"

namespace tflm_train {
namespace {

std::string Digest(const void* data, size_t size) {
  Sha256 h;
  h.Update(data, size);
  uint8_t digest[Sha256::kDigestBytes];
  h.Finish(digest);
  char hex[2 * Sha256::kDigestBytes + 1];
  HexEncode(digest, sizeof(digest), hex);
  return hex;
}

std::string Digest(const std::string& s) { return Digest(s.data(), s.size()); }

// FIPS 180-4 examples (NIST CSRC "SHA256.pdf", "SHA2_Additional.pdf").
TEST(Sha256, Abc) {
  EXPECT_EQ(Digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256, EmptyMessage) {
  EXPECT_EQ(Digest(nullptr, 0),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(Sha256, TwoBlockMessage448Bits) {
  EXPECT_EQ(Digest("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Sha256, MillionAs) {
  const std::string a(1000000, 'a');
  EXPECT_EQ(Digest(a),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

// Feeding the same bytes in pieces of every size (crossing block boundaries
// at every offset) gives the one-shot digest.
TEST(Sha256, IncrementalUpdateMatchesOneShot) {
  std::string message;
  for (int i = 0; i < 1000; ++i) message.push_back(static_cast<char>(i * 7 + 3));
  const std::string expected = Digest(message);
  for (size_t piece = 1; piece <= 130; ++piece) {
    Sha256 h;
    for (size_t at = 0; at < message.size(); at += piece) {
      const size_t n = std::min(piece, message.size() - at);
      h.Update(message.data() + at, n);
      h.Update(nullptr, 0);
    }
    uint8_t digest[Sha256::kDigestBytes];
    h.Finish(digest);
    char hex[2 * Sha256::kDigestBytes + 1];
    HexEncode(digest, sizeof(digest), hex);
    EXPECT_EQ(expected, hex) << "piece size " << piece;
  }
}

// Lengths around the padding boundary (55/56/63/64 bytes mod 64).
TEST(Sha256, PaddingBoundaries) {
  EXPECT_EQ(Digest(std::string(55, 'a')),
            "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318");
  EXPECT_EQ(Digest(std::string(56, 'a')),
            "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a");
  EXPECT_EQ(Digest(std::string(64, 'a')),
            "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb");
}

TEST(Sha256, FinishResets) {
  Sha256 h;
  h.Update("xyz", 3);
  uint8_t first[32];
  h.Finish(first);
  h.Update("abc", 3);
  uint8_t second[32];
  h.Finish(second);
  char hex[65];
  HexEncode(second, 32, hex);
  EXPECT_STREQ(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

}  // namespace
}  // namespace tflm_train
