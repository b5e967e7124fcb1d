//! `--device auto|gpu|cpu`: which backend a command runs on.

use std::str::FromStr;

use crate::cpu::CpuBackend;
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

/// Open the backend `choice` asks for. With `Auto` and no usable adapter, falls back to the CPU
/// backend and returns the one-line notice to show the user.
pub fn open_backend(
    choice: DeviceChoice,
    selection: &GpuSelection,
) -> Result<(AnyBackend, Option<String>)> {
    match choice {
        DeviceChoice::Cpu => Ok((AnyBackend::Cpu(CpuBackend::new()), None)),
        DeviceChoice::Gpu => Ok((AnyBackend::Gpu(GpuBackend::new(selection)?), None)),
        DeviceChoice::Auto => match GpuBackend::new(selection) {
            Ok(gpu) => Ok((AnyBackend::Gpu(gpu), None)),
            Err(e @ (KernelError::UnknownBackend(_) | KernelError::AdapterNotFound { .. })) => {
                Err(e)
            }
            Err(e) => Ok((
                AnyBackend::Cpu(CpuBackend::new()),
                Some(format!("no GPU in use ({e}); running on the CPU backend")),
            )),
        },
    }
}
