// The two ways a value is rounded to an integer where the scheme lets the
// user choose: the optimizer's "rounding" (weight and bias updates,
// sgd_update.h) and "gradient_rounding" (int8 gradients, int8_grad.h).
// Stochastic rounding draws u in [0, 1) from the model's xorshift32 stream
// (Xorshift32Uniform, core/float_math.h; tflm_train/rng in a model).
#ifndef TFLM_TRAIN_KERNELS_GRAD_ROUNDING_H_
#define TFLM_TRAIN_KERNELS_GRAD_ROUNDING_H_

namespace tflm_train {

enum class Rounding : int { kNearest = 0, kStochastic = 1 };

}  // namespace tflm_train

#endif  // TFLM_TRAIN_KERNELS_GRAD_ROUNDING_H_
