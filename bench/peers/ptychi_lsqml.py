"""pty-chi's LSQML on a `ptycho simulate` test split, as the peer of `ptycho reconstruct`.

The same problem as ours: intensities = diffraction² (|FFT(P·O)|²/N², zero frequency at the
centre), the file's probeGuess held fixed, the object from ones on the objectGuess frame, positions
relative to the object's centre, Gaussian (or, with --noise poisson, Poisson) noise model, batch 96. Writes an NPZ that `ptycho compare`
reads (`object`, `xcoords`, `ycoords`) and prints seconds per epoch (task.run() only, after setup).

    python bench/peers/ptychi_lsqml.py --input sim/dose_10000/patched_test.npz --output peer.npz
"""
import argparse
import json
import time

import numpy as np
import torch

import ptychi.api as api
from ptychi.api.task import PtychographyTask


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=96)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--noise", choices=["gaussian", "poisson"], default="gaussian")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_default_device("cpu")

    z = np.load(args.input, allow_pickle=True)
    key = "diffraction" if "diffraction" in z else "diff3d"
    amplitude = z[key].astype(np.float32)
    probe = z["probeGuess"].astype(np.complex64)
    h, w = z["objectGuess"].shape
    x, y = z["xcoords"].astype(np.float64), z["ycoords"].astype(np.float64)

    options = api.LSQMLOptions()
    options.data_options.data = torch.tensor(amplitude**2)
    options.object_options.initial_guess = torch.ones([1, h, w], dtype=torch.complex64)
    options.object_options.pixel_size_m = 1.0
    options.object_options.optimizable = True
    options.object_options.optimizer = api.Optimizers.SGD
    options.object_options.step_size = 1
    options.probe_options.initial_guess = torch.tensor(probe)[None, None]
    options.probe_options.optimizable = False
    options.probe_position_options.position_x_px = torch.tensor(x - w / 2)
    options.probe_position_options.position_y_px = torch.tensor(y - h / 2)
    options.probe_position_options.optimizable = False
    options.reconstructor_options.batch_size = args.batch_size
    options.reconstructor_options.noise_model = (
        api.NoiseModels.GAUSSIAN if args.noise == "gaussian" else api.NoiseModels.POISSON
    )
    options.reconstructor_options.num_epochs = args.epochs

    task = PtychographyTask(options)
    start = time.perf_counter()
    task.run()
    seconds = time.perf_counter() - start
    obj = task.get_data_to_cpu("object", as_numpy=True)[0]
    np.savez(args.output, object=obj.astype(np.complex64), xcoords=x, ycoords=y)
    print(json.dumps({
        "peer": "pty-chi LSQML",
        "patterns": int(amplitude.shape[0]),
        "epochs": args.epochs,
        "threads": args.threads,
        "seconds": seconds,
        "seconds_per_epoch": seconds / args.epochs,
        "patterns_per_s": amplitude.shape[0] * args.epochs / seconds,
    }))


if __name__ == "__main__":
    main()
