//! The scan and the estimate on the backend, as every engine uses them: the patterns in batches (their
//! amplitudes scaled by N to compare with the unnormalised FFT, their patch origins, the bin index of
//! their patches), the object and the probe, and the object's illumination Σ_j |P|² at the patch
//! positions, which the engines divide by.

use ptycho_kernels::ops::ptycho::PatchTable;
use ptycho_kernels::{Backend, FftDirection, FftShift, Tensor};

use super::{Estimate, ReconError, Scan};
use crate::physics::image::ComplexImage;

/// One batch of patterns.
pub struct DeviceBatch<S> {
    /// The batch's patterns, as indices into the scan.
    pub indices: Vec<usize>,
    pub len: usize,
    /// N · measured amplitude, (len, N, N), fftshifted as measured.
    pub amplitude: Tensor<S>,
    /// (len, 2) patch origins (x0, y0): position − N/2.
    pub origins: Tensor<S>,
    pub table: PatchTable<S>,
}

pub struct DeviceScan<S> {
    pub n: usize,
    pub patterns: usize,
    pub rows: usize,
    pub cols: usize,
    pub batches: Vec<DeviceBatch<S>>,
    pub object: Tensor<S>,
    pub probe: Tensor<S>,
    /// Patch origins of every pattern, in scan order (x0, y0 pairs), for whole-scan indices.
    pub origins: Vec<f32>,
    /// N · measured amplitude of every pattern, in scan order, for rebatching.
    amplitudes: Vec<f32>,
    batch_size: usize,
}

/// Origins (x0, y0 pairs) of the patterns `indices`.
fn gather_origins(origins: &[f32], indices: &[usize]) -> Vec<f32> {
    indices
        .iter()
        .flat_map(|&i| [origins[2 * i], origins[2 * i + 1]])
        .collect()
}

impl<S> DeviceScan<S> {
    /// Check the scan against the estimate and put both on the backend in batches of `batch_size`
    /// patterns, in scan order.
    pub fn new<B: Backend<Storage = S>>(
        b: &B,
        scan: &Scan<'_>,
        estimate: &Estimate,
        batch_size: usize,
    ) -> Result<Self, ReconError> {
        scan.check(estimate)?;
        if batch_size == 0 {
            return Err(ReconError::Scan("the batch size must be at least 1".into()));
        }
        let n = scan.n;
        let half = (n / 2) as f64;
        let origins: Vec<f32> = scan
            .positions
            .iter()
            .flat_map(|&[x, y]| [(x - half) as f32, (y - half) as f32])
            .collect();
        let (rows, cols) = (estimate.object.rows, estimate.object.cols);
        let amplitudes: Vec<f32> = scan.amplitudes.iter().map(|a| a * n as f32).collect();
        let mut device = Self {
            n,
            patterns: scan.patterns(),
            rows,
            cols,
            batches: Vec::new(),
            object: upload_image(b, &estimate.object)?,
            probe: upload_image(b, &estimate.probe)?,
            origins,
            amplitudes,
            batch_size,
        };
        device.rebatch(b, &(0..scan.patterns()).collect::<Vec<_>>())?;
        Ok(device)
    }

    /// Cut the patterns, in the order `order`, into batches of the batch size and put them on the
    /// backend.
    pub fn rebatch<B: Backend<Storage = S>>(
        &mut self,
        b: &B,
        order: &[usize],
    ) -> Result<(), ReconError> {
        let (n, nn) = (self.n, self.n * self.n);
        let mut batches = Vec::new();
        for indices in order.chunks(self.batch_size) {
            let len = indices.len();
            let mut amplitude = Vec::with_capacity(len * nn);
            for &i in indices {
                amplitude.extend_from_slice(&self.amplitudes[i * nn..(i + 1) * nn]);
            }
            let origins = gather_origins(&self.origins, indices);
            batches.push(DeviceBatch {
                indices: indices.to_vec(),
                len,
                amplitude: b.upload_f32(&[len, n, n], &amplitude)?,
                origins: b.upload_f32(&[len, 2], &origins)?,
                table: PatchTable::upload(b, &origins, n, self.rows, self.cols)?,
            });
        }
        self.batches = batches;
        Ok(())
    }

    /// Reshuffle the patterns into new batches for epoch `epoch`, from `seed` (the same seed and
    /// epoch give the same batches).
    pub fn reshuffle<B: Backend<Storage = S>>(
        &mut self,
        b: &B,
        seed: u64,
        epoch: usize,
    ) -> Result<(), ReconError> {
        let mut order: Vec<usize> = (0..self.patterns).collect();
        let mut rng = ptycho_kernels::rng::SplitMix64::new(
            seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        for i in (1..order.len()).rev() {
            let j = (rng.next_u64() % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
        self.rebatch(b, &order)
    }

    pub fn estimate<B: Backend<Storage = S>>(&self, b: &B) -> Result<Estimate, ReconError> {
        Ok(Estimate {
            object: ComplexImage::new(self.rows, self.cols, b.download_c64(&self.object)?),
            probe: ComplexImage::new(self.n, self.n, b.download_c64(&self.probe)?),
        })
    }

    /// Each batch's illumination Σ_j Sᵀ_j|P|² over its patterns, (H, W) float32.
    pub fn batch_illumination<B: Backend<Storage = S>>(
        &self,
        b: &B,
    ) -> Result<Vec<Tensor<S>>, ReconError> {
        // P·P* = |P|² + 0i: the intensity as the complex patch the scatter takes.
        let power = b.mul_conj(&self.probe, &self.probe)?;
        self.batches
            .iter()
            .map(|batch| {
                let covered = b.scatter_patches(&power, &batch.origins, &batch.table)?;
                Ok(b.abs(&covered)?)
            })
            .collect()
    }

    /// The whole scan's illumination Σ_all Sᵀ_j|P|², (H, W) float32.
    pub fn illumination<B: Backend<Storage = S>>(&self, b: &B) -> Result<Tensor<S>, ReconError> {
        let mut parts = self.batch_illumination(b)?.into_iter();
        let first = parts.next().expect("a scan has at least one batch");
        parts.try_fold(first, |sum, part| Ok(b.add_real(&sum, &part)?))
    }

    /// Every pattern's position (x, y), the patch centre: origin + N/2.
    pub fn positions(&self) -> Vec<[f64; 2]> {
        let half = (self.n / 2) as f64;
        self.origins
            .chunks(2)
            .map(|o| [o[0] as f64 + half, o[1] as f64 + half])
            .collect()
    }

    /// Move the patterns of batch `k` by `shifts` ((dx, dy) each, in pixels), keeping every patch
    /// inside the object, and rebuild the batch's origins and patch index.
    pub fn move_batch<B: Backend<Storage = S>>(
        &mut self,
        b: &B,
        k: usize,
        shifts: &[[f64; 2]],
    ) -> Result<(), ReconError> {
        let limits = [(self.cols - self.n) as f32, (self.rows - self.n) as f32];
        for (&i, shift) in self.batches[k].indices.iter().zip(shifts) {
            for axis in 0..2 {
                let origin = &mut self.origins[2 * i + axis];
                *origin = (*origin + shift[axis] as f32).clamp(0.0, limits[axis]);
            }
        }
        let origins = gather_origins(&self.origins, &self.batches[k].indices);
        let len = self.batches[k].len;
        let batch = &mut self.batches[k];
        batch.origins = b.upload_f32(&[len, 2], &origins)?;
        batch.table = PatchTable::upload(b, &origins, self.n, self.rows, self.cols)?;
        Ok(())
    }

    /// Σ |P|² of the probe, on the host.
    pub fn probe_power<B: Backend<Storage = S>>(&self, b: &B) -> Result<f64, ReconError> {
        Ok(b.download_c64(&self.probe)?
            .iter()
            .map(|v| v.norm_sqr() as f64)
            .sum())
    }

    /// Scale the probe back to `power` (Σ |P|²): object and probe could otherwise trade a constant
    /// factor while the probe is refined.
    pub fn keep_probe_power<B: Backend<Storage = S>>(
        &mut self,
        b: &B,
        power: f64,
    ) -> Result<(), ReconError> {
        let now = self.probe_power(b)?;
        if now > 0.0 {
            self.probe = b.scale(&self.probe, (power / now).sqrt() as f32)?;
        }
        Ok(())
    }

    /// The patches of the object at the batch's positions times the probe: ψ_j = P · O_j.
    pub fn exit_waves<B: Backend<Storage = S>>(
        &self,
        b: &B,
        batch: &DeviceBatch<S>,
    ) -> Result<Tensor<S>, ReconError> {
        let patches = b.extract_patches(&self.object, &batch.origins, self.n)?;
        Ok(b.mul(&patches, &self.probe)?)
    }
}

fn upload_image<B: Backend>(b: &B, image: &ComplexImage) -> Result<Tensor<B::Storage>, ReconError> {
    Ok(b.upload_c64(&[image.rows, image.cols], &image.data)?)
}

/// The far field of exit waves: FFT2 with zero frequency at the centre, as measured.
pub fn far_field<B: Backend>(
    b: &B,
    psi: &Tensor<B::Storage>,
) -> Result<Tensor<B::Storage>, ReconError> {
    Ok(b.fft2(psi, FftDirection::Forward, FftShift::OUTPUT)?)
}

/// Back from the far field to exit waves.
pub fn near_field<B: Backend>(
    b: &B,
    spectrum: &Tensor<B::Storage>,
) -> Result<Tensor<B::Storage>, ReconError> {
    Ok(b.fft2(spectrum, FftDirection::Inverse, FftShift::INPUT)?)
}

/// The largest value of a float32 tensor (0 for an empty or all-negative one), read back to the host.
pub fn largest<B: Backend>(b: &B, x: &Tensor<B::Storage>) -> Result<f32, ReconError> {
    Ok(b.download_f32(x)?.into_iter().fold(0.0f32, f32::max))
}

/// x − y.
pub fn sub<B: Backend>(
    b: &B,
    x: &Tensor<B::Storage>,
    y: &Tensor<B::Storage>,
) -> Result<Tensor<B::Storage>, ReconError> {
    Ok(b.add(x, &b.scale(y, -1.0)?)?)
}

/// An epoch's cost: the residuals' sums added on the backend batch by batch, read back once, as
/// the mean over every pattern pixel of (|FFT(P·O_j)| / N − measured amplitude)².
pub struct EpochCost<S>(Option<Tensor<S>>);

impl<S> Default for EpochCost<S> {
    fn default() -> Self {
        Self(None)
    }
}

impl<S> EpochCost<S> {
    /// Add a batch's residuals (|Ψ| − N·A)².
    pub fn add<B: Backend<Storage = S>>(
        &mut self,
        b: &B,
        residual: &Tensor<S>,
    ) -> Result<(), ReconError> {
        let batch = b.sum(residual)?;
        self.0 = Some(match self.0.take() {
            None => batch,
            Some(sum) => b.add_real(&sum, &batch)?,
        });
        Ok(())
    }

    pub fn finish<B: Backend<Storage = S>>(
        self,
        b: &B,
        scan: &DeviceScan<S>,
    ) -> Result<f64, ReconError> {
        let total = match self.0 {
            Some(sum) => b.download_f32(&sum)?[0] as f64,
            None => 0.0,
        };
        let nn = (scan.n * scan.n) as f64;
        // The residuals compare N·A with |Ψ|: N² more than the amplitudes' squares.
        Ok(total / nn / (scan.patterns as f64 * nn))
    }
}
