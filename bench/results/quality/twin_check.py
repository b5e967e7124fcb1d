"""The twin-image ambiguity of single-pattern data (bench/results/quality/README.md).

For each simulated dataset given, take the ground-truth patch O at every scan position and its twin
O'(r) = conj(O(-r)) * conj(P(-r)) / P(r) where |P| > 1e-3 max|P| (the object that, under the same
probe, gives the far field of the point-reflected, conjugated exit wave), and report
  - max relative difference of |FFT(P*O)| and |FFT(P*O')|: 0 means one pattern cannot tell them apart;
  - the largest phase step of O' between neighbouring pixels, which a network must draw to use it.
Usage: python3 twin_check.py DATASET.npz [...]
"""
import sys

import numpy as np
from scipy.ndimage import map_coordinates

for path in sys.argv[1:]:
    d = np.load(path)
    P = d["probeGuess"].astype(np.complex128)
    O = d["objectGuess"].astype(np.complex128)
    x, y = d["xcoords"], d["ycoords"]
    n = P.shape[0]
    flip = lambda a: a[::-1, ::-1]  # r -> -r about the centre (n-1)/2, where the probe is symmetric
    inside = np.abs(P) > 1e-3 * np.abs(P).max()
    worst, steps = 0.0, []
    for i in range(0, len(x), 10):
        r = np.arange(n) - n / 2
        yy, xx = np.meshgrid(y[i] + r, x[i] + r, indexing="ij")
        o = map_coordinates(O.real, [yy, xx], order=1) + 1j * map_coordinates(O.imag, [yy, xx], order=1)
        twin = np.where(inside, np.conj(flip(o)) * np.conj(flip(P)) / np.where(inside, P, 1), 0)
        a = np.abs(np.fft.fft2(P * o))
        b = np.abs(np.fft.fft2(P * twin))
        worst = max(worst, np.abs(a - b).max() / a.max())
        ph = np.angle(twin)
        step = np.abs(np.angle(np.exp(1j * np.diff(ph, axis=1))))[inside[:, 1:] & inside[:, :-1]]
        steps.append(step.max())
    print(f"{path}: probe Hermitian-symmetric error {np.abs(P - np.conj(flip(P))).max() / np.abs(P).max():.2e}, "
          f"max |FFT| difference truth vs twin {worst:.2e}, twin's largest phase step {np.max(steps):.2f} rad")
