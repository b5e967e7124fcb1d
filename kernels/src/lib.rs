//! The compute layer of ptycho-wgpu.
//!
//! Every op exists twice: as a WGSL kernel run through wgpu ([`gpu::GpuBackend`]) and as a CPU twin in plain
//! Rust ([`cpu::CpuBackend`]). Both implement [`Backend`], so callers and tests are written once and run
//! on either; the CPU twin is the oracle the GPU kernels are tested against and the fallback on machines
//! without a GPU.

pub mod cpu;
mod error;
pub mod gpu;
pub mod ops;
pub mod rng;
mod select;
mod tensor;
pub mod testing;

pub use error::{KernelError, Result};
pub use ops::fft::{FftDirection, FftShift, SUPPORTED_FFT_SIZES};
pub use ops::Backend;
pub use rustfft::num_complex::Complex32;
pub use select::{open_backend, AnyBackend, DeviceChoice};
pub use tensor::{Dtype, Tensor};
