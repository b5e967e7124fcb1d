#!/bin/bash
# Second session: the issue's data as `ptycho simulate` now makes it by default (defocused probe), and
# the PINN trained without labels on the whole scan (train + test files), every other setting the
# default (n_filters_scale 2, 50 epochs, every pattern, batch 16, nphotons from the data); then infer and
# score the test split. Dose 1e5 ran at n_filters_scale 1, 40 epochs, for time.
# usage: defaults.sh (in a scratch folder; `ptycho` on PATH)
set -e
ptycho simulate --output simF --n 64 --n-images 1200 --doses 1e3,1e4,1e5 --device cpu
run() {  # NAME DOSE [train flags]
  name=$1; d=$2; shift 2
  ptycho train --train-data "simF/dose_$d/patched_*.npz" --output-dir run$name --device cpu "$@" > log$name.txt 2>&1
  ptycho infer --model-dir run$name --test-data simF/dose_$d/patched_test.npz --output-dir rec$name --device cpu >> log$name.txt 2>&1
  ptycho compare --recon rec$name/reconstruction.npz --truth simF/dose_$d/patched_test.npz --output-dir cmp$name >> log$name.txt 2>&1
}
run F_10000 10000
run F_1000 1000
run A_100000 100000 --n-filters-scale 1 --nepochs 40
