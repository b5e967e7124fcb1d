//! The whole differentiable forward model of physics-and-model.md §4 (steps 3–10) for a batch of groups,
//! and its backward pass: object patches → merge into a canvas (or pad) → trimmed object → extraction of
//! the C patches → probe → far-field amplitude Â = s·fftshift(|FFT2 ψ|)/N. The losses of §7 take Â.

use ptycho_kernels::ops::loss::LossKind;
use ptycho_kernels::{Backend, Complex32, KernelError, Tensor};

use super::farfield::{self, FarField};
use super::merge::{self, Merged};
use super::probe::{self, disk_mask};
use super::PhysicsError;

/// The reference's `offset` and `max_position_jitter`, which size the canvas.
pub const OFFSET: usize = 4;
pub const MAX_POSITION_JITTER: usize = 10;

/// P = N + (gridsize − 1)·offset + max_position_jitter: 74 for N = 64 at gridsize 1, 78 at gridsize 2.
pub fn default_canvas_size(n: usize, gridsize: usize) -> usize {
    n + gridsize.saturating_sub(1) * OFFSET + MAX_POSITION_JITTER
}

#[derive(Clone, Debug)]
pub struct ForwardConfig {
    /// The canvas size P (P − N even).
    pub canvas: usize,
    /// Merge the C patches of a group into one canvas (true), or pad a single patch per group (false).
    pub object_big: bool,
    /// Multiply the illuminated field by the disk mask of radius N/4.
    pub probe_mask: bool,
    /// The intensity scale s.
    pub intensity_scale: f32,
    /// Merge the heads' probe-big ring apart from the centre ([`merge::merge_separating_ring`]); only
    /// a ring-producing network needs it, since without a ring both merges agree.
    pub separate_ring: bool,
}

/// The model's fixed parts on one backend: the probe (already normalised) and the configuration.
pub struct ForwardModel<S> {
    /// What multiplies each patch: P, or M ⊙ P with the probe mask (the mask commutes into the probe).
    illumination: Tensor<S>,
    /// M as complex64 when the mask is on, for the probe gradient.
    mask: Option<Tensor<S>>,
    config: ForwardConfig,
    n: usize,
}

/// The outputs of one forward pass and what its backward pass needs.
pub struct ForwardPass<S> {
    canvas: Canvas<S>,
    trimmed: Tensor<S>,
    extracted: Tensor<S>,
    far: FarField<S>,
}

enum Canvas<S> {
    Merged(Merged<S>),
    Padded(Tensor<S>),
}

impl<S> Canvas<S> {
    fn tensor(&self) -> &Tensor<S> {
        match self {
            Canvas::Merged(m) => &m.canvas,
            Canvas::Padded(t) => t,
        }
    }
}

impl<S> ForwardPass<S> {
    /// (B, P, P) complex64.
    pub fn canvas(&self) -> &Tensor<S> {
        self.canvas.tensor()
    }

    /// The centre N x N of the canvas (`trimmed_obj`), (B, N, N) complex64.
    pub fn trimmed(&self) -> &Tensor<S> {
        &self.trimmed
    }

    /// Â, (B, C, N, N) float32.
    pub fn amplitude(&self) -> &Tensor<S> {
        &self.far.amplitude
    }
}

/// ∂L/∂(patches) and ∂L/∂(probe).
pub struct Gradients<S> {
    pub patches: Tensor<S>,
    pub probe: Tensor<S>,
}

impl<S> ForwardModel<S> {
    pub fn new<B: Backend<Storage = S>>(
        b: &B,
        probe: &[Complex32],
        n: usize,
        config: ForwardConfig,
    ) -> Result<Self, PhysicsError> {
        if probe.len() != n * n {
            return Err(PhysicsError::Input(format!(
                "the probe has {} values, expected N x N = {n} x {n}",
                probe.len()
            )));
        }
        if config.canvas < n || !(config.canvas - n).is_multiple_of(2) {
            return Err(PhysicsError::Input(format!(
                "canvas size {} must be at least N = {n} and differ from it by an even number",
                config.canvas
            )));
        }
        if !config.intensity_scale.is_finite() || config.intensity_scale <= 0.0 {
            return Err(PhysicsError::Input(format!(
                "the intensity scale must be positive and finite, found {}",
                config.intensity_scale
            )));
        }
        let (illumination, mask) = if config.probe_mask {
            let m = disk_mask(n);
            let masked: Vec<Complex32> = probe.iter().zip(&m).map(|(p, m)| p * m).collect();
            let m: Vec<Complex32> = m.iter().map(|&v| Complex32::new(v, 0.0)).collect();
            (
                b.upload_c64(&[n, n], &masked)?,
                Some(b.upload_c64(&[n, n], &m)?),
            )
        } else {
            (b.upload_c64(&[n, n], probe)?, None)
        };
        Ok(Self {
            illumination,
            mask,
            config,
            n,
        })
    }

    pub fn config(&self) -> &ForwardConfig {
        &self.config
    }

    /// `patches` (B, C, N, N) complex64 (B, 1, N, N without object_big); `relative` (B·C, 2) holding the
    /// relative offsets rel = −(position − group centroid) as (x, y); `channels` = C.
    pub fn forward<B: Backend<Storage = S>>(
        &self,
        b: &B,
        patches: &Tensor<S>,
        relative: &Tensor<S>,
        channels: usize,
    ) -> Result<ForwardPass<S>, KernelError> {
        let (n, p) = (self.n, self.config.canvas);
        let groups = self.check_inputs(patches, relative, channels)?;
        let canvas = if self.config.object_big {
            Canvas::Merged(if self.config.separate_ring {
                merge::merge_separating_ring(b, patches, relative, p)?
            } else {
                merge::merge(b, patches, relative, p)?
            })
        } else {
            Canvas::Padded(b.recenter(patches, p, p)?.reshape(&[groups, p, p])?)
        };
        let trimmed = b.recenter(canvas.tensor(), n, n)?;
        let extracted = merge::extract(b, canvas.tensor(), relative, channels, n)?;
        let psi = probe::illuminate(b, &extracted, &self.illumination)?;
        let far = farfield::forward(b, &psi, self.config.intensity_scale)?;
        Ok(ForwardPass {
            canvas,
            trimmed,
            extracted,
            far,
        })
    }

    /// The gradients with respect to the patches and to the probe from ∂L/∂Â (B, C, N, N).
    pub fn backward<B: Backend<Storage = S>>(
        &self,
        b: &B,
        pass: &ForwardPass<S>,
        relative: &Tensor<S>,
        grad_amplitude: &Tensor<S>,
    ) -> Result<Gradients<S>, KernelError> {
        let (n, p) = (self.n, self.config.canvas);
        let grad_psi = farfield::backward(b, &pass.far, grad_amplitude)?;
        let grad_illumination = probe::illuminate_backward_probe(b, &grad_psi, &pass.extracted)?;
        let grad_probe = match &self.mask {
            Some(m) => b.mul(&grad_illumination, m)?,
            None => grad_illumination,
        };
        let grad_extracted = probe::illuminate_backward_object(b, &grad_psi, &self.illumination)?;
        let grad_canvas = merge::extract_backward(b, &grad_extracted, relative, p)?;
        let grad_patches = match &pass.canvas {
            Canvas::Merged(merged) => merge::merge_backward(b, merged, &grad_canvas)?,
            Canvas::Padded(_) => {
                let groups = grad_canvas.shape()[0];
                b.recenter(&grad_canvas, n, n)?
                    .reshape(&[groups, 1, n, n])?
            }
        };
        Ok(Gradients {
            patches: grad_patches,
            probe: grad_probe,
        })
    }

    fn check_inputs(
        &self,
        patches: &Tensor<S>,
        relative: &Tensor<S>,
        channels: usize,
    ) -> Result<usize, KernelError> {
        let n = self.n;
        let heads = if self.config.object_big { channels } else { 1 };
        let groups = match *patches.shape() {
            [g, c, h, w] if c == heads && h == n && w == n && channels > 0 => g,
            _ => {
                return Err(KernelError::Shape {
                    op: "forward",
                    expected: format!("patches (B, {heads}, {n}, {n})"),
                    found: patches.shape().to_vec(),
                })
            }
        };
        if relative.shape() != [groups * channels, 2] {
            return Err(KernelError::Shape {
                op: "forward",
                expected: format!("relative offsets (B·C, 2) = ({}, 2)", groups * channels),
                found: relative.shape().to_vec(),
            });
        }
        Ok(groups)
    }
}

/// The mean over all elements of a loss between predicted amplitudes Â and target amplitudes T (for the
/// Poisson forms T = sqrt(counts)), summed on the host in f64.
pub fn mean_loss<B: Backend>(
    b: &B,
    kind: LossKind,
    pred: &Tensor<B::Storage>,
    target: &Tensor<B::Storage>,
) -> Result<f64, KernelError> {
    let terms = b.download_f32(&b.loss_terms(kind, pred, target)?)?;
    Ok(terms.iter().map(|&v| v as f64).sum::<f64>() / terms.len().max(1) as f64)
}

/// ∂(mean loss)/∂Â.
pub fn mean_loss_grad<B: Backend>(
    b: &B,
    kind: LossKind,
    pred: &Tensor<B::Storage>,
    target: &Tensor<B::Storage>,
) -> Result<Tensor<B::Storage>, KernelError> {
    b.loss_grad(kind, pred, target, 1.0 / pred.len().max(1) as f32)
}
