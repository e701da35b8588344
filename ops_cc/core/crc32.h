// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320, as zlib.crc32), for
// checking saved state.
#ifndef TFLM_TRAIN_CORE_CRC32_H_
#define TFLM_TRAIN_CORE_CRC32_H_

#include <cstddef>
#include <cstdint>

namespace tflm_train {

// Continues a CRC over `bytes` more bytes: start with crc = 0;
// Crc32(Crc32(0, a, n), b, m) equals the CRC of a followed by b.
uint32_t Crc32(uint32_t crc, const void* data, size_t bytes);

}  // namespace tflm_train

#endif  // TFLM_TRAIN_CORE_CRC32_H_
