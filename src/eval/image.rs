//! 2-D images in f64 (real and complex), row-major, with the few operations the metrics need.

use rustfft::num_complex::Complex64;
use rustfft::FftPlanner;

#[derive(Clone, Debug, PartialEq)]
pub struct Image<T> {
    pub h: usize,
    pub w: usize,
    pub data: Vec<T>,
}

pub type Real = Image<f64>;
pub type Complex = Image<Complex64>;

impl<T: Copy> Image<T> {
    pub fn new(h: usize, w: usize, data: Vec<T>) -> Self {
        assert_eq!(data.len(), h * w, "image data must be h * w");
        Self { h, w, data }
    }

    pub fn at(&self, r: usize, c: usize) -> T {
        self.data[r * self.w + c]
    }

    pub fn map<U: Copy>(&self, f: impl Fn(T) -> U) -> Image<U> {
        Image::new(self.h, self.w, self.data.iter().map(|&v| f(v)).collect())
    }

    /// Rows `r0..r0+h`, columns `c0..c0+w`.
    pub fn crop(&self, r0: usize, c0: usize, h: usize, w: usize) -> Self {
        let mut data = Vec::with_capacity(h * w);
        for r in r0..r0 + h {
            data.extend_from_slice(&self.data[r * self.w + c0..r * self.w + c0 + w]);
        }
        Self::new(h, w, data)
    }

    /// `t` pixels off every edge.
    pub fn trim(&self, t: usize) -> Self {
        let (h, w) = (self.h.saturating_sub(2 * t), self.w.saturating_sub(2 * t));
        self.crop(t.min(self.h), t.min(self.w), h, w)
    }

    /// The centred h x w window (numpy's `img[(H-h)//2:(H-h)//2+h, ...]`).
    pub fn center_crop(&self, h: usize, w: usize) -> Self {
        self.crop((self.h - h) / 2, (self.w - w) / 2, h, w)
    }

    /// Every other row and column starting at 0 (`img[::2, ::2]`).
    pub fn decimate(&self) -> Self {
        let (h, w) = (self.h.div_ceil(2), self.w.div_ceil(2));
        let mut data = Vec::with_capacity(h * w);
        for r in (0..self.h).step_by(2) {
            for c in (0..self.w).step_by(2) {
                data.push(self.at(r, c));
            }
        }
        Self::new(h, w, data)
    }
}

impl Real {
    pub fn mean(&self) -> f64 {
        self.data.iter().sum::<f64>() / self.data.len().max(1) as f64
    }

    pub fn min(&self) -> f64 {
        self.data.iter().copied().fold(f64::INFINITY, f64::min)
    }

    pub fn max(&self) -> f64 {
        self.data.iter().copied().fold(f64::NEG_INFINITY, f64::max)
    }

    pub fn range(&self) -> f64 {
        self.max() - self.min()
    }
}

/// Unnormalised 2-D DFT (numpy.fft.fft2), or its inverse scaled by 1/(h w), of any size.
pub fn fft2(img: &Complex, inverse: bool) -> Complex {
    let mut planner = FftPlanner::<f64>::new();
    let (row, col) = if inverse {
        (
            planner.plan_fft_inverse(img.w),
            planner.plan_fft_inverse(img.h),
        )
    } else {
        (
            planner.plan_fft_forward(img.w),
            planner.plan_fft_forward(img.h),
        )
    };
    let mut data = img.data.clone();
    for r in data.chunks_mut(img.w) {
        row.process(r);
    }
    let mut column = vec![Complex64::default(); img.h];
    for c in 0..img.w {
        for r in 0..img.h {
            column[r] = data[r * img.w + c];
        }
        col.process(&mut column);
        for r in 0..img.h {
            data[r * img.w + c] = column[r];
        }
    }
    if inverse {
        let s = 1.0 / (img.h * img.w) as f64;
        data.iter_mut().for_each(|v| *v *= s);
    }
    Image::new(img.h, img.w, data)
}

/// numpy.fft.fftshift: the zero frequency moves to (h/2, w/2) (floor).
pub fn fftshift<T: Copy>(img: &Image<T>) -> Image<T> {
    let mut data = img.data.clone();
    for r in 0..img.h {
        for c in 0..img.w {
            data[((r + img.h / 2) % img.h) * img.w + (c + img.w / 2) % img.w] = img.at(r, c);
        }
    }
    Image::new(img.h, img.w, data)
}

/// `numpy.fft.fftfreq(n)[k]`: cycles per sample of bin k.
pub fn fftfreq(k: usize, n: usize) -> f64 {
    let k = if k < n.div_ceil(2) {
        k as f64
    } else {
        k as f64 - n as f64
    };
    k / n as f64
}
