#!/usr/bin/env bash
# Part of bench/results/layout: the fixed-seed run compared before and after the layout change (issue 17).
# Fixed-seed CLI run for byte-identity checks: $1 = ptycho binary, $2 = output folder.
set -e
B=$1; O=$2; rm -rf $O; mkdir -p $O; cd $O
$B simulate --output sim --n 64 --n-images 120 --doses 1e4 --device cpu > simulate.out 2>simulate.err
$B train --train-data sim/dose_10000/patched_train.npz --test-data sim/dose_10000/patched_test.npz --output-dir run --nepochs 2 --n-filters-scale 1 --device cpu > train.out 2>train.err
$B infer --model-dir run --test-data sim/dose_10000/patched_test.npz --output-dir rec --device cpu > infer.out 2> infer.err
$B compare --recon rec/reconstruction.npz --truth sim/dose_10000/patched_test.npz --output-dir cmp > compare.out 2>compare.err
$B data inspect sim/dose_10000/patched_test.npz > inspect.out 2>&1
find . -type f ! -name '*.err' ! -name '.ptycho.lock' | sort | xargs sha256sum > ../$(basename $O).sums
