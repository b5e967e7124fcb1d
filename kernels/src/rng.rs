//! Small seeded generator (SplitMix64) for test data and benchmarks: the same seed gives the same numbers
//! on every machine.

use crate::Complex32;

#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [-1, 1).
    pub fn next_symmetric_f32(&mut self) -> f32 {
        (2.0 * self.next_f64() - 1.0) as f32
    }

    pub fn complex_vec(&mut self, len: usize) -> Vec<Complex32> {
        (0..len)
            .map(|_| Complex32::new(self.next_symmetric_f32(), self.next_symmetric_f32()))
            .collect()
    }

    pub fn real_vec(&mut self, len: usize) -> Vec<f32> {
        (0..len).map(|_| self.next_symmetric_f32()).collect()
    }
}
