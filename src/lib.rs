//! ptycho-wgpu: physics-informed ptychographic reconstruction (the PtychoPINN method) on any GPU that
//! wgpu reaches, with a CPU backend for machines without one. The compute layer is the
//! `ptycho-kernels` crate; this crate holds the application: benchmarks and the `ptycho` command line.

pub mod bench;
pub mod cli;
pub mod data;
pub mod eval;
pub mod infer;
pub mod io;
pub mod model;
pub mod persist;
pub mod physics;
pub mod recon;
pub mod study;
pub mod train;

pub use ptycho_kernels as kernels;
