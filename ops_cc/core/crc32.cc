#include "ops_cc/core/crc32.h"

namespace tflm_train {

uint32_t Crc32(uint32_t crc, const void* data, size_t bytes) {
  // Bitwise: no 1 KB table in RAM or flash for a few hundred bytes a save.
  const auto* p = static_cast<const uint8_t*>(data);
  crc = ~crc;
  for (size_t i = 0; i < bytes; ++i) {
    crc ^= p[i];
    for (int bit = 0; bit < 8; ++bit)
      crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

}  // namespace tflm_train
