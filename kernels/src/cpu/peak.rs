//! CPU twin of shaders/peak.wgsl. The chains use fused multiply-adds as the shader does. On x86-64
//! with AVX2 and FMA, eight lanes run at once in the eight floats of a vector register, eight chains
//! at a time, so that eight independent FMAs are in flight: enough to cover the FMA latency on both
//! FMA ports, so the rate measured is the core's true FP32 FMA peak (a scalar loop, or one that
//! vectorises over a lane's own chains with too few registers in flight, measures about half of it
//! and lets well-blocked convolutions report more than 100% of "peak"). Every lane's arithmetic is
//! the scalar loop's, so the results are the same bits.

use rayon::prelude::*;

use crate::ops::peak::{start, CHAINS, INCREMENT, MULTIPLIER};

#[inline(always)]
fn lane(i: usize, iterations: u32) -> f32 {
    let mut a: [f32; CHAINS] = std::array::from_fn(|j| start(i, j));
    for _ in 0..iterations {
        for v in a.iter_mut() {
            *v = v.mul_add(MULTIPLIER, INCREMENT);
        }
    }
    reduce(&a)
}

/// A lane's sum in the shader's order: vec4 registers summed pairwise, then their components.
fn reduce(a: &[f32; CHAINS]) -> f32 {
    let reg = |j: usize| -> [f32; 4] { std::array::from_fn(|k| a[4 * j + k]) };
    let add = |x: [f32; 4], y: [f32; 4]| -> [f32; 4] { std::array::from_fn(|k| x[k] + y[k]) };
    let s = add(
        add(add(reg(0), reg(1)), add(reg(2), reg(3))),
        add(add(reg(4), reg(5)), add(reg(6), reg(7))),
    );
    (s[0] + s[1]) + (s[2] + s[3])
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn lanes_fma(out: &mut [f32], first: usize, iterations: u32) {
    use std::arch::x86_64::*;
    const WIDTH: usize = 8;
    const IN_FLIGHT: usize = 8;
    let whole = out.len() / WIDTH * WIDTH;
    let (m, c) = (_mm256_set1_ps(MULTIPLIER), _mm256_set1_ps(INCREMENT));
    for group in (0..whole).step_by(WIDTH) {
        // chains[lane][j], filled IN_FLIGHT chains at a time.
        let mut chains = [[0f32; CHAINS]; WIDTH];
        for block in (0..CHAINS).step_by(IN_FLIGHT) {
            let mut acc: [__m256; IN_FLIGHT] = std::array::from_fn(|j| {
                let v: [f32; WIDTH] = std::array::from_fn(|l| start(first + group + l, block + j));
                // SAFETY: v holds WIDTH floats; unaligned loads are allowed.
                unsafe { _mm256_loadu_ps(v.as_ptr()) }
            });
            for _ in 0..iterations {
                for a in acc.iter_mut() {
                    *a = _mm256_fmadd_ps(*a, m, c);
                }
            }
            for (j, a) in acc.iter().enumerate() {
                let mut v = [0f32; WIDTH];
                // SAFETY: v has room for WIDTH floats.
                unsafe { _mm256_storeu_ps(v.as_mut_ptr(), *a) };
                for (l, x) in v.iter().enumerate() {
                    chains[l][block + j] = *x;
                }
            }
        }
        for (l, lane_chains) in chains.iter().enumerate() {
            out[group + l] = reduce(lane_chains);
        }
    }
    for (k, o) in out.iter_mut().enumerate().skip(whole) {
        *o = lane(first + k, iterations);
    }
}

/// The AVX-512 form of `lanes_fma`: sixteen lanes per register, eight registers in flight, which is
/// what the FMA latency of a core with two 512-bit FMA ports needs. On such a core this is the FP32
/// peak; the AVX2 form measures half of it.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn lanes_fma512(out: &mut [f32], first: usize, iterations: u32) {
    use std::arch::x86_64::*;
    const WIDTH: usize = 16;
    const IN_FLIGHT: usize = 8;
    let whole = out.len() / WIDTH * WIDTH;
    let (m, c) = (_mm512_set1_ps(MULTIPLIER), _mm512_set1_ps(INCREMENT));
    for group in (0..whole).step_by(WIDTH) {
        let mut chains = [[0f32; CHAINS]; WIDTH];
        for block in (0..CHAINS).step_by(IN_FLIGHT) {
            let mut acc: [__m512; IN_FLIGHT] = std::array::from_fn(|j| {
                let v: [f32; WIDTH] = std::array::from_fn(|l| start(first + group + l, block + j));
                // SAFETY: v holds WIDTH floats; unaligned loads are allowed.
                unsafe { _mm512_loadu_ps(v.as_ptr()) }
            });
            for _ in 0..iterations {
                for a in acc.iter_mut() {
                    *a = _mm512_fmadd_ps(*a, m, c);
                }
            }
            for (j, a) in acc.iter().enumerate() {
                let mut v = [0f32; WIDTH];
                // SAFETY: v has room for WIDTH floats.
                unsafe { _mm512_storeu_ps(v.as_mut_ptr(), *a) };
                for (l, x) in v.iter().enumerate() {
                    chains[l][block + j] = *x;
                }
            }
        }
        for (l, lane_chains) in chains.iter().enumerate() {
            out[group + l] = reduce(lane_chains);
        }
    }
    for (k, o) in out.iter_mut().enumerate().skip(whole) {
        *o = lane(first + k, iterations);
    }
}

/// The widest FMA path this CPU has.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Path {
    Avx512,
    Avx2,
    Scalar,
}

fn path() -> Path {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            return Path::Avx512;
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            return Path::Avx2;
        }
    }
    Path::Scalar
}

pub(super) fn fma_chain(lanes: usize, iterations: u32) -> Vec<f32> {
    fma_chain_on(path(), lanes, iterations)
}

fn fma_chain_on(path: Path, lanes: usize, iterations: u32) -> Vec<f32> {
    let mut out = vec![0f32; lanes];
    out.par_chunks_mut(256)
        .enumerate()
        .for_each(|(chunk, values)| {
            #[cfg(target_arch = "x86_64")]
            match path {
                // SAFETY: `path` was chosen by feature detection on this CPU.
                Path::Avx512 => return unsafe { lanes_fma512(values, chunk * 256, iterations) },
                // SAFETY: as above.
                Path::Avx2 => return unsafe { lanes_fma(values, chunk * 256, iterations) },
                Path::Scalar => {}
            }
            #[cfg(not(target_arch = "x86_64"))]
            let _ = path;
            for (k, o) in values.iter_mut().enumerate() {
                *o = lane(chunk * 256 + k, iterations);
            }
        });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_vector_path_this_cpu_has_gives_the_scalar_loop_bits() {
        // 37 lanes: two groups of sixteen (or four of eight) and a remainder of five.
        let mut paths = vec![Path::Scalar];
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                paths.push(Path::Avx2);
            }
            if std::is_x86_feature_detected!("avx512f") {
                paths.push(Path::Avx512);
            }
        }
        for p in paths {
            let out = fma_chain_on(p, 37, 29);
            for (i, v) in out.iter().enumerate() {
                assert_eq!(v.to_bits(), lane(i, 29).to_bits(), "lane {i}");
            }
        }
    }
}
