//! The device flags every compute command takes.

use clap::Args;

use ptycho_kernels::gpu::GpuSelection;
use ptycho_kernels::{open_backend, AnyBackend, DeviceChoice};

/// Which adapter: shared by `ptycho info` and the compute commands.
#[derive(Args, Clone, Debug)]
pub struct AdapterArgs {
    /// GPU adapter: an index from `ptycho info` or part of its name.
    #[arg(long, env = "PTYCHO_ADAPTER")]
    pub adapter: Option<String>,
    /// wgpu backend: vulkan, metal, dx12 or gl [default: all].
    #[arg(long, env = "PTYCHO_BACKEND")]
    pub backend: Option<String>,
}

impl AdapterArgs {
    pub fn selection(&self) -> GpuSelection {
        GpuSelection {
            adapter: self.adapter.clone(),
            backend: self.backend.clone(),
        }
    }
}

#[derive(Args, Clone, Debug)]
pub struct DeviceArgs {
    /// auto: a GPU adapter when one exists, else the CPU backend; gpu: a GPU adapter or an error; cpu.
    #[arg(long, env = "PTYCHO_DEVICE", default_value = "auto")]
    pub device: DeviceChoice,
    #[command(flatten)]
    pub adapter: AdapterArgs,
}

impl DeviceArgs {
    /// Open the backend, printing the fallback notice (if any) to stderr.
    pub fn open(&self) -> anyhow::Result<AnyBackend> {
        let (backend, notice) = open_backend(self.device, &self.adapter.selection())?;
        if let Some(notice) = notice {
            eprintln!("note: {notice}");
        }
        Ok(backend)
    }
}

/// Run a backend-generic expression on whichever backend was opened.
macro_rules! with_backend {
    ($any:expr, $b:ident => $body:expr) => {
        match $any {
            ptycho_kernels::AnyBackend::Gpu($b) => $body,
            ptycho_kernels::AnyBackend::Cpu($b) => $body,
        }
    };
}
pub(crate) use with_backend;
