//! A synthetic kernel that measures an adapter's FP32 multiply-add rate (the "peak" that benchmarks
//! compare convolutions against): each lane runs CHAINS independent recurrences a ← a·m + c (fused),
//! with no memory traffic, and returns their sum. From a0 the chain tends to c / (1 − m) = 1.

/// Independent chains per lane (eight vec4 registers on the GPU).
pub const CHAINS: usize = 32;
pub const MULTIPLIER: f32 = 0.999;
pub const INCREMENT: f32 = 0.001;

/// FLOP of one call: 2 per fused multiply-add.
pub fn flops(lanes: usize, iterations: u32) -> f64 {
    2.0 * CHAINS as f64 * lanes as f64 * iterations as f64
}

/// Chain j's start in lane i.
pub fn start(i: usize, j: usize) -> f32 {
    0.01 * ((i + j) % 13) as f32
}
