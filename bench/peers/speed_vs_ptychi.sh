#!/usr/bin/env bash
# Seconds per LSQML epoch, ours (CPU backend) and pty-chi's (torch on the CPU), one after the other on
# the same test split, 100 epochs each, batch 96, 2 threads each, then both reconstructions scored.
# Usage: bench/peers/speed_vs_ptychi.sh SIM_DIR DOSE OUT_DIR PYTHON_WITH_PTYCHI  (ptycho on PATH)
set -euo pipefail
SIM=$1; D=$2; OUT=$3; PY=$4
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"
T=$SIM/dose_$D/patched_test.npz
RAYON_NUM_THREADS=2 ptycho reconstruct --input "$T" --output-dir "$OUT/ours_$D" --epochs 100 --overwrite --device cpu --json > "$OUT/ours_$D.json"
"$PY" "$HERE/ptychi_lsqml.py" --input "$T" --output "$OUT/ptychi_$D.npz" --epochs 100 --threads 2 2>/dev/null | tail -1 > "$OUT/ptychi_$D.json"
for who in ours ptychi; do
  recon=$OUT/ours_$D/reconstruction.npz; [ $who = ptychi ] && recon=$OUT/ptychi_$D.npz
  ptycho compare --recon "$recon" --truth "$T" --output-dir "$OUT/cmp_${who}_$D" --align register --overwrite 2>&1 | grep SSIM
done
python3 - "$OUT/ours_$D.json" "$OUT/ptychi_$D.json" <<'PY'
import json, sys
ours, peer = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
epoch_ours = 100 * ours["patterns"] / ours["patterns_per_s"] / 100
print(f"ours {ours['patterns_per_s']:.0f} patterns/s ({epoch_ours:.3f} s/epoch); "
      f"pty-chi {peer['patterns_per_s']:.0f} patterns/s ({peer['seconds_per_epoch']:.3f} s/epoch); "
      f"ours / pty-chi speed: {ours['patterns_per_s'] / peer['patterns_per_s']:.2f}x")
PY
