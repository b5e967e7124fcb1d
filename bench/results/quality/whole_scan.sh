#!/bin/bash
# Second session, on the data of sim3 (the command with --probe-curvature 3, now the default):
# A trains without labels on the whole scan (train + test files); B fine-tunes the train-split model
# of c3_e60 on the test scan. Each then infers and scores the test split (reinfer.sh).
# usage: whole_scan.sh (in the folder of exp.sh's runs)
P=${PTYCHO:-ptycho}

# A: whole scan, defocused probe
rm -rf run_c3_all
/usr/bin/time -f "%e s" $P train --train-data 'sim3/dose_10000/patched_*.npz' --output-dir run_c3_all --n-filters-scale 1 --nepochs 60 --nphotons 1e4 --device cpu > log_c3_all.txt 2>&1
./reinfer.sh c3_all sim3 sync
# B: fine-tune the train-split model on the test scan
rm -rf run_c3_fit; cp -r run_c3_e60 run_c3_fit
/usr/bin/time -f "%e s" $P train --train-data sim3/dose_10000/patched_test.npz --resume run_c3_fit --output-dir run_c3_fit --n-filters-scale 1 --nepochs 80 --nphotons 1e4 --device cpu > log_c3_fit.txt 2>&1
./reinfer.sh c3_fit sim3 sync
