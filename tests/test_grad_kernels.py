"""Gradient correctness of the reference training kernels.

The kernels (tflm_train._native.testing, ops_cc/kernels/grad/) are compared
with TensorFlow autodiff of the equivalent dequantized computation, run in
float64: x = s_x (q_x - z_x), W[o] = s_w[o] q_w[o], b[o] = s_x s_w[o] q_b[o],
y_pre = layer(x, W) + b, q_y = clamp(round(y_pre / s_y) + z_y, act range),
and the loss sum(stop_gradient(dy * mask(q_y)) * y_pre), so TF's gradients
are the masked straight-through gradients of docs/format.md.

Tolerances (float32 kernels against the float64 reference):
  * gradients (x/grad, weight, bias, pooling, mean, loss): max abs error
    <= GRAD_RTOL * max(magnitude), GRAD_RTOL = 2e-6, where the magnitude is
    the same gradient computed from absolute values (|dy|, |x|, |W|): the sum
    of |terms| that bounds float rounding in a sum, so cancelling sums do not
    inflate the check. Measured worst case over 60 seeds per layer kind:
    1.4e-7 (conv, depthwise, fully connected; x, weight and bias gradients;
    conv_wide, the wide per-tensor convolutions, is held to the same bound);
    200 seeds of the loss: 6.4e-7 for its gradient (max |reference| as the
    magnitude) and 1.3e-7 of max(1, loss) for the loss (bound: 2e-6).
  * the in-place updates are checked exactly: numpy recomputes
    q + floor(-lr * (G / s) + 0.5) (or + u for stochastic rounding, with u
    from an independent xorshift32) in float32 from the kernel's own float
    gradient G, which itself is within the tolerance above of TF's gradient.
  * the activations and MUL (same tolerance; magnitude |want|, for MUL the
    gradient of the absolute values, for LOGISTIC / TANH |dy| times the
    derivative's maximum): measured worst case over 60 seeds 8.8e-8
    (hard_swish), 8.5e-8 (logistic), 1e-7 (tanh), 4.6e-8 (leaky ReLU),
    8.0e-8 (MUL over the broadcast cases).
  * shape-only grads (add, pad, reshape, grad sum, concatenation, transpose,
    strided slice) and max-pool routing are exact.
"""
import numpy as np
import pytest
import tensorflow as tf

from tflm_train._native import testing as K

GRAD_RTOL = 2e-6
SEEDS = range(8)
NONE, RELU, RELU6 = 0, 1, 3
SAME, VALID = 0, 1


# ---------------------------------------------------------------- helpers


def assert_grad_close(got, want, what="", magnitude=None):
    """|got - want| <= GRAD_RTOL * max(magnitude), where
    magnitude (default |want|) is the same gradient computed from absolute
    values: the sum of |terms| that bounds float rounding in a sum."""
    want = np.asarray(want, np.float64)
    got = np.asarray(got, np.float64)
    assert got.shape == want.shape, what
    magnitude = np.abs(want if magnitude is None else np.asarray(magnitude))
    bound = GRAD_RTOL * np.max(magnitude, initial=0.0)
    err = np.max(np.abs(got - want), initial=0.0)
    assert err <= bound, f"{what}: max error {err:.3g} > {bound:.3g}"


def round_half_away(v):
    return np.sign(v) * np.floor(np.abs(v) + 0.5)


def act_range(activation, scale, zero_point):
    """docs/format.md: TFLite's CalculateActivationRangeQuantized for int8."""
    if activation == NONE:
        return -128, 127
    lo = max(-128, zero_point)
    if activation == RELU:
        return lo, 127
    six = round_half_away(np.float32(6.0) / np.float32(scale))
    return lo, int(min(127, zero_point + six))


def quantize_output(y_pre, rng, activation):
    """A realistic int8 y for y_pre, with some saturated cells."""
    s_y = float(np.max(np.abs(y_pre))) / 100.0 + 1e-6
    z_y = int(rng.integers(-30, 30))
    lo, hi = act_range(activation, s_y, z_y)
    q = np.clip(np.round(y_pre / s_y) + z_y, lo, hi).astype(np.int8)
    mask = ((q > lo) & (q < hi)).astype(np.float64)
    return q, (lo, hi), mask


def xorshift32(state):
    state ^= (state << 13) & 0xFFFFFFFF
    state ^= state >> 17
    state ^= (state << 5) & 0xFFFFFFFF
    return state


class Xorshift:
    """Independent reference of the stochastic rounding stream."""

    def __init__(self, state):
        self.state = state

    def uniform(self):
        self.state = xorshift32(self.state)
        return np.float32((self.state >> 8) * 2.0**-24)


def expected_update(q, grad, lr, scale, qas, lo, hi, offsets=None):
    """q + round(-lr * (qas ? G / s : G * s)) in float32, saturated."""
    grad = np.asarray(grad, np.float32)
    scale = np.asarray(scale, np.float32)
    lr = np.float32(lr)
    with np.errstate(all="ignore"):
        step = lr * (grad / scale if qas else grad * scale)
        off = np.float32(0.5) if offsets is None else np.asarray(offsets, np.float32)
        v = np.floor(-step + off)
    delta = np.where(np.isfinite(step), v, 0).astype(np.float64)
    out = np.clip(q.astype(np.float64) + delta, lo, hi)
    return out.astype(q.dtype)


def tf_grads(forward, *inputs):
    """forward(*inputs) in float64 under a tape watching the inputs: returns
    (output, watched inputs, tape) to take gradients of a loss built on them."""
    variables = [tf.constant(v, tf.float64) for v in inputs]
    with tf.GradientTape() as tape:
        tape.watch(variables)
        out = forward(*variables)
    return out.numpy(), variables, tape


def dilate_filter(w, dilation):
    """[KH, KW, ...] filter with zeros between taps: TF's CPU kernels lack
    dilated gradients, and a dilated filter is the same function."""
    k_h, k_w = w.shape[0], w.shape[1]
    d_h, d_w = dilation
    taps = [[[ky * d_h, kx * d_w] for kx in range(k_w)] for ky in range(k_h)]
    shape = [(k_h - 1) * d_h + 1, (k_w - 1) * d_w + 1, *w.shape[2:]]
    return tf.scatter_nd(taps, w, shape)


def layer_case(rng, kind):
    """Random conv / depthwise / fully connected layer with its TF gradients."""
    activation = int(rng.choice([NONE, RELU, RELU6]))
    s_x = float(rng.uniform(0.01, 0.1))  # rescaled below
    z_x = int(rng.integers(-20, 20))
    case = dict(kind=kind, activation=activation, x_scale=s_x, x_zero_point=z_x)
    if kind == "fc":
        batches, depth_in, depth_out = (int(v) for v in rng.integers(1, [3, 40, 12]))
        q_x = rng.integers(-128, 128, (batches, depth_in)).astype(np.int8)
        q_w = rng.integers(-127, 128, (depth_out, depth_in)).astype(np.int8)
        channels = depth_out
    else:
        batches = int(rng.integers(1, 3))
        h, w = (int(v) for v in rng.integers(3, 10, 2))
        k_h, k_w = (int(v) for v in rng.integers(1, 4, 2))
        depth_in = int(rng.integers(1, 6))
        if kind == "conv_wide":  # the input gradient's 16- and 8-channel blocks
            depth_in = int(rng.integers(17, 41))
        if kind.startswith("conv"):
            channels = int(rng.integers(1, 7)) if kind == "conv" else int(rng.integers(8, 30))
            stride = [int(v) for v in rng.integers(1, 3, 2)]
        else:  # depthwise; "depthwise_m": depth multiplier 2-8
            multiplier = int(rng.integers(2, 9)) if kind == "depthwise_m" else 1
            channels = depth_in * multiplier
            stride = [int(rng.integers(1, 3))] * 2  # TF needs equal strides
        dilation = [1, 1]
        if rng.random() < 0.4:
            dilation = [int(v) for v in rng.integers(1, 4, 2)]
        padding = int(rng.integers(0, 2))
        if padding == VALID:
            k_h = min(k_h, (h - 1) // dilation[0] + 1)
            k_w = min(k_w, (w - 1) // dilation[1] + 1)
        q_x = rng.integers(-128, 128, (batches, h, w, depth_in)).astype(np.int8)
        shape_w = ((channels, k_h, k_w, depth_in) if kind.startswith("conv") else
                   (1, k_h, k_w, channels))
        q_w = rng.integers(-127, 128, shape_w).astype(np.int8)
        case.update(stride=stride, dilation=dilation, padding=padding)
    s_w = rng.uniform(0.002, 0.02, channels).astype(np.float32)
    if kind == "conv_wide":  # per-tensor weights: one scale for every channel
        s_w[:] = s_w[0]
    q_b = rng.integers(-2000, 2000, channels).astype(np.int32)
    b_scales = np.float32(s_x) * s_w

    x_real = s_x * (q_x.astype(np.float64) - z_x)
    b_real = b_scales.astype(np.float64) * q_b
    if kind == "fc":
        w_real = s_w.astype(np.float64)[:, None] * q_w

        def forward(x, w, b):
            return tf.matmul(x, w, transpose_b=True) + b
    else:
        pad = "SAME" if case["padding"] == SAME else "VALID"
        strides = [1, *case["stride"], 1]
        if kind.startswith("conv"):
            w_real = s_w.astype(np.float64)[:, None, None, None] * q_w

            def forward(x, w, b):
                w = dilate_filter(tf.transpose(w, [1, 2, 3, 0]), case["dilation"])
                return tf.nn.conv2d(x, w, strides, pad) + b
        else:
            w_real = s_w.astype(np.float64)[None, None, None, :] * q_w

            def forward(x, w, b):
                # [1, KH, KW, C*M] -> TF's [KH, KW, C, M] (output channel c*M + m)
                w = tf.reshape(tf.transpose(w, [1, 2, 3, 0]), [k_h, k_w, depth_in, -1])
                w = dilate_filter(w, case["dilation"])
                return tf.nn.depthwise_conv2d(x, w, strides, pad) + b

    # Rescale s_x (y_pre is linear in it) so that y_pre has a standard
    # deviation of about 3 and RELU6 clips only some outputs.
    y_unit = forward(*(tf.constant(v) for v in (x_real, w_real, b_real)))
    factor = 3.0 / (float(np.std(y_unit.numpy())) + 1e-12)
    s_x = float(np.float32(s_x * factor))  # the kernel's float32 scale
    case["x_scale"] = s_x
    b_scales = np.float32(s_x) * s_w
    x_real = s_x * (q_x.astype(np.float64) - z_x)
    b_real = b_scales.astype(np.float64) * q_b
    y_pre, variables, tape = tf_grads(forward, x_real, w_real, b_real)
    q_y, (lo, hi), mask = quantize_output(y_pre, rng, activation)
    dy = rng.normal(size=y_pre.shape).astype(np.float32)
    with tape:
        loss = tf.reduce_sum(tf.constant(dy * mask) * forward(*variables))
    dx, dw, db = tape.gradient(loss, variables)
    _, abs_variables, abs_tape = tf_grads(forward, np.abs(x_real),
                                          np.abs(w_real), b_real)
    with abs_tape:
        abs_loss = tf.reduce_sum(tf.constant(np.abs(dy) * mask) *
                                 forward(*abs_variables))
    mag = abs_tape.gradient(abs_loss, abs_variables)
    case.update(q_x=q_x, q_w=q_w, s_w=s_w, q_b=q_b, b_scales=b_scales, q_y=q_y,
                dy=dy, act_min=lo, act_max=hi, ref_dx=dx.numpy(),
                ref_dw=dw.numpy(), ref_db=db.numpy(),
                mag_dx=mag[0].numpy(), mag_dw=mag[1].numpy(),
                mag_db=mag[2].numpy())
    return case


def check_layer_grads(case, out):
    assert_grad_close(out["dx"], case["ref_dx"], "x/grad", case["mag_dx"])
    assert_grad_close(out["filter_grad"], case["ref_dw"], "weight grad",
                      case["mag_dw"])
    assert_grad_close(out["bias_grad"], case["ref_db"], "bias grad",
                      case["mag_db"])


def step_lr(grad, scale, qas, steps=3.0):
    """A learning rate giving update steps of a few units."""
    per_lr = np.abs(grad / scale if qas else grad * scale)
    typical = np.median(per_lr[per_lr > 0]) if np.any(per_lr > 0) else 1.0
    return float(steps / typical)


def run_layer(case, **kwargs):
    common = dict(x=case["q_x"], x_scale=case["x_scale"],
                  x_zero_point=case["x_zero_point"], filter=case["q_w"],
                  filter_scales=case["s_w"], y=case["q_y"], dy=case["dy"],
                  act_min=case["act_min"], act_max=case["act_max"],
                  bias=case["q_b"])
    common.update(kwargs)
    if case["kind"] == "fc":
        return K.fully_connected_grad(**common)
    fn = K.conv_grad if case["kind"].startswith("conv") else K.depthwise_conv_grad
    return fn(stride=case["stride"], dilation=case["dilation"],
              padding=case["padding"], **common)


def weight_order(case, channels):
    """Flat indices of the weights of `channels` in the kernel's update (and
    draw) order: row-major order of the filter."""
    w = case["q_w"]
    idx = np.arange(w.size).reshape(w.shape)
    if case["kind"].startswith("depthwise"):
        return [int(i) for i in idx[0][:, :, channels].reshape(-1)]
    return [int(i) for c in channels for i in idx[c].reshape(-1)]


def channel_of(case):
    """Output channel of every flat weight index."""
    w = case["q_w"]
    if case["kind"].startswith("depthwise"):
        return np.broadcast_to(np.arange(w.shape[3]), w.shape).reshape(-1)
    return np.repeat(np.arange(w.shape[0]), w.size // w.shape[0])


# ---------------------------------------------------------------- layers

# Seeds follow the index. conv_wide: 17-40 input channels (the tap-by-tap
# input gradient's register blocks), per-tensor weight scale.
KINDS = ["conv", "depthwise", "fc", "depthwise_m", "conv_wide"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", SEEDS)
def test_layer_gradients_match_tf(kind, seed):
    case = layer_case(np.random.default_rng(1000 * KINDS.index(kind) + seed),
                      kind)
    out = run_layer(case)
    check_layer_grads(case, out)
    # Nothing updates without update flags.
    np.testing.assert_array_equal(out["filter"], case["q_w"])
    np.testing.assert_array_equal(out["bias"], case["q_b"])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("qas", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_layer_update_nearest(kind, qas, seed):
    rng = np.random.default_rng(50 + seed)
    case = layer_case(rng, kind)
    grads = run_layer(case)
    g = grads["filter_grad"]
    s = case["s_w"][channel_of(case)].reshape(g.shape)
    weight_lr = step_lr(g, s, qas)
    bias_lr = step_lr(grads["bias_grad"], case["b_scales"], qas)
    out = run_layer(case, update_weights=True, update_bias=True,
                    weight_lr=weight_lr, bias_lr=bias_lr, qas=qas)
    np.testing.assert_array_equal(out["filter_grad"], g)
    want_w = expected_update(case["q_w"], g, weight_lr, s, qas, -127, 127)
    np.testing.assert_array_equal(out["filter"], want_w)
    want_b = expected_update(case["q_b"], out["bias_grad"], bias_lr,
                             case["b_scales"], qas, -2**31, 2**31 - 1)
    np.testing.assert_array_equal(out["bias"], want_b)
    assert np.any(out["filter"] != case["q_w"]), "test steps too small"
    # The input gradient comes from the old weights.
    check_layer_grads(case, out)
    if qas:
        # QAS is float SGD on the real weight: dW_real ~ -lr G within rounding.
        moved = (out["filter"].astype(np.float64) - case["q_w"]) * s
        unsat = np.abs(out["filter"].astype(int)) < 127
        err = np.abs(moved + weight_lr * g.astype(np.float64))[unsat]
        assert np.all(err <= 0.5 * s[unsat] * (1 + 1e-5))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", range(3))
def test_layer_update_stochastic_and_sparse(kind, seed):
    rng = np.random.default_rng(70 + seed)
    case = layer_case(rng, kind)
    num = case["s_w"].size
    channels = sorted(rng.choice(num, size=max(1, num // 2), replace=False))
    channels = [int(c) for c in channels]
    state = int(rng.integers(1, 2**32))
    grads = run_layer(case)
    weight_lr = step_lr(grads["filter_grad"],
                        case["s_w"][channel_of(case)].reshape(case["q_w"].shape),
                        False, steps=1.5)
    bias_lr = step_lr(grads["bias_grad"], case["b_scales"], False, steps=1.5)
    out = run_layer(case, update_weights=True, update_bias=True,
                    channels=channels, weight_lr=weight_lr, bias_lr=bias_lr,
                    rounding=1, rng_state=state)
    stream = Xorshift(state)
    order = weight_order(case, channels)
    flat_g = out["filter_grad"].reshape(-1)
    flat_s = case["s_w"][channel_of(case)]
    want = case["q_w"].reshape(-1).copy()
    for i in order:
        want[i] = expected_update(want[i:i + 1], flat_g[i:i + 1], weight_lr,
                                  flat_s[i], False, -127, 127,
                                  stream.uniform())[0]
    np.testing.assert_array_equal(out["filter"].reshape(-1), want)
    # Unlisted channels are untouched, every bias is updated (after weights).
    untouched = ~np.isin(channel_of(case), channels)
    np.testing.assert_array_equal(out["filter"].reshape(-1)[untouched],
                                  case["q_w"].reshape(-1)[untouched])
    offsets = [stream.uniform() for _ in range(num)]
    want_b = expected_update(case["q_b"], out["bias_grad"], bias_lr,
                             case["b_scales"], False, -2**31, 2**31 - 1,
                             offsets)
    np.testing.assert_array_equal(out["bias"], want_b)
    assert out["rng_state"] == stream.state
    # Deterministic for a seed.
    again = run_layer(case, update_weights=True, update_bias=True,
                      channels=channels, weight_lr=weight_lr, bias_lr=bias_lr,
                      rounding=1, rng_state=state)
    np.testing.assert_array_equal(again["filter"], out["filter"])
    np.testing.assert_array_equal(again["bias"], out["bias"])


@pytest.mark.parametrize("kind", KINDS)
def test_layer_saturation(kind):
    case = layer_case(np.random.default_rng(7), kind)
    up = run_layer(case, update_weights=True, update_bias=True, weight_lr=1e9,
                   bias_lr=1e30)
    g = up["filter_grad"]
    moved = g != 0
    np.testing.assert_array_equal(up["filter"][moved],
                                  np.where(g[moved] < 0, 127, -127))
    gb = up["bias_grad"]
    np.testing.assert_array_equal(
        up["bias"][gb != 0], np.where(gb[gb != 0] < 0, 2**31 - 1, -2**31))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_layer_non_finite_gradients_leave_parameters(kind, bad):
    case = layer_case(np.random.default_rng(11), kind)
    passing = (case["q_y"] > case["act_min"]) & (case["q_y"] < case["act_max"])
    if not passing.any():
        pytest.skip("no unmasked output")
    dy = case["dy"].copy()
    dy[passing] = bad
    dy_masked_only = case["dy"].copy()
    dy_masked_only[~passing] = bad
    out = run_layer(dict(case, dy=dy), update_weights=True, update_bias=True,
                    weight_lr=1.0, bias_lr=1.0)
    finite = np.isfinite(out["filter_grad"])
    np.testing.assert_array_equal(out["filter"][~finite],
                                  case["q_w"][~finite])
    bias_finite = np.isfinite(out["bias_grad"])
    np.testing.assert_array_equal(out["bias"][~bias_finite],
                                  case["q_b"][~bias_finite])
    assert not bias_finite.all()
    # A non-finite gradient where the mask is 0 is dropped (a select).
    clean = run_layer(dict(case, dy=dy_masked_only))
    reference = run_layer(case)
    np.testing.assert_array_equal(clean["dx"], reference["dx"])
    np.testing.assert_array_equal(clean["filter_grad"], reference["filter_grad"])


# ---------------------------------------------------------------- sgd rule


def test_sgd_rule_qas_and_plain_scaling():
    rng = np.random.default_rng(3)
    q = rng.integers(-100, 100, 1000).astype(np.int8)
    g = rng.normal(size=1000).astype(np.float32)
    s = rng.uniform(0.001, 0.05, 1000).astype(np.float32)
    for qas, lr in ((True, 0.002), (False, 60.0)):
        got, _ = K.sgd_update_int8(q, g, lr, s, qas=qas)
        np.testing.assert_array_equal(got, expected_update(q, g, lr, s, qas,
                                                           -127, 127))
    # QAS divides by the scale, plain SGD multiplies by it.
    got_qas, _ = K.sgd_update_int8(np.int8([0]), np.float32([1.0]), 0.5,
                                   np.float32([0.25]), qas=True)
    got_plain, _ = K.sgd_update_int8(np.int8([0]), np.float32([1.0]), 8.0,
                                     np.float32([0.25]), qas=False)
    assert got_qas[0] == -2 and got_plain[0] == -2


def test_sgd_rule_rounding_edges():
    # floor(-step + 0.5) in float32: ties go up.
    grads = np.float32([0.5, -0.5, 1.5, -1.5, 0.49999997, 0.0, -0.0])
    got, _ = K.sgd_update_int8(np.zeros(7, np.int8), grads, 1.0,
                               np.float32([1.0]), qas=True)
    np.testing.assert_array_equal(got, [0, 1, -1, 2, 0, 0, 0])
    got, _ = K.sgd_update_int8(np.int8([-128, 127, 0]), np.float32([0, 0, 0]),
                               1.0, np.float32([1.0]))
    np.testing.assert_array_equal(got, [-127, 127, 0])
    got, _ = K.sgd_update_int32(np.int32([2**31 - 5, -2**31 + 5, -2**31]),
                                np.float32([-1e3, 1e3, -1e38]), 1.0,
                                np.float32([1.0]), qas=True)
    np.testing.assert_array_equal(got, [2**31 - 1, -2**31, 2**31 - 1])
    got, _ = K.sgd_update_int32(np.int32([7, 7, 7]),
                                np.float32([np.nan, np.inf, 1e38]), 1e10,
                                np.float32([1.0]), qas=False)
    np.testing.assert_array_equal(got, [7, 7, 7])


def test_stochastic_rounding_unbiased_and_deterministic():
    n = 200_000
    for frac in (0.3, 0.75, 0.05):
        q = np.zeros(n, np.int32)
        g = np.full(n, -(2.0 + frac), np.float32)  # step -(2 + frac)
        got, state = K.sgd_update_int32(q, g, 1.0, np.float32([1.0]),
                                        rounding=1, rng_state=12345)
        assert set(np.unique(got)) <= {2, 3}
        mean = got.mean()
        sigma = np.sqrt(frac * (1 - frac) / n)
        assert abs(mean - (2.0 + np.float32(frac))) < 5 * sigma
        again, state2 = K.sgd_update_int32(q, g, 1.0, np.float32([1.0]),
                                           rounding=1, rng_state=12345)
        np.testing.assert_array_equal(got, again)
        assert state == state2
        other, _ = K.sgd_update_int32(q, g, 1.0, np.float32([1.0]), rounding=1,
                                      rng_state=54321)
        assert np.any(other != got)


def test_xorshift_stream():
    u, state = K.xorshift32_uniform(2463534242, 1000)
    ref = Xorshift(2463534242)
    want = np.array([ref.uniform() for _ in range(1000)], np.float32)
    np.testing.assert_array_equal(u, want)
    assert state == ref.state
    assert np.all((u >= 0) & (u < 1))


# ---------------------------------------------------------------- loss


@pytest.mark.parametrize("seed", SEEDS)
def test_softmax_cross_entropy_matches_tf(seed):
    rng = np.random.default_rng(200 + seed)
    classes = int(rng.integers(2, 30))
    # Real-valued logits, also far outside any int8 range.
    logits_f32 = (rng.normal(0, 1, classes) * float(rng.choice([0.1, 3.0, 40.0]))).astype(
        np.float32)
    label = int(rng.integers(0, classes))
    logits = tf.Variable(logits_f32.astype(np.float64)[None])
    with tf.GradientTape() as tape:
        ref_loss = tf.nn.sparse_softmax_cross_entropy_with_logits([label], logits)
    ref_grad = tape.gradient(ref_loss, logits).numpy()[0]
    # TF forms p_label - 1 by subtraction, which cancels in float64 too when
    # p_label is close to 1: the label's entry is taken from the sum of the
    # others' probabilities instead (float64 numpy).
    e = np.exp(logits_f32.astype(np.float64) - float(logits_f32.max()))
    ref_grad[label] = -np.delete(e, label).sum() / e.sum()
    loss, grad = K.softmax_cross_entropy(logits_f32, label)
    ref = float(ref_loss.numpy()[0])
    assert abs(loss - ref) <= 2e-6 * max(1.0, abs(ref))
    assert_grad_close(grad, ref_grad, "logits/grad")
    loss_only, none = K.softmax_cross_entropy(logits_f32, label, want_grad=False)
    assert none is None and loss_only == loss


def test_softmax_cross_entropy_edges():
    logits = np.float32([-256.0, 254.0, 0.0])
    loss, _ = K.softmax_cross_entropy(logits, 0)  # p underflows in float32
    assert np.isfinite(loss) and abs(loss - 510.0) < 1e-3
    for label in (-1, 3):
        loss, grad = K.softmax_cross_entropy(logits, label)
        assert np.isnan(loss)
    loss, grad = K.softmax_cross_entropy(np.float32([0.5, 0.5]), 1)
    assert abs(loss - np.log(2)) < 1e-7
    np.testing.assert_allclose(grad, [0.5, -0.5])


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", ["mean_squared_error", "mean_absolute_error"])
def test_regression_losses_match_tf(name, seed):
    rng = np.random.default_rng(300 + seed)
    n = int(rng.integers(1, 700))
    values = (rng.normal(0, 5, n)).astype(np.float32)
    targets = (rng.normal(0, 5, n)).astype(np.float32)
    v = tf.Variable(values.astype(np.float64))
    with tf.GradientTape() as tape:
        error = v - targets.astype(np.float64)
        ref_loss = tf.reduce_mean(error * error if name == "mean_squared_error"
                                  else tf.abs(error))
    ref_grad = tape.gradient(ref_loss, v).numpy()
    loss, grad = getattr(K, name)(values, targets)
    assert abs(loss - float(ref_loss)) <= 2e-6 * max(1.0, abs(float(ref_loss)))
    assert_grad_close(grad, ref_grad, f"{name} grad")
    loss_only, none = getattr(K, name)(values, targets, want_grad=False)
    assert none is None and loss_only == loss


def test_exp_log_accuracy():
    x = np.linspace(-100, 88, 200_001, dtype=np.float32)
    want = np.exp(x.astype(np.float64))
    got = K.exp_f(x).astype(np.float64)
    normal = want > np.finfo(np.float32).tiny
    assert np.max(np.abs(got - want)[normal] / want[normal]) < 2**-23
    y = np.float32(np.exp(np.linspace(-87, 88, 200_001)))
    want = np.log(y.astype(np.float64))
    got = K.log_f(y).astype(np.float64)
    ulp = np.spacing(np.abs(want).astype(np.float32)).astype(np.float64)
    assert np.max(np.abs(got - want) / ulp) <= 1.0


# ---------------------------------------------------------------- pooling


def pool_case(rng, unique):
    batches, h, w, c = (int(v) for v in rng.integers(1, [3, 9, 9, 4]))
    f_h, f_w = (int(v) for v in rng.integers(1, 4, 2))
    s_h, s_w = (int(v) for v in rng.integers(1, 3, 2))
    padding = int(rng.integers(0, 2))
    if padding == VALID:
        f_h, f_w = min(f_h, h), min(f_w, w)
    if unique:  # no ties inside a window (TF's choice among ties differs)
        size = batches * h * w * c
        base = rng.permutation(256)[:size] - 128 if size <= 256 else None
        if base is None:
            return pool_case(rng, unique)
        q_x = base.reshape(batches, h, w, c).astype(np.int8)
    else:
        q_x = rng.integers(-3, 3, (batches, h, w, c)).astype(np.int8)
    return q_x, (f_h, f_w), (s_h, s_w), padding


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("max_pool", [False, True])
def test_pooling_grad_matches_tf(seed, max_pool):
    rng = np.random.default_rng(300 + seed)
    q_x, window, strides, padding = pool_case(rng, unique=True)
    activation = int(rng.choice([NONE, RELU]))
    s_x, z_x = 0.05, int(rng.integers(-10, 10))
    pad = "SAME" if padding == SAME else "VALID"
    op = tf.nn.max_pool2d if max_pool else tf.nn.avg_pool2d

    def forward(x):
        return op(x, window, strides, pad)

    y_pre, variables, tape = tf_grads(forward, s_x * (q_x.astype(np.float64) - z_x))
    lo, hi = act_range(activation, s_x, z_x)
    q_y = np.clip(np.round(y_pre / s_x) + z_x, lo, hi).astype(np.int8)
    mask = ((q_y > lo) & (q_y < hi)).astype(np.float64)
    dy = rng.normal(size=y_pre.shape).astype(np.float32)
    with tape:
        loss = tf.reduce_sum(tf.constant(dy * mask) * forward(*variables))
    ref = tape.gradient(loss, variables)[0].numpy()
    _, variables, tape = tf_grads(forward, variables[0].numpy())
    with tape:
        loss = tf.reduce_sum(tf.constant(np.abs(dy) * mask) * forward(*variables))
    mag = tape.gradient(loss, variables)[0].numpy()
    args = dict(stride=list(strides), filter=list(window), padding=padding,
                act_min=lo, act_max=hi)
    if max_pool:
        got = K.max_pool_grad(dy, q_y, q_x, **args)
    else:
        got = K.average_pool_grad(dy, q_y, list(q_x.shape), **args)
    assert_grad_close(got, ref, "x/grad", mag)


def test_max_pool_ties_go_to_first_cell():
    rng = np.random.default_rng(5)
    for _ in range(20):
        q_x, (f_h, f_w), (s_h, s_w), padding = pool_case(rng, unique=False)
        _, h, w, _ = q_x.shape
        out_h = (h + s_h - 1) // s_h if padding == SAME else (h - f_h) // s_h + 1
        out_w = (w + s_w - 1) // s_w if padding == SAME else (w - f_w) // s_w + 1
        pad_h = max(((out_h - 1) * s_h + f_h - h) // 2, 0)
        pad_w = max(((out_w - 1) * s_w + f_w - w) // 2, 0)
        dy = rng.normal(size=(q_x.shape[0], out_h, out_w, q_x.shape[3]))
        dy = dy.astype(np.float32)
        q_y = np.zeros(dy.shape, np.int8)  # inside the mask
        want = np.zeros(q_x.shape, np.float32)
        for b, oy, ox, c in np.ndindex(*dy.shape):
            y0, x0 = oy * s_h - pad_h, ox * s_w - pad_w
            cells = [(iy, ix) for iy in range(max(y0, 0), min(y0 + f_h, h))
                     for ix in range(max(x0, 0), min(x0 + f_w, w))]
            best = cells[0]
            for cell in cells:
                if q_x[b, cell[0], cell[1], c] > q_x[b, best[0], best[1], c]:
                    best = cell
            want[b, best[0], best[1], c] += dy[b, oy, ox, c]
        got = K.max_pool_grad(dy, q_y, q_x, stride=[s_h, s_w], filter=[f_h, f_w],
                              padding=padding)
        np.testing.assert_array_equal(got, want)


# ---------------------------------------------------------------- shape ops


@pytest.mark.parametrize("seed", SEEDS)
def test_mean_grad_matches_tf(seed):
    rng = np.random.default_rng(400 + seed)
    shape = [int(v) for v in rng.integers(1, [3, 8, 8, 6])]
    x = tf.Variable(rng.normal(size=shape))
    dy = rng.normal(size=(shape[0], shape[3])).astype(np.float32)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.constant(dy, tf.float64) *
                             tf.reduce_mean(x, axis=[1, 2]))
    ref = tape.gradient(loss, x).numpy()
    assert_grad_close(K.mean_grad(dy, shape), ref, "x/grad")
    assert_grad_close(K.mean_grad(dy.reshape(shape[0], 1, 1, shape[3]), shape),
                      ref, "x/grad keep_dims")


@pytest.mark.parametrize("seed", SEEDS)
def test_pad_grad_matches_tf(seed):
    rng = np.random.default_rng(500 + seed)
    rank = int(rng.integers(1, 6))
    shape = [int(v) for v in rng.integers(1, 5, rank)]
    paddings = rng.integers(0, 3, (rank, 2)).astype(np.int32)
    x = tf.Variable(rng.normal(size=shape))
    padded = [s + int(p.sum()) for s, p in zip(shape, paddings)]
    dy = rng.normal(size=padded).astype(np.float32)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.constant(dy, tf.float64) * tf.pad(x, paddings))
    ref = tape.gradient(loss, x).numpy()
    got = K.pad_grad(dy, paddings, shape)
    np.testing.assert_array_equal(got, ref.astype(np.float32))


def test_add_reshape_and_grad_sum():
    rng = np.random.default_rng(9)
    y = rng.integers(-128, 128, (2, 3, 4, 5)).astype(np.int8)
    dy = rng.normal(size=y.shape).astype(np.float32)
    lo, hi = act_range(RELU, 0.1, -5)
    got = K.add_grad(dy, y, lo, hi)
    np.testing.assert_array_equal(got, np.where((y > lo) & (y < hi), dy, 0))
    np.testing.assert_array_equal(K.reshape_grad(dy, [6, 20]),
                                  dy.reshape(6, 20))
    grads = [rng.normal(size=(3, 7)).astype(np.float32) for _ in range(4)]
    want = grads[0].copy()
    for g in grads[1:]:
        want = want + g  # float32, in input order
    np.testing.assert_array_equal(K.grad_sum(grads), want)
    np.testing.assert_array_equal(K.grad_sum(grads[:1]), grads[0])


# ------------------------------------------- activations, MUL, routing ops
#
# The kernels take derivatives at the real values they dequantize in single
# precision, s * (q - z) rounded once to float32; the references do the same
# (then widen to float64), so a value at a kink (hard_swish at +-3, leaky
# ReLU at 0) lies on the same side in both.


def dequantize32(q, scale, zero_point):
    """The kernels' real value of int8 q, widened to float64."""
    return (np.float32(scale) * (q.astype(np.int32) - zero_point).astype(np.float32)
            ).astype(np.float64)


def int8_output(y_real, rng, lo_clip=0.8):
    """A realistic int8 output of y_real (calibrated on a range narrower
    than the data, so some cells saturate) and its int8-range mask."""
    lo = min(float(np.quantile(y_real, 0.05)), 0.0) * lo_clip
    hi = max(float(np.quantile(y_real, 0.95)), 1e-3)
    s_y = (hi - lo) / 255.0
    z_y = int(np.clip(np.round(-128 - lo / s_y), -128, 127))
    q = np.clip(np.round(y_real / s_y) + z_y, -128, 127).astype(np.int8)
    return q, ((q > -128) & (q < 127)).astype(np.float64)


def elementwise_reference(f, x, dy, mask):
    """TF float64 gradient of sum(dy * mask * f(x)) with respect to x."""
    _, variables, tape = tf_grads(f, x)
    with tape:
        loss = tf.reduce_sum(tf.constant(dy.astype(np.float64) * mask) * f(*variables))
    return tape.gradient(loss, variables)[0].numpy()


def tf_hard_swish(x):
    return x * tf.nn.relu6(x + 3.0) / 6.0


@pytest.mark.parametrize("seed", SEEDS)
def test_hard_swish_grad_matches_tf(seed):
    rng = np.random.default_rng(700 + seed)
    shape = [int(v) for v in rng.integers(1, [3, 7, 7, 9])]
    # Input ranges from narrow (all inside the quadratic part) to wide.
    s_x = float(np.float32(rng.choice([0.005, 0.03, 0.08, 0.2])))
    z_x = int(rng.integers(-40, 40))
    q_x = rng.integers(-128, 128, shape).astype(np.int8)
    x = dequantize32(q_x, s_x, z_x)
    q_y, mask = int8_output(tf_hard_swish(tf.constant(x)).numpy(), rng)
    dy = rng.normal(size=shape).astype(np.float32)
    ref = elementwise_reference(tf_hard_swish, x, dy, mask)
    got = K.hard_swish_grad(dy, q_x, s_x, z_x, q_y)
    assert_grad_close(got, ref, "x/grad")
    assert np.all(got[mask == 0] == 0)


def test_hard_swish_derivative_at_the_kinks_follows_tf():
    # v = +-3 exactly (scale 0.5, q - z = +-6), and around them.
    q_x = np.array([-8, -7, -6, -5, 0, 5, 6, 7, 8], np.int8)
    x = dequantize32(q_x, 0.5, 0)
    dy = np.ones(q_x.shape, np.float32)
    ref = elementwise_reference(tf_hard_swish, x, dy, np.ones(q_x.shape))
    got = K.hard_swish_grad(dy, q_x, 0.5, 0, np.zeros(q_x.shape, np.int8))
    np.testing.assert_array_equal(got, ref.astype(np.float32))
    np.testing.assert_array_equal(got[[2, 6]], [0.0, 1.0])


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", ["logistic", "tanh"])
def test_logistic_tanh_grad_matches_tf(name, seed):
    """The derivative comes from the int8 output's real value v: TF's
    gradient of sigmoid / tanh at the input whose output is exactly v."""
    rng = np.random.default_rng(800 + seed)
    shape = [int(v) for v in rng.integers(1, [3, 6, 6, 8])]
    # TFLite's fixed output quantizations, and (the kernel does not depend on
    # them) another one whose int8 range lies inside the function's range.
    fixed = (1 / 256, -128) if name == "logistic" else (1 / 128, 0)
    other = (1 / 300, -128) if name == "logistic" else (1 / 140, 3)
    s_y, z_y = fixed if seed % 2 == 0 else other
    q_y = rng.integers(-128, 128, shape).astype(np.int8)
    q_y.flat[:2] = [-128, 127]  # both limits present
    v = dequantize32(q_y, s_y, z_y)
    inside = (q_y > -128) & (q_y < 127)
    if name == "logistic":
        inside &= (v > 0) & (v < 1)
        x_star = np.log(np.where(inside, v, 0.5) / (1 - np.where(inside, v, 0.5)))
        f, kernel = tf.sigmoid, K.logistic_grad
    else:
        inside &= np.abs(v) < 1
        x_star = np.arctanh(np.where(inside, v, 0.0))
        f, kernel = tf.tanh, K.tanh_grad
    dy = rng.normal(size=shape).astype(np.float32)
    ref = elementwise_reference(f, x_star, dy, inside.astype(np.float64))
    got = kernel(dy, q_y, s_y, z_y)
    # The derivative's largest value (1/4, 1) times |dy| bounds the terms.
    assert_grad_close(got, ref, "x/grad", np.abs(dy) * (0.25 if name == "logistic" else 1.0))
    assert np.all(got[(q_y == -128) | (q_y == 127)] == 0)


@pytest.mark.parametrize("seed", SEEDS)
def test_leaky_relu_grad_matches_tf(seed):
    rng = np.random.default_rng(900 + seed)
    alpha = float(np.float32([0.2, 0.01, 0.3, -0.5, 1.5, 0.0, 0.1, 2.0][seed]))
    shape = [int(v) for v in rng.integers(1, [3, 6, 6, 8])]
    s_x, z_x = 0.04, int(rng.integers(-30, 30))
    q_x = rng.integers(-128, 128, shape).astype(np.int8)
    q_x.flat[0] = z_x  # x = 0: TFLM's forward takes the identity branch

    def f(x):  # TFLM's forward in real arithmetic, branches as it takes them
        return tf.where(x >= 0, x, alpha * x)

    x = dequantize32(q_x, s_x, z_x)
    q_y, mask = int8_output(f(tf.constant(x)).numpy(), rng)
    dy = rng.normal(size=shape).astype(np.float32)
    ref = elementwise_reference(f, x, dy, mask)
    got = K.leaky_relu_grad(dy, q_x, z_x, alpha, q_y)
    assert_grad_close(got, ref, "x/grad")
    if mask.flat[0]:
        assert got.flat[0] == dy.flat[0]


MUL_SHAPES = [
    ([1, 5, 6, 8], [1, 5, 6, 8]),  # same shape
    ([1, 5, 6, 8], [1, 1, 1, 8]),  # squeeze-excite: features * channel gates
    ([1, 1, 1, 8], [1, 4, 3, 8]),  # the gates first
    ([2, 3, 1, 5], [3, 4, 1]),     # both broadcast, ranks differ
    ([4, 7], []),                  # a scalar
    ([2, 1, 3, 1, 2], [1, 4, 1, 2, 1]),  # rank 5, alternating
    ([2, 3, 1, 2, 2, 3], [3]),  # rank 6 (TF broadcasts at most 5 alternating)
]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("shapes", MUL_SHAPES, ids=str)
def test_mul_grad_matches_tf(shapes, seed):
    rng = np.random.default_rng(1100 + seed + 10 * MUL_SHAPES.index(shapes))
    a_shape, b_shape = shapes
    activation = [NONE, RELU, RELU6, NONE][seed]
    q_a = rng.integers(-128, 128, a_shape).astype(np.int8)
    q_b = rng.integers(-128, 128, b_shape).astype(np.int8)
    s_a, z_a = float(rng.choice([0.01, 0.05, 0.3])), int(rng.integers(-20, 20))
    s_b, z_b = float(rng.choice([0.004, 0.02, 0.1])), int(rng.integers(-128, 20))
    a, b = dequantize32(q_a, s_a, z_a), dequantize32(q_b, s_b, z_b)

    def forward(a, b):
        return a * b

    y_pre, variables, tape = tf_grads(forward, a, b)
    q_y, (lo, hi), mask = quantize_output(y_pre, rng, activation)
    dy = rng.normal(size=y_pre.shape).astype(np.float32)
    with tape:
        loss = tf.reduce_sum(tf.constant(dy * mask) * forward(*variables))
    ref_a, ref_b = (g.numpy() for g in tape.gradient(loss, variables))
    _, abs_variables, abs_tape = tf_grads(forward, np.abs(a), np.abs(b))
    with abs_tape:
        abs_loss = tf.reduce_sum(tf.constant(np.abs(dy) * mask) * forward(*abs_variables))
    mag_a, mag_b = (g.numpy() for g in abs_tape.gradient(abs_loss, abs_variables))
    got_a, got_b = K.mul_grad(dy, q_y, q_a, s_a, z_a, q_b, s_b, z_b, lo, hi)
    assert_grad_close(got_a, ref_a, "a/grad", mag_a)
    assert_grad_close(got_b, ref_b, "b/grad", mag_b)


def test_mul_grad_sums_in_row_major_order():
    """b/grad of the squeeze-excite broadcast is the float32 sum over H, W
    in row-major order of y (the order is part of the bit-exact contract)."""
    rng = np.random.default_rng(12)
    q_a = rng.integers(-128, 128, (1, 4, 5, 3)).astype(np.int8)
    q_b = rng.integers(-128, 128, (1, 1, 1, 3)).astype(np.int8)
    dy = rng.normal(size=q_a.shape).astype(np.float32)
    q_y = np.zeros(q_a.shape, np.int8)
    _, got_b = K.mul_grad(dy, q_y, q_a, 0.07, 3, q_b, 0.01, -2)
    a = np.float32(0.07) * (q_a.astype(np.int32) - 3).astype(np.float32)
    want = np.zeros(3, np.float32)
    for h, w in np.ndindex(4, 5):
        want = want + dy[0, h, w] * a[0, h, w]  # float32 throughout
    np.testing.assert_array_equal(got_b.reshape(-1), want)


@pytest.mark.parametrize("seed", range(6))
def test_concatenation_grad_matches_tf(seed):
    rng = np.random.default_rng(1200 + seed)
    rank = int(rng.integers(1, 5))
    base = [int(v) for v in rng.integers(1, 5, rank)]
    axis = int(rng.integers(0, rank))
    shapes = []
    for _ in range(int(rng.integers(1, 5))):
        s = list(base)
        s[axis] = int(rng.integers(1, 4))
        shapes.append(s)
    xs = [tf.Variable(rng.normal(size=s)) for s in shapes]
    y_shape = list(base)
    y_shape[axis] = sum(s[axis] for s in shapes)
    dy = rng.normal(size=y_shape).astype(np.float32)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.constant(dy, tf.float64) * tf.concat(xs, axis))
    refs = tape.gradient(loss, xs)
    got = K.concatenation_grad(dy, axis, shapes)
    assert len(got) == len(refs)
    for g, r in zip(got, refs):
        np.testing.assert_array_equal(g, r.numpy().astype(np.float32))


@pytest.mark.parametrize("seed", range(6))
def test_transpose_grad_matches_tf(seed):
    rng = np.random.default_rng(1300 + seed)
    rank = int(rng.integers(1, 7))
    shape = [int(v) for v in rng.integers(1, 5, rank)]
    perm = [int(p) for p in rng.permutation(rank)]
    x = tf.Variable(rng.normal(size=shape))
    y_shape = [shape[p] for p in perm]
    dy = rng.normal(size=y_shape).astype(np.float32)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.constant(dy, tf.float64) * tf.transpose(x, perm))
    ref = tape.gradient(loss, x).numpy()
    np.testing.assert_array_equal(K.transpose_grad(dy, perm), ref.astype(np.float32))


@pytest.mark.parametrize("seed", range(12))
def test_strided_slice_grad_matches_tf(seed):
    """Negative and out-of-range indices, negative strides, begin / end /
    shrink-axis masks: the slice resolves as the forward kernel resolves it
    (ref::ResolveSliceAxis) and as TF does."""
    rng = np.random.default_rng(1400 + seed)
    rank = int(rng.integers(1, 5))
    shape = [int(v) for v in rng.integers(1, 7, rank)]
    begin, end, strides = [], [], []
    masks = [0, 0, 0]  # begin, end, shrink
    for d, n in enumerate(shape):
        strides.append(int(rng.choice([1, 2, 3, -1, -2])))
        begin.append(int(rng.integers(-n - 2, n + 2)))
        end.append(int(rng.integers(-n - 2, n + 2)))
        for m in range(2):
            if rng.random() < 0.25:
                masks[m] |= 1 << d
        if rng.random() < 0.2:  # shrink to one in-range index
            masks[2] |= 1 << d
            begin[-1], strides[-1] = int(rng.integers(-n, n)), 1
            masks[0] &= ~(1 << d)
    x = tf.Variable(rng.normal(size=shape))
    with tf.GradientTape() as tape:
        y = tf.strided_slice(x, begin, end, strides, begin_mask=masks[0],
                             end_mask=masks[1], shrink_axis_mask=masks[2])
        dy = rng.normal(size=y.shape).astype(np.float32)
        loss = tf.reduce_sum(tf.constant(dy, tf.float64) * y)
    ref = tape.gradient(loss, x)
    ref = np.zeros(shape) if ref is None else ref.numpy()
    got = K.strided_slice_grad(dy, begin, end, strides, *masks, shape)
    np.testing.assert_array_equal(got, ref.astype(np.float32))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("shapes", MUL_SHAPES, ids=str)
def test_broadcast_add_grad_matches_tf(shapes, seed):
    """Each ADD operand's gradient: y/grad masked, summed over the elements
    of y that repeat it."""
    rng = np.random.default_rng(1500 + seed + 10 * MUL_SHAPES.index(shapes))
    a, b = (rng.normal(size=s) for s in shapes)
    activation = [NONE, RELU, RELU6, NONE][seed]

    def forward(a, b):
        return a + b

    y_pre, variables, tape = tf_grads(forward, a, b)
    q_y, (lo, hi), mask = quantize_output(y_pre, rng, activation)
    dy = rng.normal(size=y_pre.shape).astype(np.float32)
    with tape:
        loss = tf.reduce_sum(tf.constant(dy * mask) * forward(*variables))
    refs = tape.gradient(loss, variables)
    _, abs_variables, abs_tape = tf_grads(forward, a, b)
    with abs_tape:
        abs_loss = tf.reduce_sum(tf.constant(np.abs(dy) * mask) * forward(*abs_variables))
    mags = abs_tape.gradient(abs_loss, abs_variables)
    for shape, ref, mag in zip(shapes, refs, mags):
        got = K.add_grad_broadcast(dy, q_y, list(shape), lo, hi)
        assert_grad_close(got, ref.numpy(), "x/grad", mag.numpy())
