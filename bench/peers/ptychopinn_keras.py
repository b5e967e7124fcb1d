"""The reference PtychoPINN network, built in Keras 3 from ../shared/spec/physics-and-model.md, as a peer.

Built from the spec's layer table (§6) and forward model (§4, §5.2) in the reference's construction
order, so that a saved `model.keras` has the reference's layer classes, layer order and weight file
layout (`layers/conv2d`, `layers/conv2d_1`, ... in `model.layers` order). The custom layers carry the
reference's class and layer names (IntensityScaler `intensity_scaler`, ActivationLayer `amp`/`phi`,
CombineComplexLayer `obj`, ReassemblePatchesLayer / PadReconstructionLayer `padded_obj_2`,
TrimReconstructionLayer `trimmed_obj`); their bodies follow the spec's formulas.

`autoencoder` adds the training model's physics (§4 steps 5–10: extraction, probe, far field, the
intensity scale, the square) and its compile (Adam 1e-3, Poisson NLL on the intensity with weight 1,
MAE on the amplitude with weight 0, as the reference's loss weights).

Used by `make_reference_bundle.py` (a `wts.h5.zip` in the reference's layout, for `ptycho import-bundle`)
and by `keras_speed.py`, the CPU-speed peer benchmark.
"""
import math

import numpy as np
import tensorflow as tf
import keras
from keras import layers

# The reference's canvas constants (physics-and-model.md §1): P = N + (gridsize − 1)·offset + jitter.
OFFSET = 4
MAX_POSITION_JITTER = 10
COUNT_EPSILON = 0.001
RING_CHANNELS = 4


def config(n, gridsize, n_filters_scale, probe_big):
    """The params.cfg keys the network reads (object.big, pad_object and the sigmoid head on)."""
    return {
        "N": n,
        "gridsize": gridsize,
        "n_filters_scale": n_filters_scale,
        "probe.big": probe_big,
        "object.big": True,
        "pad_object": True,
        "amp_activation": "sigmoid",
    }


def canvas_size(n, gridsize):
    return n + (gridsize - 1) * OFFSET + MAX_POSITION_JITTER


def centre_mask(n):
    m = np.zeros((n, n), np.float32)
    m[n // 4 : 3 * n // 4, n // 4 : 3 * n // 4] = 1.0
    return m


def translate(images, shifts):
    """T_t of §4.1: bilinear, zero fill; images (K, H, W, 1) float32, shifts (K, 2) as (t_x, t_y)."""
    k = tf.shape(images)[0]
    ones = tf.ones((k,), tf.float32)
    zeros = tf.zeros((k,), tf.float32)
    transforms = tf.stack(
        [ones, zeros, -shifts[:, 0], zeros, ones, -shifts[:, 1], zeros, zeros], axis=1
    )
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=transforms,
        output_shape=tf.shape(images)[1:3],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )
    out.set_shape(images.shape)
    return out


def pad_to(x, p):
    n = x.shape[1]
    m = (p - n) // 2
    return tf.pad(x, [[0, 0], [m, m], [m, m], [0, 0]])


def crop_to(x, n):
    m = (x.shape[1] - n) // 2
    return x[:, m : m + n, m : m + n, :]


@keras.saving.register_keras_serializable(package="ptycho_peer")
class IntensityScaler(layers.Layer):
    """x / exp(log_scale); log_scale is a plain tf.Variable, so it is not a saved Keras weight."""

    def __init__(self, log_scale=0.0, **kwargs):
        super().__init__(**kwargs)
        self.log_scale_value = float(log_scale)
        self.log_scale = tf.Variable(self.log_scale_value, trainable=False)

    def call(self, inputs):
        (x,) = inputs
        return x / tf.math.exp(self.log_scale)

    def get_config(self):
        return {**super().get_config(), "log_scale": self.log_scale_value}


@keras.saving.register_keras_serializable(package="ptycho_peer")
class ActivationLayer(layers.Layer):
    def __init__(self, activation_name="sigmoid", scale=1.0, **kwargs):
        super().__init__(**kwargs)
        self.activation_name = activation_name
        self.scale = scale

    def call(self, x):
        f = {
            "sigmoid": tf.math.sigmoid,
            "tanh": tf.math.tanh,
            "swish": tf.nn.silu,
            "softplus": tf.math.softplus,
            "relu": tf.nn.relu,
        }[self.activation_name]
        return self.scale * f(x)

    def get_config(self):
        return {
            **super().get_config(),
            "activation_name": self.activation_name,
            "scale": self.scale,
        }


@keras.saving.register_keras_serializable(package="ptycho_peer")
class CombineComplexLayer(layers.Layer):
    """O = A cos φ + i A sin φ (§6.6)."""

    def call(self, inputs):
        amp, phi = inputs
        return tf.complex(amp * tf.math.cos(phi), amp * tf.math.sin(phi))


@keras.saving.register_keras_serializable(package="ptycho_peer")
class ReassemblePatchesLayer(layers.Layer):
    """The per-sample merge of §5.2: canvas = Σ_c T_{−rel_c}(pad(O_c)) / (Σ_c T_{−rel_c}(pad(Mc)) + 0.001).

    Per sample for every batch size (the spec's recommendation; the reference collapses the batch when
    B·C ≥ 64, so compare at B·C < 64).
    """

    def __init__(self, padded_size, N, gridsize, **kwargs):
        super().__init__(**kwargs)
        self.padded_size, self.N, self.gridsize = padded_size, N, gridsize

    def call(self, inputs):
        obj, positions = inputs  # (B, N, N, C) complex64, (B, 1, 2, C)
        p, n, c = self.padded_size, self.N, self.gridsize**2
        b = tf.shape(obj)[0]
        shifts = -tf.reshape(tf.transpose(positions[:, 0, :, :], [0, 2, 1]), [-1, 2])
        flat = tf.reshape(tf.transpose(obj, [0, 3, 1, 2]), [-1, n, n, 1])
        mask = tf.tile(centre_mask(n)[None, :, :, None], [b * c, 1, 1, 1])

        def placed(x):
            moved = translate(pad_to(x, p), shifts)
            return tf.reduce_sum(tf.reshape(moved, [b, c, p, p]), axis=1)[..., None]

        count = placed(mask) + COUNT_EPSILON
        re = placed(tf.math.real(flat)) / count
        im = placed(tf.math.imag(flat)) / count
        return tf.complex(re, im)

    def get_config(self):
        return {
            **super().get_config(),
            "padded_size": self.padded_size,
            "N": self.N,
            "gridsize": self.gridsize,
        }


@keras.saving.register_keras_serializable(package="ptycho_peer")
class PadReconstructionLayer(layers.Layer):
    """object.big = False: the single patch zero-padded to P (§4 step 3b)."""

    def __init__(self, padded_size, **kwargs):
        super().__init__(**kwargs)
        self.padded_size = padded_size

    def call(self, obj):
        return tf.complex(
            pad_to(tf.math.real(obj), self.padded_size),
            pad_to(tf.math.imag(obj), self.padded_size),
        )

    def get_config(self):
        return {**super().get_config(), "padded_size": self.padded_size}


@keras.saving.register_keras_serializable(package="ptycho_peer")
class TrimReconstructionLayer(layers.Layer):
    def __init__(self, output_size, **kwargs):
        super().__init__(**kwargs)
        self.output_size = output_size

    def call(self, x):
        return crop_to(x, self.output_size)

    def get_config(self):
        return {**super().get_config(), "output_size": self.output_size}


@keras.saving.register_keras_serializable(package="ptycho_peer")
class IntensityScaler_inv(IntensityScaler):
    """exp(log_scale) · x."""

    def call(self, inputs):
        (x,) = inputs
        return tf.math.exp(self.log_scale) * x


@keras.saving.register_keras_serializable(package="ptycho_peer")
class ExtractPatchesPositionLayer(layers.Layer):
    """§5.3: per channel, the canvas translated by +rel_c and cropped to N; (B·C, N, N, 1)."""

    def __init__(self, N, gridsize, **kwargs):
        super().__init__(**kwargs)
        self.N, self.gridsize = N, gridsize

    def call(self, inputs):
        canvas, positions = inputs
        c = self.gridsize**2
        shifts = tf.reshape(tf.transpose(positions[:, 0, :, :], [0, 2, 1]), [-1, 2])
        tiled = tf.repeat(canvas, c, axis=0)
        re = translate(tf.math.real(tiled), shifts)
        im = translate(tf.math.imag(tiled), shifts)
        return crop_to(tf.complex(re, im), self.N)

    def get_config(self):
        return {**super().get_config(), "N": self.N, "gridsize": self.gridsize}


@keras.saving.register_keras_serializable(package="ptycho_peer")
class ProbeIllumination(layers.Layer):
    """ψ = P ⊙ patch, the probe a constant (the reference's probe is not a trained weight)."""

    def __init__(self, probe=None, **kwargs):
        super().__init__(**kwargs)
        self.probe = tf.constant(np.asarray(probe, np.complex64)[None, :, :, None])

    def call(self, x):
        return x * self.probe


@keras.saving.register_keras_serializable(package="ptycho_peer")
class PadAndDiffractLayer(layers.Layer):
    """§4.3: A = sqrt(fftshift(|FFT2 ψ|² / N²)), (B·C, N, N, 1)."""

    def call(self, psi):
        n = psi.shape[1]
        f = tf.signal.fft2d(psi[..., 0])
        intensity = tf.math.real(f * tf.math.conj(f)) / float(n * n)
        return tf.sqrt(tf.signal.fftshift(intensity, axes=(1, 2)))[..., None]


@keras.saving.register_keras_serializable(package="ptycho_peer")
class FlatToChannelLayer(layers.Layer):
    """(B·C, N, N, 1) → (B, N, N, C)."""

    def __init__(self, N, gridsize, **kwargs):
        super().__init__(**kwargs)
        self.N, self.gridsize = N, gridsize

    def call(self, x):
        c = self.gridsize**2
        x = tf.reshape(x, [-1, c, self.N, self.N])
        return tf.transpose(x, [0, 2, 3, 1])

    def get_config(self):
        return {**super().get_config(), "N": self.N, "gridsize": self.gridsize}


@keras.saving.register_keras_serializable(package="ptycho_peer")
class SquareLayer(layers.Layer):
    def call(self, x):
        return tf.square(x)


def negloglik(y_true, y_pred):
    """Poisson NLL without the constant term: pred − true · log(pred) (§7)."""
    return tf.nn.log_poisson_loss(y_true, tf.math.log(y_pred), compute_full_loss=False)


def conv(filters, activation=None):
    return layers.Conv2D(filters, (3, 3), padding="same", activation=activation)


def conv_pool(x, filters):
    x = conv(filters, "relu")(x)
    x = conv(filters, "relu")(x)
    return layers.MaxPool2D((2, 2), padding="same")(x)


def conv_up(x, filters):
    x = conv(filters, "relu")(x)
    x = conv(filters, "relu")(x)
    return layers.UpSampling2D((2, 2))(x)


ENCODER = {64: [32, 64, 128], 128: [16, 32, 64, 128], 256: [8, 16, 32, 64, 128]}
DECODER = {64: [64, 32], 128: [128, 64, 32], 256: [256, 128, 64, 32]}


def decoder(encoded, head, cfg):
    """One head (§6.3): the Conv_Up ladder, the centre conv on all but the last 4 channels, padded by
    N/4, plus with probe.big the ring branch on the last 4 channels, masked to the border."""
    n, nfs = cfg["N"], cfg["n_filters_scale"]
    f = cfg["gridsize"] ** 2 if cfg["object.big"] else 1
    # The reference creates the two head convolutions before the ladder.
    conv1, conv2 = conv(f), conv(f)
    if head == "amp":
        act = ActivationLayer(activation_name=cfg["amp_activation"], name="amp")
    else:
        act = ActivationLayer(activation_name="tanh", scale=math.pi, name="phi")
    x = encoded
    for filters in DECODER[n]:
        x = conv_up(x, nfs * filters)
    centre = act(conv1(x[..., :-RING_CHANNELS]))
    centre = layers.ZeroPadding2D((n // 4, n // 4), name=head + "_padded")(centre)
    if not cfg["probe.big"]:
        return centre
    ring = conv_up(x[..., -RING_CHANNELS:], nfs * (2048 // n))
    ring = keras.activations.swish(conv2(ring))
    border = (1.0 - centre_mask(n))[None, :, :, None]
    return centre + ring * border


def diffraction_to_obj(cfg, log_scale):
    """The reference's inference model: [input (B,N,N,C), input_positions (B,1,2,C)] → trimmed_obj."""
    n, c = cfg["N"], cfg["gridsize"] ** 2
    p = canvas_size(n, cfg["gridsize"])
    if not cfg.get("pad_object", True):
        raise ValueError("the peer builds the pad_object = True heads only")
    input_img = keras.Input(shape=(n, n, c), name="input")
    input_positions = keras.Input(shape=(1, 2, c), name="input_positions")
    x = IntensityScaler(log_scale=log_scale, name="intensity_scaler")([input_img])
    for filters in ENCODER[n]:
        x = conv_pool(x, cfg["n_filters_scale"] * filters)
    amp = decoder(x, "amp", cfg)
    phi = decoder(x, "phase", cfg)
    obj = CombineComplexLayer(name="obj")([amp, phi])
    if cfg["object.big"]:
        canvas = ReassemblePatchesLayer(
            padded_size=p, N=n, gridsize=cfg["gridsize"], name="padded_obj_2"
        )([obj, input_positions])
    else:
        canvas = PadReconstructionLayer(padded_size=p, name="padded_obj_2")(obj)
    trimmed = TrimReconstructionLayer(output_size=n, name="trimmed_obj")(canvas)
    return keras.Model(inputs=[input_img, input_positions], outputs=[trimmed])


def autoencoder(cfg, log_scale, probe):
    """The reference's training model: [input, input_positions] → [trimmed_obj, Â, Î], compiled."""
    to_obj = diffraction_to_obj(cfg, log_scale)
    n, gs = cfg["N"], cfg["gridsize"]
    input_img, input_positions = to_obj.inputs
    canvas = to_obj.get_layer("padded_obj_2").output
    trimmed = to_obj.outputs[0]
    patches = ExtractPatchesPositionLayer(N=n, gridsize=gs, name="padded_objs_with_offsets")(
        [canvas, input_positions]
    )
    psi = ProbeIllumination(probe=probe, name="probe_illumination")(patches)
    amplitude = PadAndDiffractLayer(name="pred_amplitude")(psi)
    amplitude = FlatToChannelLayer(N=n, gridsize=gs, name="pred_diff_channels")(amplitude)
    scaled = IntensityScaler_inv(log_scale=log_scale, name="intensity_scaler_inv")([amplitude])
    intensity = SquareLayer(name="pred_intensity")(scaled)
    model = keras.Model([input_img, input_positions], [trimmed, scaled, intensity])
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=0.001),
        loss=[None, "mean_absolute_error", negloglik],
        loss_weights=[0.0, 0.0, 1.0],
    )
    return model
