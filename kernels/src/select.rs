//! `--device auto|gpu|cpu`: which backend a command runs on.

use std::str::FromStr;

use crate::cpu::CpuBackend;
use crate::gpu::context::choose_adapter;
use crate::gpu::{GpuBackend, GpuSelection};
use crate::{KernelError, Result};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeviceChoice {
    /// A GPU adapter when wgpu finds one, else the CPU backend.
    #[default]
    Auto,
    /// A GPU adapter or an error that says how to get one.
    Gpu,
    Cpu,
}

impl FromStr for DeviceChoice {
    type Err = KernelError;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "gpu" => Ok(Self::Gpu),
            "cpu" => Ok(Self::Cpu),
            other => Err(KernelError::UnknownDevice(other.to_string())),
        }
    }
}

/// The backend a command opened. Not boxed: there is one per process.
#[allow(clippy::large_enum_variant)]
pub enum AnyBackend {
    Gpu(GpuBackend),
    Cpu(CpuBackend),
}

/// Open the backend `choice` asks for, with the one-line notice to show the user when `Auto` chose
/// the CPU backend: when there is no usable adapter, and when the preferred one is a software
/// rasteriser (lavapipe, llvmpipe, WARP), which trains many times slower than the CPU backend on the
/// same cores. An adapter named with `--adapter`, or `--device gpu`, is used whatever its kind.
pub fn open_backend(
    choice: DeviceChoice,
    selection: &GpuSelection,
) -> Result<(AnyBackend, Option<String>)> {
    match choice {
        DeviceChoice::Cpu => Ok((AnyBackend::Cpu(CpuBackend::new()), None)),
        DeviceChoice::Gpu => Ok((AnyBackend::Gpu(GpuBackend::new(selection)?), None)),
        DeviceChoice::Auto => {
            let chosen = choose_adapter(selection).and_then(|(index, adapter)| {
                let info = adapter.get_info();
                if info.device_type == wgpu::DeviceType::Cpu && selection.adapter.is_none() {
                    return Ok(Err(info.name));
                }
                GpuBackend::from_adapter(index, adapter).map(Ok)
            });
            match chosen {
                Ok(Ok(gpu)) => Ok((AnyBackend::Gpu(gpu), None)),
                Ok(Err(software)) => Ok((
                    AnyBackend::Cpu(CpuBackend::new()),
                    Some(format!(
                        "the best GPU adapter found is {software}, a software one, slower than the CPU \
                         backend; running on the CPU backend (--device gpu uses it anyway)"
                    )),
                )),
                Err(e @ (KernelError::UnknownBackend(_) | KernelError::AdapterNotFound { .. })) => {
                    Err(e)
                }
                Err(e) => Ok((
                    AnyBackend::Cpu(CpuBackend::new()),
                    Some(format!("no GPU in use ({e}); running on the CPU backend")),
                )),
            }
        }
    }
}
