#!/bin/bash
# The gridsize-2 PINN arm (the overlap constraint inside groups of four) on the defaults' data at
# every dose: whole scan without labels, n_filters_scale 1, 10 epochs (for time); infer and score.
C=${PTYCHO:-ptycho}
for d in 10000 1000 100000; do
  rm -rf runG_$d recG_$d cmpG_$d
  $C train --gridsize 2 --train-data "simF/dose_$d/patched_*.npz" --output-dir runG_$d --n-filters-scale 1 --nepochs 10 --device cpu > logG_$d.txt 2>&1
  $C infer --model-dir runG_$d --test-data simF/dose_$d/patched_test.npz --output-dir recG_$d --device cpu >> logG_$d.txt 2>&1
  $C compare --recon recG_$d/reconstruction.npz --truth simF/dose_$d/patched_test.npz --output-dir cmpG_$d >> logG_$d.txt 2>&1
  python3 -c "
import json;m=json.load(open('cmpG_$d/metrics.json'))['reconstruction']
print('G_$d', 'amp ssim %.3f mae %.4f | phase ssim %.3f mae %.4f'%(m['amplitude']['ssim'],m['amplitude']['mae'],m['phase']['ssim'],m['phase']['mae']))" | tee -a results.txt
done
