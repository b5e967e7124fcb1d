"""Poisson NLL (mean of I - Y log I, as ptycho train reports it) of a dataset at the truth pushed through
the model, at a constant object, and at I = Y. Usage: python3 truthloss.py DATASET.npz NPHOTONS"""
import numpy as np, sys
d = np.load(sys.argv[1])
print(list(d.keys()))
diff = d['diffraction'].astype(np.float64); P = d['probeGuess']; O = d['objectGuess']
x = d['xcoords']; y = d['ycoords']; N = diff.shape[1]
alpha = np.sqrt((N/2)**2 / np.mean(np.sum(diff**2, axis=(1,2))))
print('alpha', alpha, 'M', len(x), 'obj', O.shape, '|P|^2 sum', np.sum(abs(P)**2), 'mean|MP|', np.mean(abs(P)))
from scipy.ndimage import map_coordinates
s = np.sqrt(float(sys.argv[2]))/(N/2)
def patch(xc, yc):
    r = np.arange(N) - N//2
    yy, xx = np.meshgrid(yc + r, xc + r, indexing='ij')
    re = map_coordinates(O.real, [yy, xx], order=1); im = map_coordinates(O.imag, [yy, xx], order=1)
    return re + 1j*im
def loss(pred, tgt):  # mean(I - Y log I)
    I = pred**2; Y = tgt**2
    return np.mean(I - Y*np.log(np.maximum(I, 1e-30)))
L_truth = []; L_const = []; L_perfect = []
for i in range(0, len(x), 1):
    o = patch(x[i], y[i]) * alpha
    A = np.abs(np.fft.fftshift(np.fft.fft2(P*o)))/N
    tgt = s*alpha*diff[i]
    L_truth.append(loss(s*A, tgt))
    oc = np.full_like(o, np.mean(np.abs(o)))
    Ac = np.abs(np.fft.fftshift(np.fft.fft2(P*oc)))/N
    L_const.append(loss(s*Ac, tgt))
    L_perfect.append(loss(np.maximum(tgt,1e-3), tgt))
print('loss at truth %.4f  const object %.4f  saturated (I=Y) %.4f' % (np.mean(L_truth), np.mean(L_const), np.mean(L_perfect)))
