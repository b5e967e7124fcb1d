//! The ops of the iterative engines: N x N patches cut from an object at sub-pixel origins
//! (bilinear, zero outside, the convention of the simulator), their adjoint (patches summed back
//! onto the object), and the Fourier-modulus projection with its residual.
//!
//! The adjoint is computed in gather form, without float atomics: the object is cut into square bins,
//! a host-built [`PatchIndex`] lists for each bin the patches whose footprint touches it, and each
//! object pixel sums the contributions of its bin's patches in list order. The CPU twin sums in the
//! same order, so both backends agree to rounding.

use super::require_dtype;
use crate::{Dtype, KernelError, Result, Tensor};

/// `patches` N x N patches of an H x W object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PatchGeometry {
    pub patches: usize,
    pub n: usize,
    pub h: usize,
    pub w: usize,
}

fn shape_error(op: &'static str, expected: String, found: &[usize]) -> KernelError {
    KernelError::Shape {
        op,
        expected,
        found: found.to_vec(),
    }
}

/// (M, 2) float32 origins (x0, y0): the object coordinates of each patch's pixel (0, 0).
fn check_origins<S>(op: &'static str, origins: &Tensor<S>) -> Result<usize> {
    require_dtype(op, origins, Dtype::F32)?;
    match *origins.shape() {
        [m, 2] => Ok(m),
        _ => Err(shape_error(
            op,
            "origins (M, 2) as (x0, y0)".into(),
            origins.shape(),
        )),
    }
}

impl PatchGeometry {
    /// `extract_patches`: a complex (H, W) object, (M, 2) origins, patch size n.
    pub fn of_extract<S>(object: &Tensor<S>, origins: &Tensor<S>, n: usize) -> Result<Self> {
        const OP: &str = "extract_patches";
        require_dtype(OP, object, Dtype::C64)?;
        let patches = check_origins(OP, origins)?;
        let [h, w] = *object.shape() else {
            return Err(shape_error(OP, "an (H, W) object".into(), object.shape()));
        };
        if n == 0 {
            return Err(shape_error(OP, "patches of at least 1 x 1".into(), &[n]));
        }
        Ok(Self { patches, n, h, w })
    }

    /// `scatter_patches`: complex (M, N, N) patches (or one (N, N) patch shared by all M origins),
    /// (M, 2) origins, the index built for them, and the object's (H, W).
    pub fn of_scatter<S>(
        patches: &Tensor<S>,
        origins: &Tensor<S>,
        index: &PatchIndex,
        h: usize,
        w: usize,
    ) -> Result<Self> {
        const OP: &str = "scatter_patches";
        require_dtype(OP, patches, Dtype::C64)?;
        let m = check_origins(OP, origins)?;
        let n = match *patches.shape() {
            [count, a, b] if a == b && count == m => a,
            [a, b] if a == b => a,
            _ => {
                return Err(shape_error(
                    OP,
                    format!("patches ({m}, N, N) or one shared (N, N)"),
                    patches.shape(),
                ))
            }
        };
        if index.patches != m || index.n != n || index.h != h || index.w != w {
            return Err(shape_error(
                OP,
                format!(
                    "an index built for {m} patches of {n} x {n} on {h} x {w} (it is for {} of {} on {} x {})",
                    index.patches, index.n, index.h, index.w
                ),
                &[index.patches, index.n, index.h, index.w],
            ));
        }
        Ok(Self {
            patches: m,
            n,
            h,
            w,
        })
    }
}

/// Integer part and fraction of an origin coordinate, in f32 as both backends compute it.
pub fn split_origin(v: f32) -> (i64, f32) {
    let k = v.floor();
    (k as i64, v - k)
}

/// For each square bin of the object, the patches whose bilinear footprint (N + 1 pixels from the
/// integer part of the origin) touches it, in ascending patch order. Stored as exact integers in
/// float32 tensors so that both backends hold them in their ordinary storage.
#[derive(Clone, Debug, PartialEq)]
pub struct PatchIndex {
    pub patches: usize,
    pub n: usize,
    pub h: usize,
    pub w: usize,
    /// Side of a bin in object pixels.
    pub bin: usize,
    pub bins_x: usize,
    pub bins_y: usize,
    /// bins_x · bins_y + 1 offsets into `entries`.
    pub starts: Vec<u32>,
    pub entries: Vec<u32>,
}

impl PatchIndex {
    /// The index of patches of side `n` at `origins` ((x0, y0) pairs) on an h x w object.
    pub fn new(origins: &[f32], n: usize, h: usize, w: usize) -> Result<Self> {
        const OP: &str = "patch_index";
        if !origins.len().is_multiple_of(2) || n == 0 {
            return Err(shape_error(
                OP,
                "(x0, y0) pairs and n ≥ 1".into(),
                &[origins.len(), n],
            ));
        }
        let patches = origins.len() / 2;
        // Integers up to 2^24 are exact in float32.
        if patches >= 1 << 24 || h * w >= 1 << 31 {
            return Err(shape_error(
                OP,
                "fewer than 2^24 patches".into(),
                &[patches],
            ));
        }
        // Bins of a quarter patch: a pixel then scans the few patches near it, not every patch
        // within a patch's width.
        let bin = (n / 4).max(4);
        let (bins_x, bins_y) = (w.div_ceil(bin).max(1), h.div_ceil(bin).max(1));
        let mut lists: Vec<Vec<u32>> = vec![Vec::new(); bins_x * bins_y];
        for (j, origin) in origins.chunks(2).enumerate() {
            let (kx, _) = split_origin(origin[0]);
            let (ky, _) = split_origin(origin[1]);
            // Pixels kx ..= kx + n (the bilinear footprint), clipped to the object.
            let (x0, x1) = (kx.max(0), (kx + n as i64).min(w as i64 - 1));
            let (y0, y1) = (ky.max(0), (ky + n as i64).min(h as i64 - 1));
            if x0 > x1 || y0 > y1 {
                continue;
            }
            for by in (y0 as usize / bin)..=(y1 as usize / bin) {
                for bx in (x0 as usize / bin)..=(x1 as usize / bin) {
                    lists[by * bins_x + bx].push(j as u32);
                }
            }
        }
        let mut starts = Vec::with_capacity(lists.len() + 1);
        let mut entries = Vec::new();
        starts.push(0);
        for list in &lists {
            entries.extend_from_slice(list);
            starts.push(entries.len() as u32);
        }
        if entries.len() >= 1 << 24 {
            return Err(shape_error(
                OP,
                "fewer than 2^24 (bin, patch) entries".into(),
                &[entries.len()],
            ));
        }
        Ok(Self {
            patches,
            n,
            h,
            w,
            bin,
            bins_x,
            bins_y,
            starts,
            entries,
        })
    }

    /// The index as one float32 array: bins_x · bins_y + 1 starts (offsets counted from the start of
    /// the entries), then the entries.
    pub fn to_f32(&self) -> Vec<f32> {
        self.starts
            .iter()
            .chain(&self.entries)
            .map(|&v| v as f32)
            .collect()
    }
}

/// A [`PatchIndex`] with its table on a backend, as `scatter_patches` takes it.
pub struct PatchTable<S> {
    pub index: PatchIndex,
    /// [`PatchIndex::to_f32`], on the backend.
    pub table: Tensor<S>,
}

impl<S> PatchTable<S> {
    /// Build the index of patches of side `n` at `origins` ((x0, y0) pairs) on an h x w object and
    /// upload its table.
    pub fn upload<B: super::Backend<Storage = S>>(
        b: &B,
        origins: &[f32],
        n: usize,
        h: usize,
        w: usize,
    ) -> Result<Self> {
        let index = PatchIndex::new(origins, n, h, w)?;
        let values = index.to_f32();
        let table = b.upload_f32(&[values.len()], &values)?;
        Ok(Self { index, table })
    }
}

/// `modulus_project`: complex (..., N, N) spectra and float32 amplitudes of the same shape.
pub fn check_modulus_pair<S>(spectrum: &Tensor<S>, amplitude: &Tensor<S>) -> Result<()> {
    const OP: &str = "modulus_project";
    require_dtype(OP, spectrum, Dtype::C64)?;
    require_dtype(OP, amplitude, Dtype::F32)?;
    if spectrum.shape() != amplitude.shape() {
        return Err(shape_error(
            OP,
            format!("amplitudes of the spectra's shape {:?}", spectrum.shape()),
            amplitude.shape(),
        ));
    }
    Ok(())
}

/// `pattern_dot`: two complex stacks (M, ...) of one shape; returns M and the elements per pattern.
pub fn check_pattern_pair<S>(a: &Tensor<S>, b: &Tensor<S>) -> Result<(usize, usize)> {
    const OP: &str = "pattern_dot";
    require_dtype(OP, a, Dtype::C64)?;
    require_dtype(OP, b, Dtype::C64)?;
    if a.shape() != b.shape() || a.shape().is_empty() {
        return Err(shape_error(
            OP,
            format!(
                "two stacks (M, ...) of one shape, the first {:?}",
                a.shape()
            ),
            b.shape(),
        ));
    }
    let m = a.shape()[0];
    Ok((m, a.len() / m.max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patch_is_listed_in_every_bin_its_footprint_touches_and_only_there() {
        // Two 4 x 4 patches on a 10 x 12 object (bins of 4): one at (1.5, 2.25), one off the object.
        let index = PatchIndex::new(&[1.5, 2.25, 40.0, 1.0], 4, 10, 12).unwrap();
        assert_eq!((index.bins_x, index.bins_y), (3, 3));
        // Footprint x 1..=5, y 2..=6: bins x 0..=1, y 0..=1.
        let listed: Vec<usize> = (0..9)
            .filter(|&b| index.starts[b + 1] > index.starts[b])
            .collect();
        assert_eq!(listed, vec![0, 1, 3, 4]);
        assert_eq!(index.entries, vec![0, 0, 0, 0]);
        assert_eq!(index.to_f32().len(), 10 + 4);
    }
}
