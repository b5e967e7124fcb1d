"""Training and inference speed of the Keras peer (the reference network and physics, built from the spec).

The same shapes and normalisation as `ptycho bench train` / `ptycho bench infer`: N = 64, synthetic
diffraction X with mean Σ X² = (N/2)², intensity scale s = 100, gridsize 2 offsets (0, ±4) and (±4, 0).
Training: `train_on_batch` of the compiled autoencoder (Adam, Poisson NLL), after two untimed steps.
Inference: `predict` of diffraction_to_obj on --patterns samples at Keras's default batch 32, after one
untimed call. Prints one JSON line.

    python bench/peers/keras_speed.py --gridsize 1 --batch-size 16 --steps 10
"""
import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import tensorflow as tf

import ptychopinn_keras as peer


def synthetic(samples, c, n, seed=11):
    rng = np.random.default_rng(seed)
    half = n / 2
    y, x = np.mgrid[:n, :n]
    d2 = ((y - half) ** 2 + (x - half) ** 2) / n
    data = np.exp(-d2)[None, None] + 0.05 * (1 + rng.uniform(-1, 1, (samples, c, n, n)))
    data *= np.sqrt(half**2 / np.mean(np.sum(data**2, axis=(-2, -1))))
    offsets = np.array([[0, 4], [0, -4], [4, 0], [-4, 0]], np.float32)
    rel = np.zeros((samples, c, 2), np.float32) if c == 1 else np.tile(offsets, (samples, 1, 1))
    return data.astype(np.float32), rel


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gridsize", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--n-filters-scale", type=int, default=2)
    ap.add_argument("--probe-big", action="store_true")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--patterns", type=int, default=607, help="inference samples (0: skip)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    n, s = 64, 100.0
    c = args.gridsize**2
    cfg = peer.config(n, args.gridsize, args.n_filters_scale, args.probe_big)
    yy, xx = np.mgrid[:n, :n] - n / 2
    probe = np.exp(-(xx**2 + yy**2) / (2 * (0.7 * n / 4) ** 2)).astype(np.complex64)
    model = peer.autoencoder(cfg, np.log(s), probe)

    x, rel = synthetic(args.batch_size, c, n)
    inputs = [np.transpose(x, (0, 2, 3, 1)) * s, np.transpose(rel, (0, 2, 1))[:, None]]
    amplitude = inputs[0]
    targets = [np.zeros((args.batch_size, n, n, 1), np.complex64), amplitude, amplitude**2]
    for _ in range(2):
        model.train_on_batch(inputs, targets)
    start = time.perf_counter()
    for _ in range(args.steps):
        model.train_on_batch(inputs, targets)
    step_s = (time.perf_counter() - start) / args.steps
    report = {
        "peer": f"keras {tf.keras.__version__} / tensorflow {tf.__version__}",
        "gridsize": args.gridsize,
        "n_filters_scale": args.n_filters_scale,
        "probe_big": args.probe_big,
        "batch_size": args.batch_size,
        "threads": args.threads,
        "train_step_ms": 1e3 * step_s,
        "train_samples_per_s": args.batch_size / step_s,
    }
    if args.patterns:
        to_obj = tf.keras.Model(model.inputs, model.outputs[0])
        x, rel = synthetic(args.patterns, c, n, seed=5)
        inputs = [np.transpose(x, (0, 2, 3, 1)) * s, np.transpose(rel, (0, 2, 1))[:, None]]
        to_obj.predict(inputs, batch_size=32, verbose=0)
        start = time.perf_counter()
        to_obj.predict(inputs, batch_size=32, verbose=0)
        infer_s = time.perf_counter() - start
        report["infer_patterns"] = args.patterns * c
        report["infer_patterns_per_s"] = args.patterns * c / infer_s
    print(json.dumps(report))


if __name__ == "__main__":
    main()
