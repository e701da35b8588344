// On-device training firmware: runs TRAIN_NUM_STEPS SGD steps of a training
// .tflite (in flash) over samples (in flash) in the host's sample order,
// then one inference step, and prints machine-parsable lines over
// semihosting: one `key value...` record per line (see tflm_train/firmware.py,
// which generates train_data.{h,cc} and train_config.h and parses this).
//
// Build and run through the CLI: tflm-train firmware TRAIN.tflite --data ...
//
// Exit status: 0 on success, 1 with an `error ...` line on any runtime error.
#include <stdio.h>
#include <string.h>

#include "ops_cc/core/sha256.h"
#include "ops_cc/runtime/state_store.h"
#include "ops_cc/runtime/training_session.h"
#include "platform.h"
#include "train_config.h"
#include "train_data.h"

namespace {

using tflm_train::Status;
using tflm_train::TrainingSession;

#if TRAIN_ARENA_MEASURE
// Measuring pass: a generous arena in the board's 16 MB PSRAM, outside the
// RAM budget, to learn the arena this model needs on the 32-bit target.
uint8_t* const g_arena = reinterpret_cast<uint8_t*>(0x21000000);
constexpr size_t kArenaBytes = 16u << 20;
#else
alignas(16) uint8_t g_arena[TRAIN_ARENA_BYTES];
constexpr size_t kArenaBytes = TRAIN_ARENA_BYTES;
#endif

TrainingSession g_session(g_model, TRAIN_MODEL_BYTES, g_arena, kArenaBytes);

int Fail(const char* what, Status status) {
  printf("error %s (%s): %s\n", what, tflm_train::StatusName(status),
         g_session.error_message());
  return 1;
}

uint32_t FloatBits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof(u));
  return u;
}

const train_sample_t* Sample(uint32_t index) {
  return g_samples + static_cast<size_t>(index) * TRAIN_SAMPLE_ELEMS;
}

constexpr size_t kSampleBytes = sizeof(train_sample_t) * TRAIN_SAMPLE_ELEMS;

// One train or infer step on sample `index`, with its label (classifier) or
// its float targets (regression loss).
Status RunStep(uint32_t index, bool train, float* loss) {
#if TRAIN_TARGET_ELEMS > 0
  const float* target = g_targets + static_cast<size_t>(index) * TRAIN_TARGET_ELEMS;
  return train ? g_session.TrainStep(Sample(index), kSampleBytes, target,
                                     TRAIN_TARGET_ELEMS, loss)
               : g_session.InferStep(Sample(index), kSampleBytes, target,
                                     TRAIN_TARGET_ELEMS, loss);
#else
  return train ? g_session.TrainStep(Sample(index), kSampleBytes, g_labels[index], loss)
               : g_session.InferStep(Sample(index), kSampleBytes, g_labels[index], loss);
#endif
}

#ifdef TRAIN_PROFILE_OPS
// Instructions spent in each operator's Eval, summed over the steps it
// profiles (the counter's own cost subtracted); TRAIN_PROFILE_OPS is the
// model's operator count.
class InstructionProfiler : public tflm_train::OpProfiler {
 public:
  void set_overhead(uint64_t overhead) { overhead_ = overhead; }
  void BeginOp(int) override { start_ = cm_instructions(); }
  void EndOp(int op) override {
    const uint64_t n = cm_instructions() - start_ - overhead_;
    if (op >= 0 && op < TRAIN_PROFILE_OPS) totals_[op] += n;
  }
  // Prints "op_instructions PHASE OP NAME INSTRUCTIONS" per operator, then
  // clears the totals.
  void Print(const char* phase) {
    for (int op = 0; op < TRAIN_PROFILE_OPS; ++op) {
      printf("op_instructions %s %d %s %llu\n", phase, op,
             g_session.interpreter().OperatorName(op),
             static_cast<unsigned long long>(totals_[op]));
      totals_[op] = 0;
    }
  }

 private:
  uint64_t overhead_ = 0;
  uint64_t start_ = 0;
  uint64_t totals_[TRAIN_PROFILE_OPS] = {};
};

InstructionProfiler g_profiler;
#endif

#ifdef TRAIN_STATE_FILE
// The trained state's non-volatile memory: a host file (TRAIN_STATE_FILE)
// through semihosting, standing in for two flash slots.
FILE* g_state = nullptr;

bool StateRead(void*, uint32_t offset, void* data, uint32_t bytes) {
  return fseek(g_state, static_cast<long>(offset), SEEK_SET) == 0 &&
         fread(data, 1, bytes, g_state) == bytes;
}

bool StateWrite(void*, uint32_t offset, const void* data, uint32_t bytes) {
  return fseek(g_state, static_cast<long>(offset), SEEK_SET) == 0 &&
         fwrite(data, 1, bytes, g_state) == bytes && fflush(g_state) == 0;
}

bool StateErase(void*, uint32_t offset, uint32_t bytes) {
  static const uint8_t kErased[64] = {
      0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
      0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
      0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
      0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
      0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
  for (uint32_t done = 0; done < bytes;) {
    const uint32_t n = bytes - done < sizeof(kErased) ? bytes - done : sizeof(kErased);
    if (!StateWrite(nullptr, offset + done, kErased, n)) return false;
    done += n;
  }
  return true;
}

// Opens (or creates, erased) the state file; returns its storage.
bool OpenStateStorage(tflm_train::StateStorage* storage) {
  storage->read = StateRead;
  storage->write = StateWrite;
  storage->erase = StateErase;
  storage->slot_bytes = static_cast<uint32_t>(tflm_train::StateSlotBytes(g_session));
  g_state = fopen(TRAIN_STATE_FILE, "r+b");
  if (g_state == nullptr) {
    g_state = fopen(TRAIN_STATE_FILE, "w+b");
    if (g_state == nullptr) return false;
    return StateErase(nullptr, 0, 2 * storage->slot_bytes);
  }
  return true;
}
#endif

void PrintMemory() {
  printf("static_ram_bytes %u\n", static_cast<unsigned>(cm_static_ram_bytes()));
  printf("stack_size_bytes %u\n", static_cast<unsigned>(cm_stack_size_bytes()));
  printf("peak_stack_bytes %u\n", static_cast<unsigned>(cm_peak_stack_bytes()));
  printf("heap_used_bytes %u\n", static_cast<unsigned>(cm_heap_used_bytes()));
  printf("ram_budget_bytes %u\n", static_cast<unsigned>(cm_ram_budget_bytes()));
  printf("flash_bytes %u\n", static_cast<unsigned>(cm_flash_bytes()));
}

}  // namespace

int main() {
  printf("tflm_train_firmware 1\n");
  Status status = g_session.Init();
  if (status != Status::kOk) return Fail("init", status);
  const tflm_train::Interpreter& interpreter = g_session.interpreter();
  printf("model_bytes %u\n", static_cast<unsigned>(TRAIN_MODEL_BYTES));
  printf("arena_bytes %u\n", static_cast<unsigned>(kArenaBytes));
  printf("arena_used_bytes %u\n", static_cast<unsigned>(interpreter.arena_used_bytes()));
  printf("planned_bytes %u\n", static_cast<unsigned>(interpreter.planned_bytes()));
  printf("persistent_bytes %u\n", static_cast<unsigned>(interpreter.persistent_bytes()));
  printf("variable_bytes %u\n", static_cast<unsigned>(interpreter.variable_bytes()));
  printf("trainable_bytes %u\n", static_cast<unsigned>(g_session.trainable_bytes()));
  if (g_session.input_bytes() != kSampleBytes) {
    printf("error input: model input has %u bytes, samples have %u\n",
           static_cast<unsigned>(g_session.input_bytes()),
           static_cast<unsigned>(kSampleBytes));
    return 1;
  }
#if TRAIN_ARENA_MEASURE
  PrintMemory();
  printf("done\n");
  return 0;
#else
  // Cost of the measurement itself, subtracted from every figure.
  uint64_t t0 = cm_instructions();
  const uint64_t overhead = cm_instructions() - t0;
  printf("instructions_overhead %llu\n", static_cast<unsigned long long>(overhead));
#ifdef TRAIN_PROFILE_OPS
  g_profiler.set_overhead(overhead);
  g_session.set_profiler(&g_profiler);
#endif

#ifdef TRAIN_STATE_FILE
  tflm_train::StateStorage storage;
  if (!OpenStateStorage(&storage)) {
    printf("error state: cannot open %s\n", TRAIN_STATE_FILE);
    return 1;
  }
  status = tflm_train::LoadState(g_session, storage);
  if (status != Status::kOk && status != Status::kNotFound) return Fail("load state", status);
  printf("state_loaded %d\n", status == Status::kOk ? 1 : 0);
#endif

  uint64_t total = 0, min = UINT64_MAX, max = 0;
  for (uint32_t step = 0; step < TRAIN_NUM_STEPS; ++step) {
    const uint32_t index = g_order[step];
    float loss = 0.0f;
    t0 = cm_instructions();
    status = RunStep(index, true, &loss);
    const uint64_t n = cm_instructions() - t0 - overhead;
    if (status != Status::kOk) return Fail("train step", status);
    total += n;
    if (n < min) min = n;
    if (n > max) max = n;
    if (step % TRAIN_LOG_EVERY == 0 || step + 1 == TRAIN_NUM_STEPS)
      printf("step %lu sample %lu label %ld loss %.9g bits %08lx instructions %llu\n",
             static_cast<unsigned long>(step), static_cast<unsigned long>(index),
             static_cast<long>(g_labels[index]), static_cast<double>(loss),
             static_cast<unsigned long>(FloatBits(loss)),
             static_cast<unsigned long long>(n));
  }
#ifdef TRAIN_PROFILE_OPS
  g_profiler.Print("train");
#endif
  printf("train_steps %lu instructions_total %llu min %llu max %llu\n",
         static_cast<unsigned long>(TRAIN_NUM_STEPS),
         static_cast<unsigned long long>(total), static_cast<unsigned long long>(min),
         static_cast<unsigned long long>(max));

#ifdef TRAIN_STATE_FILE
  status = tflm_train::SaveState(g_session, storage);
  if (status != Status::kOk) return Fail("save state", status);
  fclose(g_state);
  printf("state_saved 1\n");
#endif

  uint8_t digest[tflm_train::Sha256::kDigestBytes];
  status = g_session.WeightsSha256(digest);
  if (status != Status::kOk) return Fail("weights digest", status);
  char hex[2 * sizeof(digest) + 1];
  tflm_train::HexEncode(digest, sizeof(digest), hex);
  printf("weights_sha256 %s\n", hex);

  // One inference step (weights unchanged) on the first sample of the order.
  const uint32_t index = g_order[0];
  float loss = 0.0f;
  t0 = cm_instructions();
  status = RunStep(index, false, &loss);
  const uint64_t n = cm_instructions() - t0 - overhead;
  if (status != Status::kOk) return Fail("infer step", status);
#ifdef TRAIN_PROFILE_OPS
  g_profiler.Print("infer");
#endif
  printf("infer sample %lu label %ld predicted %d loss %.9g bits %08lx instructions %llu\n",
         static_cast<unsigned long>(index), static_cast<long>(g_labels[index]),
         g_session.PredictedClass(), static_cast<double>(loss),
         static_cast<unsigned long>(FloatBits(loss)), static_cast<unsigned long long>(n));

  PrintMemory();
  printf("done\n");
  return 0;
#endif
}
