use rayon::prelude::*;

use crate::ops::elementwise::{BinaryOp, RealOp};
use crate::Complex32;

/// Elements per rayon task: below this, threading costs more than it saves.
const CHUNK: usize = 1 << 14;

pub(super) fn binary(op: BinaryOp, a: &[Complex32], b: &[Complex32]) -> Vec<Complex32> {
    let f = match op {
        BinaryOp::Mul => |x: Complex32, y: Complex32| x * y,
        BinaryOp::MulConj => |x: Complex32, y: Complex32| x * y.conj(),
        BinaryOp::Add => |x: Complex32, y: Complex32| x + y,
    };
    let mut out = vec![Complex32::default(); a.len()];
    out.par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(c, chunk)| {
            let start = c * CHUNK;
            for (k, o) in chunk.iter_mut().enumerate() {
                let i = start + k;
                *o = f(a[i], b[i % b.len()]);
            }
        });
    out
}

pub(super) fn scale(a: &[Complex32], s: f32) -> Vec<Complex32> {
    a.par_iter().with_min_len(CHUNK).map(|x| x * s).collect()
}

pub(super) fn real(op: RealOp, a: &[Complex32]) -> Vec<f32> {
    match op {
        RealOp::Abs => a.par_iter().with_min_len(CHUNK).map(|x| x.norm()).collect(),
        RealOp::Abs2 => a
            .par_iter()
            .with_min_len(CHUNK)
            .map(|x| x.norm_sqr())
            .collect(),
    }
}

pub(super) fn modulus_grad(a: &[Complex32], g: &[f32], s: f32) -> Vec<Complex32> {
    a.par_iter()
        .zip(g.par_iter())
        .with_min_len(CHUNK)
        .map(|(a, g)| {
            let m = a.norm();
            if m > 0.0 {
                a * (s * g / m)
            } else {
                Complex32::default()
            }
        })
        .collect()
}
