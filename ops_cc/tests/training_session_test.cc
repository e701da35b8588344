// TrainingSession against the host simulator's results (tests/data, made by
// make_test_models.py: rerun it when kernel numerics change on purpose), its
// error paths, and robustness to truncated and corrupted models (run under
// ASan/UBSan: bazel test --config=asan //...).
#include "ops_cc/runtime/training_session.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "ops_cc/core/sha256.h"
#include "ops_cc/runtime/state_store.h"

namespace tflm_train {
namespace {

// Under Bazel the data files are runfiles; otherwise run from the repo root.
std::string DataPath(const std::string& name) {
  const std::string relative = "ops_cc/tests/data/" + name;
  const char* srcdir = getenv("TEST_SRCDIR");
  const char* workspace = getenv("TEST_WORKSPACE");
  if (srcdir != nullptr && workspace != nullptr)
    return std::string(srcdir) + "/" + workspace + "/" + relative;
  return relative;
}

std::vector<uint8_t> ReadFile(const std::string& name) {
  std::ifstream in(DataPath(name), std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

std::vector<uint8_t> FromHex(const std::string& hex) {
  std::vector<uint8_t> out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    out.push_back(static_cast<uint8_t>(std::stoul(hex.substr(i, 2), nullptr, 16)));
  return out;
}

struct Step {
  bool train = true;
  int32_t label = 0;
  std::vector<uint8_t> input;
  std::string loss_bits;
  std::string sha256;
};

struct Expected {
  size_t format_version_offset = 0;
  int num_classes = 0;
  std::string initial_sha256;
  uint32_t state_slot_bytes = 0;  // cnn_train.state: two slots of this size
  size_t state_after_steps = 0;   // ... holding the state after these steps
  std::vector<Step> steps;  // the last one is an inference step
};

Expected ReadExpected() {
  Expected e;
  std::ifstream in(DataPath("cnn_train.expected.txt"));
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string key;
    fields >> key;
    if (key == "format_version_offset") {
      fields >> e.format_version_offset;
    } else if (key == "num_classes") {
      fields >> e.num_classes;
    } else if (key == "initial_sha256") {
      fields >> e.initial_sha256;
    } else if (key == "state_slot_bytes") {
      fields >> e.state_slot_bytes;
    } else if (key == "state_after_steps") {
      fields >> e.state_after_steps;
    } else if (key == "step" || key == "infer") {
      Step s;
      std::string input;
      s.train = key == "step";
      fields >> s.label >> input >> s.loss_bits >> s.sha256;
      s.input = FromHex(input);
      e.steps.push_back(s);
    }
  }
  return e;
}

std::string Hex(const uint8_t* bytes, size_t n) {
  std::vector<char> out(2 * n + 1);
  HexEncode(bytes, n, out.data());
  return out.data();
}

std::string Digest(TrainingSession& session) {
  uint8_t digest[32];
  EXPECT_EQ(session.WeightsSha256(digest), Status::kOk) << session.error_message();
  return Hex(digest, sizeof(digest));
}

std::string FloatBits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  char out[9];
  snprintf(out, sizeof(out), "%08x", u);
  return out;
}

// A model copy in its own exactly-sized allocation (so ASan sees overreads)
// and an arena; new[] gives at least 16-byte alignment on the test hosts.
class Fixture {
 public:
  Fixture(const std::vector<uint8_t>& model, size_t size, size_t arena_bytes)
      : model_(new uint8_t[size > 0 ? size : 1]),
        arena_(new uint8_t[arena_bytes]),
        session_(model_.get(), size, arena_.get(), arena_bytes) {
    if (size > 0) memcpy(model_.get(), model.data(), size);
  }
  TrainingSession& session() { return session_; }

 private:
  std::unique_ptr<uint8_t[]> model_;
  std::unique_ptr<uint8_t[]> arena_;
  TrainingSession session_;
};

constexpr size_t kArenaBytes = 256 * 1024;

class TrainingSessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = ReadFile("cnn_train.tflite");
    expected_ = ReadExpected();
    ASSERT_GT(model_.size(), 1000u) << "missing " << DataPath("cnn_train.tflite");
    ASSERT_EQ(expected_.steps.size(), 9u) << "bad " << DataPath("cnn_train.expected.txt");
  }

  std::vector<uint8_t> model_;
  Expected expected_;
};

TEST_F(TrainingSessionTest, InitReadsMetadata) {
  Fixture f(model_, model_.size(), kArenaBytes);
  TrainingSession& s = f.session();
  ASSERT_EQ(s.Init(), Status::kOk) << s.error_message();
  EXPECT_EQ(s.num_classes(), expected_.num_classes);
  EXPECT_GT(s.num_trainables(), 0);
  EXPECT_GT(s.trainable_bytes(), 0u);
  EXPECT_EQ(s.input_type(), DataType::kInt8);
  EXPECT_EQ(s.input_bytes(), expected_.steps[0].input.size());
  EXPECT_EQ(Digest(s), expected_.initial_sha256);
}

// Losses and weights after every step equal the host simulator's.
TEST_F(TrainingSessionTest, StepsMatchHostSimulator) {
  Fixture f(model_, model_.size(), kArenaBytes);
  TrainingSession& s = f.session();
  ASSERT_EQ(s.Init(), Status::kOk) << s.error_message();
  for (size_t i = 0; i < expected_.steps.size(); ++i) {
    const Step& step = expected_.steps[i];
    const auto* input = reinterpret_cast<const int8_t*>(step.input.data());
    float loss = -1.0f;
    const Status status = step.train
        ? s.TrainStep(input, step.input.size(), step.label, &loss)
        : s.InferStep(input, step.input.size(), step.label, &loss);
    ASSERT_EQ(status, Status::kOk) << "step " << i << ": " << s.error_message();
    EXPECT_EQ(FloatBits(loss), step.loss_bits) << "step " << i;
    EXPECT_EQ(Digest(s), step.sha256) << "step " << i;
  }
  ASSERT_NE(s.output(), nullptr);
  EXPECT_EQ(s.output_bytes(), static_cast<size_t>(expected_.num_classes));
  EXPECT_GE(s.PredictedClass(), 0);
  EXPECT_LT(s.PredictedClass(), expected_.num_classes);
}

TEST_F(TrainingSessionTest, ResetRestoresInitialWeights) {
  Fixture f(model_, model_.size(), kArenaBytes);
  TrainingSession& s = f.session();
  ASSERT_EQ(s.Init(), Status::kOk) << s.error_message();
  const Step& first = expected_.steps[0];
  const auto* input = reinterpret_cast<const int8_t*>(first.input.data());
  float loss;
  for (int i = 0; i < 3; ++i)
    ASSERT_EQ(s.TrainStep(input, first.input.size(), first.label, &loss), Status::kOk);
  ASSERT_EQ(s.Reset(), Status::kOk) << s.error_message();
  EXPECT_EQ(Digest(s), expected_.initial_sha256);
  ASSERT_EQ(s.TrainStep(input, first.input.size(), first.label, &loss), Status::kOk);
  EXPECT_EQ(FloatBits(loss), first.loss_bits);
  EXPECT_EQ(Digest(s), first.sha256);
}

TEST_F(TrainingSessionTest, BadInputsAreErrors) {
  Fixture f(model_, model_.size(), kArenaBytes);
  TrainingSession& s = f.session();
  const Step& step = expected_.steps[0];
  const auto* input = reinterpret_cast<const int8_t*>(step.input.data());
  float loss;
  EXPECT_EQ(s.TrainStep(input, step.input.size(), 0, &loss), Status::kError);
  EXPECT_NE(strstr(s.error_message(), "before Init"), nullptr) << s.error_message();

  ASSERT_EQ(s.Init(), Status::kOk) << s.error_message();
  EXPECT_EQ(s.Init(), Status::kError);
  EXPECT_EQ(s.TrainStep(input, step.input.size(), expected_.num_classes, &loss),
            Status::kBadInput);
  EXPECT_NE(strstr(s.error_message(), "out of range"), nullptr) << s.error_message();
  EXPECT_EQ(s.TrainStep(input, step.input.size(), -1, &loss), Status::kBadInput);
  EXPECT_EQ(s.TrainStep(input, step.input.size() - 1, 0, &loss), Status::kBadInput);
  EXPECT_NE(strstr(s.error_message(), "bytes"), nullptr) << s.error_message();
  const float floats[64] = {};
  EXPECT_EQ(s.TrainStep(floats, sizeof(floats), 0, &loss), Status::kBadInput);
  // Failed steps changed nothing; infer mode accepts any label.
  EXPECT_EQ(Digest(s), expected_.initial_sha256);
  EXPECT_EQ(s.InferStep(input, step.input.size(), 99, &loss), Status::kOk);
  EXPECT_NE(loss, loss);  // NaN
}

TEST_F(TrainingSessionTest, ArenaTooSmall) {
  Fixture f(model_, model_.size(), 1024);
  EXPECT_EQ(f.session().Init(), Status::kArenaTooSmall);
  EXPECT_NE(strstr(f.session().error_message(), "arena"), nullptr)
      << f.session().error_message();
}

TEST_F(TrainingSessionTest, MissingMetadataIsAnError) {
  std::vector<uint8_t> patched = model_;
  const std::string name = "tflm_train.training_info";
  auto at = std::search(patched.begin(), patched.end(), name.begin(), name.end());
  ASSERT_NE(at, patched.end());
  *at = 'X';
  Fixture f(patched, patched.size(), kArenaBytes);
  EXPECT_EQ(f.session().Init(), Status::kMalformedModel);
  EXPECT_NE(strstr(f.session().error_message(), "no tflm_train.training_info"), nullptr)
      << f.session().error_message();
}

TEST_F(TrainingSessionTest, NonFiniteSamplesAreErrors) {
  const std::vector<uint8_t> model = ReadFile("cnn_float_train.tflite");
  ASSERT_FALSE(model.empty());
  Fixture f(model, model.size(), kArenaBytes);
  TrainingSession& s = f.session();
  ASSERT_EQ(s.Init(), Status::kOk) << s.error_message();
  ASSERT_EQ(s.input_type(), DataType::kFloat32);
  std::vector<float> sample(s.input_bytes() / sizeof(float), 0.5f);
  float loss = 0.0f;
  ASSERT_EQ(s.TrainStep(sample.data(), s.input_bytes(), 1, &loss), Status::kOk);
  uint8_t trained[32];
  ASSERT_EQ(s.WeightsSha256(trained), Status::kOk);
  for (float bad : {std::numeric_limits<float>::quiet_NaN(),
                    std::numeric_limits<float>::infinity()}) {
    sample[3] = bad;
    EXPECT_EQ(s.TrainStep(sample.data(), s.input_bytes(), 1, &loss), Status::kBadInput);
    EXPECT_STREQ(s.error_message(), "sample element 3 is not finite");
    EXPECT_EQ(s.InferStep(sample.data(), s.input_bytes(), 1, &loss), Status::kBadInput);
  }
  uint8_t after[32];
  ASSERT_EQ(s.WeightsSha256(after), Status::kOk);
  EXPECT_EQ(0, memcmp(trained, after, sizeof(after)));  // nothing changed
}

TEST_F(TrainingSessionTest, UnknownFormatVersionIsAnError) {
  std::vector<uint8_t> patched = model_;
  const size_t at = expected_.format_version_offset;
  ASSERT_LT(at + 4, patched.size());
  uint32_t version;
  memcpy(&version, patched.data() + at, 4);
  ASSERT_EQ(version, TrainingSession::kFormatVersion);
  // Version 1 (loss on saturated int8 logits) and 2 (no step counter) are
  // refused, as is a future one.
  for (uint32_t other : {1u, 2u, 4u}) {
    memcpy(patched.data() + at, &other, 4);
    Fixture f(patched, patched.size(), kArenaBytes);
    EXPECT_EQ(f.session().Init(), Status::kMalformedModel);
    const std::string expected = "format version " + std::to_string(other) +
                                 " is not supported";
    EXPECT_NE(strstr(f.session().error_message(), expected.c_str()), nullptr)
        << f.session().error_message();
  }
}

// Runs everything a firmware would; any status is fine, crashes are not.
void Exercise(TrainingSession& s, const Step& step) {
  const auto* input = reinterpret_cast<const int8_t*>(step.input.data());
  float loss;
  Status status = s.Init();
  if (status != Status::kOk) {
    EXPECT_NE(s.error_message()[0], '\0');
    return;
  }
  for (int i = 0; i < 3; ++i) {
    status = i < 2 ? s.TrainStep(input, step.input.size(), step.label, &loss)
                   : s.InferStep(input, step.input.size(), step.label, &loss);
    if (status != Status::kOk) {
      EXPECT_NE(s.error_message()[0], '\0');
    }
  }
  uint8_t digest[32];
  EXPECT_EQ(s.WeightsSha256(digest), Status::kOk);
}

TEST_F(TrainingSessionTest, EveryTruncationIsHandled) {
  int failures = 0;
  for (size_t n = 0; n < model_.size(); ++n) {
    Fixture f(model_, n, kArenaBytes);
    Exercise(f.session(), expected_.steps[0]);
    if (f.session().error_message()[0] != '\0') ++failures;
  }
  // Almost every prefix lacks data the model refers to.
  EXPECT_GT(failures, static_cast<int>(model_.size() * 9 / 10));
}

TEST_F(TrainingSessionTest, SingleByteCorruptionsAreHandled) {
  const uint8_t kFlips[] = {0x01, 0x80, 0xff};
  for (size_t i = 0; i < model_.size(); ++i) {
    for (uint8_t flip : kFlips) {
      std::vector<uint8_t> corrupt = model_;
      corrupt[i] ^= flip;
      Fixture f(corrupt, corrupt.size(), kArenaBytes);
      SCOPED_TRACE(testing::Message() << "byte " << i << " ^ " << int(flip));
      Exercise(f.session(), expected_.steps[0]);
      if (HasFailure()) return;
    }
  }
}


// ---- Persistence (state_store.h) -------------------------------------------

// A flash region of two slots: erased bytes read 0xFF. With a power budget,
// the write or erase that exhausts it stops part-way (the bytes before the
// cut are written) and fails, as do all later ones.
class FakeFlash {
 public:
  explicit FakeFlash(uint32_t slot_bytes)
      : bytes_(2 * static_cast<size_t>(slot_bytes), 0xFF), slot_bytes_(slot_bytes) {}

  StateStorage storage() {
    StateStorage st;
    st.user = this;
    st.slot_bytes = slot_bytes_;
    st.read = [](void* user, uint32_t offset, void* data, uint32_t n) {
      auto* f = static_cast<FakeFlash*>(user);
      if (offset + static_cast<uint64_t>(n) > f->bytes_.size()) return false;
      memcpy(data, f->bytes_.data() + offset, n);
      return true;
    };
    st.write = [](void* user, uint32_t offset, const void* data, uint32_t n) {
      return static_cast<FakeFlash*>(user)->Store(offset, static_cast<const uint8_t*>(data), n);
    };
    st.erase = [](void* user, uint32_t offset, uint32_t n) {
      return static_cast<FakeFlash*>(user)->Store(offset, nullptr, n);
    };
    return st;
  }
  // Power fails after `bytes` more written or erased bytes (-1: never).
  void CutPowerAfter(int64_t bytes) { budget_ = bytes; }
  int64_t bytes_stored() const { return stored_; }

 private:
  bool Store(uint32_t offset, const uint8_t* data, uint32_t n) {
    if (offset + static_cast<uint64_t>(n) > bytes_.size()) return false;
    for (uint32_t i = 0; i < n; ++i) {
      if (budget_ == 0) return false;
      if (budget_ > 0) --budget_;
      bytes_[offset + i] = data != nullptr ? data[i] : 0xFF;
      ++stored_;
    }
    return true;
  }

  std::vector<uint8_t> bytes_;
  uint32_t slot_bytes_;
  int64_t budget_ = -1, stored_ = 0;
};

// Every state tensor's bytes, in order (weights, rng, output range).
std::vector<uint8_t> StateBytes(TrainingSession& s) {
  std::vector<uint8_t> out;
  for (int i = 0; i < s.num_state_tensors(); ++i) {
    size_t bytes = 0;
    const uint8_t* data = s.state_tensor(i, &bytes);
    out.insert(out.end(), data, data + bytes);
  }
  return out;
}

TEST_F(TrainingSessionTest, PowerCutAtEveryByteOfASaveKeepsTheLastCommittedState) {
  Fixture f(model_, model_.size(), kArenaBytes);
  TrainingSession& s = f.session();
  ASSERT_EQ(s.Init(), Status::kOk) << s.error_message();
  const uint32_t slot = static_cast<uint32_t>(StateSlotBytes(s));
  FakeFlash flash(slot);
  EXPECT_EQ(LoadState(s, flash.storage()), Status::kNotFound);  // first boot

  auto train = [&](size_t step) {
    const Step& st = expected_.steps[step];
    float loss;
    ASSERT_EQ(s.TrainStep(reinterpret_cast<const int8_t*>(st.input.data()), st.input.size(),
                          st.label, &loss), Status::kOk);
  };
  train(0);
  train(1);
  ASSERT_EQ(SaveState(s, flash.storage()), Status::kOk);
  const std::vector<uint8_t> committed = StateBytes(s);
  train(2);
  const std::vector<uint8_t> next = StateBytes(s);
  ASSERT_NE(committed, next);

  // The bytes one save stores: the slot's erase, the payload, the header.
  FakeFlash probe = flash;
  ASSERT_EQ(SaveState(s, probe.storage()), Status::kOk);
  const int64_t save_bytes = probe.bytes_stored() - flash.bytes_stored();
  ASSERT_EQ(save_bytes, static_cast<int64_t>(slot) + slot);

  for (int64_t cut = 0; cut <= save_bytes; ++cut) {
    FakeFlash cut_flash = flash;
    cut_flash.CutPowerAfter(cut);
    const Status saved = SaveState(s, cut_flash.storage());
    EXPECT_EQ(saved, cut < save_bytes ? Status::kStorageError : Status::kOk) << cut;
    cut_flash.CutPowerAfter(-1);  // power is back: reboot and load
    Fixture rebooted(model_, model_.size(), kArenaBytes);
    TrainingSession& r = rebooted.session();
    ASSERT_EQ(r.Init(), Status::kOk);
    ASSERT_EQ(LoadState(r, cut_flash.storage()), Status::kOk) << cut;
    EXPECT_EQ(StateBytes(r), cut < save_bytes ? committed : next) << "cut at " << cut;
  }
}

TEST_F(TrainingSessionTest, LoadedStateTrainsOnExactlyAsAnUnbrokenRun) {
  Fixture f(model_, model_.size(), kArenaBytes);
  TrainingSession& s = f.session();
  ASSERT_EQ(s.Init(), Status::kOk);
  FakeFlash flash(static_cast<uint32_t>(StateSlotBytes(s)) + 40);
  float loss;
  const size_t n = expected_.steps.size() - 1;  // the last entry is an infer step
  for (size_t i = 0; i < n; ++i) {
    const Step& st = expected_.steps[i];
    if (i == 3) {  // save, reboot, load, continue
      ASSERT_EQ(SaveState(s, flash.storage()), Status::kOk);
      ASSERT_EQ(SaveState(s, flash.storage()), Status::kOk);  // both slots used
      ASSERT_EQ(s.Reset(), Status::kOk);
      ASSERT_EQ(LoadState(s, flash.storage()), Status::kOk) << s.error_message();
    }
    ASSERT_EQ(s.TrainStep(reinterpret_cast<const int8_t*>(st.input.data()), st.input.size(),
                          st.label, &loss), Status::kOk);
    EXPECT_EQ(FloatBits(loss), st.loss_bits) << "step " << i;
    EXPECT_EQ(Digest(s), st.sha256) << "step " << i;
  }
}

// The host (tflm_train.state_store) wrote cnn_train.state in the device's
// format after 3 host steps: it loads here and training goes on as on the
// host.
TEST_F(TrainingSessionTest, StateSavedByTheHostLoadsAndContinues) {
  std::vector<uint8_t> image = ReadFile("cnn_train.state");
  ASSERT_EQ(image.size(), 2u * expected_.state_slot_bytes);
  StateStorage st;
  st.user = &image;
  st.slot_bytes = expected_.state_slot_bytes;
  st.read = [](void* user, uint32_t offset, void* data, uint32_t n) {
    auto* bytes = static_cast<std::vector<uint8_t>*>(user);
    if (offset + static_cast<uint64_t>(n) > bytes->size()) return false;
    memcpy(data, bytes->data() + offset, n);
    return true;
  };
  st.write = [](void*, uint32_t, const void*, uint32_t) { return false; };
  st.erase = [](void*, uint32_t, uint32_t) { return false; };

  Fixture f(model_, model_.size(), kArenaBytes);
  TrainingSession& s = f.session();
  ASSERT_EQ(s.Init(), Status::kOk);
  ASSERT_EQ(LoadState(s, st), Status::kOk) << s.error_message();
  const size_t done = expected_.state_after_steps;
  ASSERT_GT(done, 0u);
  EXPECT_EQ(Digest(s), expected_.steps[done - 1].sha256);
  for (size_t i = done; i + 1 < expected_.steps.size(); ++i) {
    const Step& step = expected_.steps[i];
    float loss;
    ASSERT_EQ(s.TrainStep(reinterpret_cast<const int8_t*>(step.input.data()),
                          step.input.size(), step.label, &loss), Status::kOk);
    EXPECT_EQ(FloatBits(loss), step.loss_bits) << "step " << i;
    EXPECT_EQ(Digest(s), step.sha256) << "step " << i;
  }
}

TEST_F(TrainingSessionTest, StateOfAnotherModelOrCorruptSlotsDoNotLoad) {
  Fixture f(model_, model_.size(), kArenaBytes);
  TrainingSession& s = f.session();
  ASSERT_EQ(s.Init(), Status::kOk);
  FakeFlash flash(static_cast<uint32_t>(StateSlotBytes(s)));
  ASSERT_EQ(SaveState(s, flash.storage()), Status::kOk);

  const std::vector<uint8_t> other = ReadFile("cnn_float_train.tflite");
  Fixture g(other, other.size(), kArenaBytes);
  ASSERT_EQ(g.session().Init(), Status::kOk);
  FakeFlash big(static_cast<uint32_t>(StateSlotBytes(s) + StateSlotBytes(g.session())));
  ASSERT_EQ(SaveState(s, big.storage()), Status::kOk);
  EXPECT_EQ(LoadState(g.session(), big.storage()), Status::kNotFound);

  // One flipped payload bit: the CRC no longer matches.
  StateStorage st = flash.storage();
  uint8_t byte;
  ASSERT_TRUE(st.read(st.user, kStateHeaderBytes + 5, &byte, 1));
  byte ^= 0x10;
  ASSERT_TRUE(st.write(st.user, kStateHeaderBytes + 5, &byte, 1));
  EXPECT_EQ(LoadState(s, st), Status::kNotFound);
  // A slot smaller than the state is refused before anything is written.
  StateStorage small = flash.storage();
  small.slot_bytes = static_cast<uint32_t>(StateSlotBytes(s)) - 1;
  EXPECT_EQ(SaveState(s, small), Status::kError);
}

}  // namespace
}  // namespace tflm_train
