#!/bin/bash
# Infer again from a trained run (e.g. with --no-phase-sync) and compare; appends a line to results.txt.
# usage: reinfer.sh NAME SIMDIR TAG [infer flags]
P=${PTYCHO:-ptycho}
name=$1; sim=$2; tag=$3; shift 3
d=$sim/dose_${DOSE:-10000}
rm -rf rec_${name}_$tag cmp_${name}_$tag
$P infer --model-dir run_$name --test-data $d/patched_test.npz --output-dir rec_${name}_$tag --device cpu "$@" > log_${name}_$tag.txt 2>&1
$P compare --recon rec_${name}_$tag/reconstruction.npz --truth $d/patched_test.npz --output-dir cmp_${name}_$tag >> log_${name}_$tag.txt 2>&1
grep "phase sync" log_${name}_$tag.txt
python3 -c "
import json;m=json.load(open('cmp_${name}_$tag/metrics.json'))['reconstruction']
print('${name}_$tag', 'amp ssim %.3f mae %.4f | phase ssim %.3f mae %.4f'%(m['amplitude']['ssim'],m['amplitude']['mae'],m['phase']['ssim'],m['phase']['mae']))" 2>&1 | tee -a results.txt
