#!/bin/bash
# Score every reconstruction again with the compare that places stitched images by their positions.
P=${PTYCHO:-ptycho}
for r in rec_*; do
  name=${r#rec_}
  case $name in
    c0_L*) sim=simL0;; c3_L*) sim=simL3;; c0_*) sim=sim0;; c3_*) sim=sim3;; constL) sim=simL3;; const) sim=sim0;; *) continue;;
  esac
  case $name in
    c0_d1000|c0_d1000_plain) sim=simD0; d=1000;; c0_d100000*) sim=simD0; d=100000;;
    c3_d1000|c3_d1000_plain) sim=simD3; d=1000;; c3_d100000*) sim=simD3; d=100000;;
    c3_L_d1000*) sim=simL3; d=1000;;
    *) d=10000;;
  esac
  [ -f $sim/dose_$d/patched_test.npz ] || { echo "$name: no $sim/dose_$d"; continue; }
  rm -rf rescored/$name
  $P compare --recon $r/reconstruction.npz --truth $sim/dose_$d/patched_test.npz --output-dir rescored/$name > /dev/null 2>&1
  python3 -c "
import json;m=json.load(open('rescored/$name/metrics.json'))['reconstruction']
print('$name', 'amp ssim %.3f mae %.4f | phase ssim %.3f mae %.4f'%(m['amplitude']['ssim'],m['amplitude']['mae'],m['phase']['ssim'],m['phase']['mae']))"
done
