#!/bin/bash
# The supervised baseline arm (truth labels) on the defaults' data at every dose: train split, then
# infer and score the test split (n_filters_scale 1, 10 epochs, as the first session's baseline rows).
# usage: baseline.sh (in the folder of defaults.sh, after it)

C=${PTYCHO:-ptycho}
for d in 1000 10000 100000; do
  rm -rf runB_$d recB_$d cmpB_$d
  $C train --model baseline --train-data simF/dose_$d/patched_train.npz --output-dir runB_$d --n-filters-scale 1 --nepochs 10 --device cpu > logB_$d.txt 2>&1
  $C infer --model-dir runB_$d --test-data simF/dose_$d/patched_test.npz --output-dir recB_$d --device cpu >> logB_$d.txt 2>&1
  $C compare --recon recB_$d/reconstruction.npz --truth simF/dose_$d/patched_test.npz --output-dir cmpB_$d >> logB_$d.txt 2>&1
  python3 -c "
import json;m=json.load(open('cmpB_$d/metrics.json'))['reconstruction']
print('B_$d', 'amp ssim %.3f mae %.4f | phase ssim %.3f mae %.4f'%(m['amplitude']['ssim'],m['amplitude']['mae'],m['phase']['ssim'],m['phase']['mae']))" | tee -a results.txt
done
