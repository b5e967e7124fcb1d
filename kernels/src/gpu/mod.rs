//! The wgpu backend. `engine.rs` is the engine (device, pipeline cache, buffer pool, recording,
//! dispatch); `shaders.rs` is the one table of WGSL shaders; each op family has its own module with
//! its `Params` block, binding names and dispatch code; `backend.rs` maps the
//! [`Backend`](crate::Backend) trait onto the families.

mod backend;
pub mod context;
mod conv;
mod elementwise;
mod engine;
mod fft;
mod layers;
mod layout;
mod loss;
mod optim;
mod peak;
mod pool;
mod ptycho;
mod recorder;
pub mod shaders;
mod translate;

pub use context::{AdapterSummary, GpuSelection};
pub use engine::{ConvKernels, GpuBackend, GpuTensor, PendingRead};
pub use fft::FftPass;
pub use pool::PooledBuffer;
pub use recorder::RecorderStats;
