//! Helpers for tests of this crate and of crates built on it.

use std::sync::OnceLock;

use crate::gpu::{GpuBackend, GpuSelection};

/// The GPU backend a test process shares, from PTYCHO_ADAPTER / PTYCHO_BACKEND. None, with the reason
/// printed, when there is no adapter; with PTYCHO_REQUIRE_GPU=1 (as in CI) that is a panic instead, so a
/// missing adapter fails the run rather than skipping the GPU tests.
pub fn shared_gpu() -> Option<&'static GpuBackend> {
    static GPU: OnceLock<Result<GpuBackend, String>> = OnceLock::new();
    match GPU.get_or_init(|| GpuBackend::new(&GpuSelection::from_env()).map_err(|e| e.to_string()))
    {
        Ok(gpu) => Some(gpu),
        Err(reason) => {
            if std::env::var("PTYCHO_REQUIRE_GPU").is_ok_and(|v| v == "1") {
                panic!("PTYCHO_REQUIRE_GPU=1 but no GPU backend could be opened: {reason}");
            }
            eprintln!("skipping GPU test: {reason}");
            None
        }
    }
}

/// Instantiate backend-generic test functions once per backend, as `cpu::name` and `gpu::name`: each
/// `fn name<B: Backend>(b: &B)` in scope runs on the CPU backend and on the shared GPU backend (which
/// skips with a printed reason when there is no adapter, and fails under PTYCHO_REQUIRE_GPU=1). For the
/// tests of every crate of the workspace.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod cpu {
            $(#[test]
            fn $name() {
                super::$name(&$crate::cpu::CpuBackend::new());
            })*
        }
        mod gpu {
            $(#[test]
            fn $name() {
                if let Some(gpu) = $crate::testing::shared_gpu() {
                    super::$name(gpu);
                }
            })*
        }
    };
}
