//! ptycho-wgpu: physics-informed ptychographic reconstruction (the PtychoPINN method) on any GPU that
//! wgpu reaches, with a CPU backend for machines without one. The compute layer is the
//! `ptycho-kernels` crate; this crate holds the application: benchmarks and the `ptycho` command line.
//!
//! Used as a library, its data types convert to and from `ndarray` arrays (views without copies where
//! the layout allows):
//!
//! ```no_run
//! use ndarray::Array2;
//! use ptycho_wgpu::data::dataset::Dataset;
//! use ptycho_wgpu::kernels::Complex32;
//! use ptycho_wgpu::physics::image::ComplexImage;
//!
//! let dataset = Dataset::open("sim/dose_10000/patched_test.npz".as_ref())?;
//! let probe = dataset.probe_view(); // (N, N), no copy
//! let patterns = dataset.patterns_array(0..16)?; // (16, N, N) amplitudes
//! let positions = dataset.positions_array(); // (M, 2) patch centres (x, y)
//! let object = ComplexImage::from_array(Array2::from_elem((256, 256), Complex32::new(1.0, 0.0)));
//! assert_eq!(object.view().dim(), (256, 256)); // no copy
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod bench;
pub mod cli;
pub mod data;
pub mod eval;
pub mod infer;
pub mod interop;
pub mod io;
pub mod model;
pub mod persist;
pub mod physics;
pub mod recon;
pub mod study;
pub mod train;

pub use ptycho_kernels as kernels;
