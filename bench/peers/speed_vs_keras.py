"""CPU speed, side by side in one sitting: the Keras peer (keras_speed.py) and `ptycho bench train` /
`ptycho bench infer` on the CPU backend, alternately, on the same shapes (N = 64, n_filters_scale 2,
batch 16; inference over 607 groups in batches of 32). Prints each run and the median ratios.

    cargo build --release && python bench/peers/speed_vs_keras.py --rounds 3
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PTYCHO = os.path.join(HERE, "..", "..", "target", "release", "ptycho")


def run(cmd, cwd=None):
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout[out.stdout.index("{") :])


def keras(args, gridsize, infer):
    cmd = [sys.executable, "keras_speed.py", "--gridsize", str(gridsize), "--batch-size", "16"]
    cmd += ["--steps", str(args.steps), "--patterns", "607" if infer else "0"]
    return run(cmd, cwd=HERE)


def ours_train(args, gridsize):
    cmd = [PTYCHO, "bench", "train", "--device", "cpu", "--quick", "--json", "--gridsize"]
    cmd += [str(gridsize), "--batch-size", "16", "--steps", str(args.steps)]
    return run(cmd)["samples_per_s"]


def ours_infer():
    return run([PTYCHO, "bench", "infer", "--device", "cpu", "--json"])["patterns_per_s"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=5)
    args = ap.parse_args()
    rows = {k: ([], []) for k in ["train gridsize 1", "train gridsize 2", "infer gridsize 1"]}
    for r in range(args.rounds):
        k1 = keras(args, 1, infer=True)
        rows["train gridsize 1"][0].append(k1["train_samples_per_s"])
        rows["infer gridsize 1"][0].append(k1["infer_patterns_per_s"])
        rows["train gridsize 1"][1].append(ours_train(args, 1))
        rows["infer gridsize 1"][1].append(ours_infer())
        rows["train gridsize 2"][0].append(keras(args, 2, infer=False)["train_samples_per_s"])
        rows["train gridsize 2"][1].append(ours_train(args, 2))
        print(f"round {r + 1}: " + json.dumps({k: [v[0][-1], v[1][-1]] for k, v in rows.items()}))
    print(f"\npeer: {k1['peer']}, {k1['threads']} threads; medians of {args.rounds} rounds")
    print(f"{'workload':<18} {'Keras peer':>12} {'ptycho CPU':>12} {'ours/peer':>10}")
    for k, (peer, ours) in rows.items():
        unit = "groups/s" if "gridsize 2" in k else ("patterns/s" if "infer" in k else "samples/s")
        p, o = statistics.median(peer), statistics.median(ours)
        print(f"{k:<18} {p:>8.1f} {unit:<3} {o:>8.1f} {unit:<3} {o / p:>8.2f}")


if __name__ == "__main__":
    main()
