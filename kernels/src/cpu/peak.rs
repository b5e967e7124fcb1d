//! CPU twin of shaders/peak.wgsl. The chains use fused multiply-adds as the shader does; on x86-64
//! with FMA the loop is compiled a second time with that feature and chosen at run time, since
//! without it `mul_add` is a library call and the measured rate would say nothing about the CPU.

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
    // The shader's order: vec4 registers summed pairwise, then their components.
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
    for (k, o) in out.iter_mut().enumerate() {
        *o = lane(first + k, iterations);
    }
}

pub(super) fn fma_chain(lanes: usize, iterations: u32) -> Vec<f32> {
    let mut out = vec![0f32; lanes];
    #[cfg(target_arch = "x86_64")]
    let fma = std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma");
    #[cfg(not(target_arch = "x86_64"))]
    let fma = false;
    out.par_chunks_mut(256)
        .enumerate()
        .for_each(|(chunk, values)| {
            #[cfg(target_arch = "x86_64")]
            if fma {
                // SAFETY: the CPU was just checked for AVX2 and FMA.
                unsafe { lanes_fma(values, chunk * 256, iterations) };
                return;
            }
            let _ = fma;
            for (k, o) in values.iter_mut().enumerate() {
                *o = lane(chunk * 256 + k, iterations);
            }
        });
    out
}
