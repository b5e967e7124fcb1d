#!/bin/bash
# One experiment of bench/results/quality/README.md: train, infer, compare; appends a line to results.txt.
# usage: exp.sh NAME SIMDIR [train flags...]
P=${PTYCHO:-ptycho}
name=$1; sim=$2; shift 2
d=$sim/dose_${DOSE:-10000}
rm -rf run_$name rec_$name cmp_$name
/usr/bin/time -f "%e s" $P train --train-data $d/patched_train.npz --output-dir run_$name --device cpu "$@" > log_$name.txt 2>&1
$P infer --model-dir run_$name --test-data $d/patched_test.npz --output-dir rec_$name --device cpu >> log_$name.txt 2>&1
$P compare --recon rec_$name/reconstruction.npz --truth $d/patched_test.npz --output-dir cmp_$name >> log_$name.txt 2>&1
python3 -c "
import json;m=json.load(open('cmp_$name/metrics.json'))['reconstruction']
print('$name', 'amp ssim %.3f mae %.4f | phase ssim %.3f mae %.4f'%(m['amplitude']['ssim'],m['amplitude']['mae'],m['phase']['ssim'],m['phase']['mae']))" 2>&1 | tee -a results.txt
