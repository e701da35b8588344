// SHA-256 (FIPS 180-4), incremental, no allocation. Used by the firmware to
// print the digest of the trainable tensors (tflm_train.Trainer.weights_sha256).
#ifndef TFLM_TRAIN_CORE_SHA256_H_
#define TFLM_TRAIN_CORE_SHA256_H_

#include <cstddef>
#include <cstdint>

namespace tflm_train {

class Sha256 {
 public:
  static constexpr size_t kDigestBytes = 32;

  Sha256() { Reset(); }
  void Reset();
  void Update(const void* data, size_t size);
  // Writes the digest and resets the object for a new message.
  void Finish(uint8_t digest[kDigestBytes]);

 private:
  void Compress(const uint8_t block[64]);

  uint32_t state_[8];
  uint64_t total_bytes_;
  uint8_t block_[64];
  size_t block_used_;
};

// Lower-case hex of `bytes` bytes into `out` (2 * bytes + 1 chars with NUL).
void HexEncode(const uint8_t* bytes, size_t size, char* out);

}  // namespace tflm_train

#endif  // TFLM_TRAIN_CORE_SHA256_H_
