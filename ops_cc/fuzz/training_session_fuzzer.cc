// libFuzzer target over the standalone runtime's public entry points, as a
// device runs them on a model it did not make: TrainingSession::Init (model
// reader, interpreter allocation, every op's Prepare, metadata checks), then
// train and infer steps, Reset and the weights digest. Any status is fine;
// memory errors, undefined behaviour (ASan/UBSan, float-cast-overflow
// included) and hangs are findings. Built and run by scripts/fuzz.sh.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "ops_cc/runtime/training_session.h"

namespace {

using tflm_train::DataType;
using tflm_train::Status;
using tflm_train::TrainingSession;

constexpr size_t kArenaBytes = 1 << 20;

// One step of either kind with a deterministic sample and target derived
// from the input bytes, so the fuzzer also varies the data.
void Step(TrainingSession& s, bool train, const uint8_t* data, size_t size) {
  const size_t bytes = s.input_bytes();
  if (bytes == 0 || bytes > kArenaBytes) return;
  std::vector<uint8_t> sample(bytes);
  for (size_t i = 0; i < bytes; ++i) sample[i] = data[i % size];
  if (s.input_type() == DataType::kFloat32) {
    // Finite floats in [-2, 2): the session refuses non-finite samples.
    auto* f = reinterpret_cast<float*>(sample.data());
    for (size_t i = 0; i < bytes / sizeof(float); ++i)
      f[i] = static_cast<float>(static_cast<int8_t>(data[i % size])) / 64.0f;
  }
  float loss = 0.0f;
  if (s.classification()) {
    const int32_t label = s.num_classes() > 0 ? data[0] % s.num_classes() : 0;
    if (s.input_type() == DataType::kFloat32) {
      const auto* x = reinterpret_cast<const float*>(sample.data());
      train ? s.TrainStep(x, bytes, label, &loss) : s.InferStep(x, bytes, label, &loss);
    } else {
      const auto* x = reinterpret_cast<const int8_t*>(sample.data());
      train ? s.TrainStep(x, bytes, label, &loss) : s.InferStep(x, bytes, label, &loss);
    }
    return;
  }
  std::vector<float> target(s.target_elements(), 0.25f);
  if (s.input_type() == DataType::kFloat32) {
    const auto* x = reinterpret_cast<const float*>(sample.data());
    train ? s.TrainStep(x, bytes, target.data(), target.size(), &loss)
          : s.InferStep(x, bytes, target.data(), target.size(), &loss);
  } else {
    const auto* x = reinterpret_cast<const int8_t*>(sample.data());
    train ? s.TrainStep(x, bytes, target.data(), target.size(), &loss)
          : s.InferStep(x, bytes, target.data(), target.size(), &loss);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // The runtime reads the flatbuffer in place: 16-byte aligned copies, sized
  // exactly, so reads past the end are caught.
  static std::vector<uint8_t>* arena = new std::vector<uint8_t>(kArenaBytes + 16);
  uint8_t* aligned_arena = arena->data() + (16 - reinterpret_cast<uintptr_t>(arena->data()) % 16) % 16;
  auto* model = static_cast<uint8_t*>(operator new(size, std::align_val_t{16}));
  std::memcpy(model, data, size);
  {
    TrainingSession session(model, size, aligned_arena, kArenaBytes);
    if (session.Init() == Status::kOk) {
      Step(session, true, data, size);
      Step(session, false, data, size);
      uint8_t digest[32];
      session.WeightsSha256(digest);
      session.Reset();
      Step(session, true, data, size);
      session.PredictedClass();
    }
  }
  operator delete(model, std::align_val_t{16});
  return 0;
}
