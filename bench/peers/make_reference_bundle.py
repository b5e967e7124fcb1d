"""Write a `wts.h5.zip` in the layout of the reference's TensorFlow ModelManager, and the model's outputs.

The network is the Keras peer (`ptychopinn_keras.py`), saved with Keras's own `model.save`, so
`diffraction_to_obj/model.keras` is a real Keras 3 archive (`config.json`, `model.weights.h5` with the
`layers/<snake_case(class)>_<i>/vars/<k>` groups). Beside it, as the reference writes them
(study-pipeline.md §5.1): `model.h5` holding only the root attribute `intensity_scale`, `params.dill`
(a dill pickle of a params.cfg-style dict holding the probe as a TensorFlow tensor and a
`pathlib.Path`, as the reference's does), `custom_objects.dill`, and `manifest.dill` at the root.
Only `diffraction_to_obj` is written: the importer reads that model alone (the reference's
`autoencoder` shares its layers).

Weights are Glorot-uniform kernels and small random biases, rounded to bfloat16 precision so the
fixture compresses, drawn from --seed. `reference_io.npz` holds inputs in the reference's form and the
Keras model's outputs on them:
    input (B, N, N, C) float32, the network's input X·s; input_positions (B, 1, 2, C) float32;
    trimmed_obj (B, N, N) complex64; obj (B, N, N, C) complex64 (the combined heads, before the merge).

    python bench/peers/make_reference_bundle.py --gridsize 2 --n-filters-scale 1 --probe-big \
        --output tests/fixtures/ptychopinn/gs2_big
"""
import argparse
import os
import pathlib
import tempfile
import zipfile

import dill
import h5py
import numpy as np
import tensorflow as tf
import keras

import ptychopinn_keras as peer


def bfloat16_rounded(a):
    bits = np.ascontiguousarray(a, np.float32).view(np.uint32)
    return ((bits + 0x8000) & 0xFFFF0000).view(np.float32)


def probe_of(n):
    """A Gaussian beam with a quadratic phase, normalised as §3.6 (mean |M·P| = 1/probe_scale)."""
    y, x = np.mgrid[:n, :n] - n / 2
    r2 = (x**2 + y**2) / (n / 6) ** 2
    p = np.exp(-r2) * np.exp(1j * 0.8 * r2)
    disk = (x**2 + y**2) <= (n / 4) ** 2
    p = p / (4.0 * np.mean(np.abs(disk * p)))
    return p.astype(np.complex64)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--output", required=True)
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--gridsize", type=int, default=1)
    ap.add_argument("--n-filters-scale", type=int, default=1)
    ap.add_argument("--probe-big", action="store_true")
    ap.add_argument("--nphotons", type=float, default=1e4)
    ap.add_argument("--batch", type=int, default=3)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    n, gs = args.n, args.gridsize
    c = gs * gs
    cfg = peer.config(n, gs, args.n_filters_scale, args.probe_big)
    intensity_scale = float(np.sqrt(args.nphotons) / (n / 2))
    model = peer.diffraction_to_obj(cfg, np.log(intensity_scale))
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kernel, bias = layer.get_weights()
            limit = np.sqrt(6.0 / (9 * kernel.shape[2] + 9 * kernel.shape[3]))
            kernel = rng.uniform(-limit, limit, kernel.shape)
            bias = rng.uniform(-0.05, 0.05, bias.shape)
            layer.set_weights([bfloat16_rounded(kernel), bfloat16_rounded(bias)])

    # Inputs: far-field amplitudes of the probe on random phase objects, and offsets within ±6 px.
    probe = probe_of(n)
    obj = np.exp(1j * rng.uniform(-0.5, 0.5, (args.batch, c, n, n)))
    far = np.abs(np.fft.fftshift(np.fft.fft2(obj * probe), axes=(-2, -1))) / n
    x = (far / np.sqrt(np.mean(np.sum(far**2, axis=(-2, -1))))) * (n / 2)
    x = x.astype(np.float32)
    offsets = rng.uniform(-6, 6, (args.batch, c, 2)).astype(np.float32)
    offsets -= offsets.mean(axis=1, keepdims=True)
    if gs == 1:
        offsets[:] = 0
    scaled = (np.transpose(x, (0, 2, 3, 1)) * intensity_scale).astype(np.float32)
    positions = np.transpose(offsets, (0, 2, 1))[:, None, :, :].astype(np.float32)
    trimmed = model.predict([scaled, positions], verbose=0)
    heads = keras.Model(model.inputs, model.get_layer("obj").output)
    combined = heads.predict([scaled, positions], verbose=0)

    os.makedirs(args.output, exist_ok=True)
    np.savez(
        os.path.join(args.output, "reference_io.npz"),
        input=scaled,
        input_positions=positions,
        trimmed_obj=trimmed[..., 0].astype(np.complex64),
        obj=combined.astype(np.complex64),
    )
    params = {
        **cfg,
        "probe.mask": False,
        "probe_scale": 4.0,
        "offset": peer.OFFSET,
        "max_position_jitter": peer.MAX_POSITION_JITTER,
        "nphotons": args.nphotons,
        "intensity_scale": intensity_scale,
        "intensity_scale.trainable": True,
        "model_type": "pinn",
        "nepochs": 50,
        "batch_size": 16,
        "output_prefix": pathlib.Path("wts"),
        "label": "",
        "probe": tf.constant(probe[:, :, None]),
        "_version": "1.0",
    }
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = os.path.join(tmp, "diffraction_to_obj")
        os.makedirs(model_dir)
        model.save(os.path.join(model_dir, "model.keras"))
        with h5py.File(os.path.join(model_dir, "model.h5"), "w") as f:
            f.attrs["intensity_scale"] = intensity_scale
        with open(os.path.join(model_dir, "params.dill"), "wb") as f:
            dill.dump(params, f)
        custom = {
            name: getattr(peer, name)
            for name in [
                "IntensityScaler",
                "ActivationLayer",
                "CombineComplexLayer",
                "ReassemblePatchesLayer",
                "PadReconstructionLayer",
                "TrimReconstructionLayer",
            ]
        }
        with open(os.path.join(model_dir, "custom_objects.dill"), "wb") as f:
            dill.dump(custom, f)
        with open(os.path.join(tmp, "manifest.dill"), "wb") as f:
            dill.dump({"models": ["diffraction_to_obj"], "version": "1.0"}, f)
        with zipfile.ZipFile(
            os.path.join(args.output, "wts.h5.zip"), "w", zipfile.ZIP_DEFLATED
        ) as z:
            for root, _, files in os.walk(tmp):
                for name in sorted(files):
                    path = os.path.join(root, name)
                    z.write(path, os.path.relpath(path, tmp))
    print(f"wrote {args.output}/wts.h5.zip and reference_io.npz")


if __name__ == "__main__":
    main()
