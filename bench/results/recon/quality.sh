#!/usr/bin/env bash
# Iterative engines on the data of issue 12: `ptycho simulate --n 64 --n-images 1200 --doses 1e3,1e4,1e5`
# with the symmetric probe the issue's data had (--probe-curvature 0), test split (607 patterns), object
# from ones, probe fixed, batch 96, 100 epochs; every reconstruction and the constant object (ones at
# the same positions) scored with `ptycho compare --align register`. Each line: name, amplitude SSIM,
# phase SSIM, amplitude MAE, phase MAE, patterns/s.
# Usage: bench/results/recon/quality.sh WORKDIR  (ptycho on PATH, a release build)
set -euo pipefail
W=${1:?work folder}
mkdir -p "$W" && cd "$W"
[ -d sim ] || ptycho simulate --output sim --n 64 --n-images 1200 --doses 1e3,1e4,1e5 --probe-curvature 0 --device cpu
score() { # recon npz, truth npz, output folder -> "amp_ssim phase_ssim amp_mae phase_mae"
  ptycho compare --recon "$1" --truth "$2" --output-dir "$3" --align register --overwrite > /dev/null
  python3 -c "import json;m=list(json.load(open('$3/metrics.json')).values())[0];a,p=m['amplitude'],m['phase'];print('%.3f %.3f %.4f %.4f'%(a['ssim'],p['ssim'],a['mae'],p['mae']))"
}
for d in 1000 10000 100000; do
  t=sim/dose_$d/patched_test.npz
  python3 - "$t" "const_$d.npz" <<'PY'
import sys, numpy as np
z = np.load(sys.argv[1], allow_pickle=True)
o = np.ones(z['objectGuess'].shape, np.complex64)
np.savez(sys.argv[2], object=o, xcoords=z['xcoords'], ycoords=z['ycoords'])
PY
  echo "dose $d constant $(score const_$d.npz $t cmp_const_$d)"
  while read -r name args; do
    ptycho reconstruct --input $t --output-dir rec_${name}_$d $args --epochs 100 --batch-size 96 --overwrite --device cpu --json > rec_${name}_$d.json
    rate=$(python3 -c "import json;print('%.0f'%json.load(open('rec_${name}_$d.json'))['patterns_per_s'])")
    echo "dose $d $name $(score rec_${name}_$d/reconstruction.npz $t cmp_${name}_$d) $rate"
  done <<'RUNS'
lsqml --algorithm lsqml
epie --algorithm epie
rpie --algorithm rpie
dm --algorithm dm
dm_plain --algorithm dm --fourier-weight 1
raar --algorithm dm --beta 0.9
lsqml_probe --algorithm lsqml --update-probe
dm_probe --algorithm dm --update-probe
RUNS
done
