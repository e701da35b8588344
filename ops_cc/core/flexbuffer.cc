#include "ops_cc/core/flexbuffer.h"

#include <cstring>

// Layout (all little endian; "width" is 1, 2, 4 or 8 bytes):
//   buffer end:  ... [root: width_r bytes][packed type][width_r]
//   packed type: (type << 2) | log2(width), the width of the target's slots
//                for offset types, of the value itself for inline scalars.
//   offsets point backwards: target = position of the offset - offset.
//   map at M:    [keys offset][keys width][count] M: [values][count types]
//                (the three header slots and the values use the map's width)
//   keys vector: [count] K: [count key offsets] -> NUL-terminated strings.
//   inline scalars are read with the width of the slot holding them;
//   indirect scalars with the width in their packed type.

namespace tflm_train {
namespace {

enum FlexType : uint8_t {
  kTypeInt = 1,
  kTypeUInt = 2,
  kTypeFloat = 3,
  kTypeIndirectInt = 6,
  kTypeIndirectUInt = 7,
  kTypeIndirectFloat = 8,
  kTypeMap = 9,
  kTypeBool = 26,
};

bool ValidWidth(uint64_t width) {
  return width == 1 || width == 2 || width == 4 || width == 8;
}

// Caller guarantees `width` readable bytes at p.
uint64_t ReadLE(const uint8_t* p, int width) {
  uint64_t v = 0;
  for (int i = width - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

int64_t SignExtend(uint64_t bits, int width) {
  if (width == 8) return static_cast<int64_t>(bits);
  const uint64_t sign = uint64_t{1} << (8 * width - 1);
  return static_cast<int64_t>((bits ^ sign) - sign);
}

// Follows the offset stored at `pos`; false if it leaves the buffer.
bool Follow(const uint8_t* data, size_t size, size_t pos, int width,
            size_t* target) {
  if (pos > size || static_cast<size_t>(width) > size - pos) return false;
  const uint64_t offset = ReadLE(data + pos, width);
  if (offset > pos) return false;
  *target = pos - static_cast<size_t>(offset);
  return true;
}

}  // namespace

const char* FlexStatusName(FlexStatus status) {
  switch (status) {
    case FlexStatus::kOk: return "ok";
    case FlexStatus::kMissing: return "missing";
    case FlexStatus::kWrongType: return "not a number";
    case FlexStatus::kMalformed: return "malformed";
  }
  return "unknown";
}

FlexStatus FlexMap::Open(const uint8_t* data, size_t size) {
  *this = FlexMap();
  if (data == nullptr || size < 3) return FlexStatus::kMalformed;
  const int root_width = data[size - 1];
  if (!ValidWidth(root_width) || size < 2u + root_width)
    return FlexStatus::kMalformed;
  const uint8_t packed = data[size - 2];
  if ((packed >> 2) != kTypeMap) return FlexStatus::kMalformed;
  const int width = 1 << (packed & 3);

  size_t map = 0;
  if (!Follow(data, size, size - 2 - root_width, root_width, &map) ||
      map < 3u * width)
    return FlexStatus::kMalformed;
  const uint64_t count64 = ReadLE(data + map - width, width);
  // Values and their type bytes must fit after the map position.
  if (count64 > (size - map) / (width + 1u)) return FlexStatus::kMalformed;
  const size_t count = static_cast<size_t>(count64);

  size_t keys = 0;
  if (!Follow(data, size, map - 3 * width, width, &keys))
    return FlexStatus::kMalformed;
  const uint64_t key_width = ReadLE(data + map - 2 * width, width);
  if (!ValidWidth(key_width) || keys < key_width)
    return FlexStatus::kMalformed;
  const int kw = static_cast<int>(key_width);
  if (ReadLE(data + keys - kw, kw) != count64 ||
      count > (size - keys) / static_cast<size_t>(kw))
    return FlexStatus::kMalformed;
  for (size_t i = 0; i < count; ++i) {
    size_t key = 0;
    if (!Follow(data, size, keys + i * kw, kw, &key) ||
        std::memchr(data + key, 0, size - key) == nullptr)
      return FlexStatus::kMalformed;
  }

  data_ = data;
  size_ = size;
  values_ = map;
  keys_ = keys;
  count_ = count;
  width_ = width;
  key_width_ = kw;
  return FlexStatus::kOk;
}

FlexStatus FlexMap::Find(const char* key, Scalar* value) const {
  if (data_ == nullptr) return FlexStatus::kMalformed;
  for (size_t i = 0; i < count_; ++i) {
    size_t pos = 0;
    // Offsets and terminators were checked by Open.
    Follow(data_, size_, keys_ + i * key_width_, key_width_, &pos);
    if (std::strcmp(key, reinterpret_cast<const char*>(data_ + pos)) != 0)
      continue;

    const size_t slot = values_ + i * width_;
    const uint8_t packed = data_[values_ + count_ * width_ + i];
    value->type = packed >> 2;
    value->width = width_;
    size_t at = slot;
    switch (value->type) {
      case kTypeIndirectInt:
      case kTypeIndirectUInt:
      case kTypeIndirectFloat:
        value->type -= kTypeIndirectInt - kTypeInt;
        value->width = 1 << (packed & 3);
        if (!Follow(data_, size_, slot, width_, &at) ||
            static_cast<size_t>(value->width) > size_ - at)
          return FlexStatus::kMalformed;
        break;
      case kTypeInt:
      case kTypeUInt:
      case kTypeFloat:
      case kTypeBool:
        break;
      default:
        return FlexStatus::kWrongType;
    }
    value->bits = ReadLE(data_ + at, value->width);
    return FlexStatus::kOk;
  }
  return FlexStatus::kMissing;
}

FlexStatus FlexMap::GetInt(const char* key, int64_t* value) const {
  Scalar s;
  const FlexStatus status = Find(key, &s);
  if (status != FlexStatus::kOk) return status;
  switch (s.type) {
    case kTypeInt:
      *value = SignExtend(s.bits, s.width);
      return FlexStatus::kOk;
    case kTypeUInt:
      if (s.bits > static_cast<uint64_t>(INT64_MAX))
        return FlexStatus::kWrongType;
      *value = static_cast<int64_t>(s.bits);
      return FlexStatus::kOk;
    case kTypeBool:
      *value = s.bits != 0 ? 1 : 0;
      return FlexStatus::kOk;
    default:
      return FlexStatus::kWrongType;
  }
}

FlexStatus FlexMap::GetFloat(const char* key, float* value) const {
  Scalar s;
  const FlexStatus status = Find(key, &s);
  if (status != FlexStatus::kOk) return status;
  switch (s.type) {
    case kTypeFloat:
      if (s.width == 4) {
        const uint32_t bits = static_cast<uint32_t>(s.bits);
        std::memcpy(value, &bits, sizeof(bits));
      } else if (s.width == 8) {
        double d;
        std::memcpy(&d, &s.bits, sizeof(d));
        // Out-of-range conversions are undefined: saturate to infinity.
        constexpr double kMax = 3.4028234663852886e38;
        if (d > kMax || d < -kMax) {
          const uint32_t inf = d > 0 ? 0x7f800000u : 0xff800000u;
          std::memcpy(value, &inf, sizeof(inf));
        } else {
          *value = static_cast<float>(d);
        }
      } else {
        return FlexStatus::kMalformed;
      }
      return FlexStatus::kOk;
    case kTypeInt:
      *value = static_cast<float>(SignExtend(s.bits, s.width));
      return FlexStatus::kOk;
    case kTypeUInt:
      *value = static_cast<float>(s.bits);
      return FlexStatus::kOk;
    case kTypeBool:
      *value = s.bits != 0 ? 1.0f : 0.0f;
      return FlexStatus::kOk;
    default:
      return FlexStatus::kWrongType;
  }
}

}  // namespace tflm_train
