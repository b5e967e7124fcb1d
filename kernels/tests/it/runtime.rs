//! The GPU runtime: recording into one submission, the buffer pool and its ordering, adapter choice.

use crate::common;

use ptycho_kernels::gpu::context::{choose_adapter, parse_backends};
use ptycho_kernels::gpu::GpuSelection;
use ptycho_kernels::rng::SplitMix64;
use ptycho_kernels::{
    open_backend, AnyBackend, Backend, Complex32, DeviceChoice, FftDirection, FftShift, KernelError,
};

#[test]
fn many_ops_go_into_one_submission() {
    let Some(gpu) = common::gpu() else { return };
    let n = 32;
    let x = SplitMix64::new(1).complex_vec(4 * n * n);
    let probe = SplitMix64::new(2).complex_vec(n * n);
    gpu.synchronize().unwrap();
    let before = gpu.stats();
    let t = gpu.upload_c64(&[4, n, n], &x).unwrap();
    let p = gpu.upload_c64(&[n, n], &probe).unwrap();
    let psi = gpu.mul(&t, &p).unwrap();
    let f = gpu
        .fft2(&psi, FftDirection::Forward, FftShift::OUTPUT)
        .unwrap();
    let a = gpu.abs(&f).unwrap();
    let _ = gpu.download_f32(&a).unwrap();
    let after = gpu.stats();
    // Other tests share this device, so count at least our own four dispatches and at most a few
    // submissions; alone, this is 1 submission.
    assert!(after.dispatches - before.dispatches >= 4);
    assert!(after.submissions > before.submissions);
}

/// A buffer released while earlier work that reads it is still only recorded, then refilled by an
/// upload, must not change what that earlier work reads.
#[test]
fn recycled_buffers_keep_recorded_work_correct() {
    let Some(gpu) = common::gpu() else { return };
    let first = vec![Complex32::new(1.0, 2.0); 4096];
    let second = vec![Complex32::new(-7.0, 0.5); 4096];
    let a = gpu.upload_c64(&[4096], &first).unwrap();
    let doubled = gpu.scale(&a, 2.0).unwrap();
    drop(a);
    let b = gpu.upload_c64(&[4096], &second).unwrap();
    let tripled = gpu.scale(&b, 3.0).unwrap();
    assert!(gpu
        .download_c64(&doubled)
        .unwrap()
        .iter()
        .all(|v| *v == Complex32::new(2.0, 4.0)));
    assert!(gpu
        .download_c64(&tripled)
        .unwrap()
        .iter()
        .all(|v| *v == Complex32::new(-21.0, 1.5)));
}

#[test]
fn backend_names_parse_and_unknown_ones_are_errors() {
    assert_eq!(
        parse_backends(Some("Vulkan")).unwrap(),
        wgpu::Backends::VULKAN
    );
    assert_eq!(parse_backends(Some("gl")).unwrap(), wgpu::Backends::GL);
    assert_eq!(parse_backends(None).unwrap(), wgpu::Backends::all());
    let err = parse_backends(Some("cuda")).unwrap_err();
    assert!(
        err.to_string().contains("unknown wgpu backend 'cuda'"),
        "{err}"
    );
}

/// Metal never exists on Linux: this is the no-adapter path of every machine without a GPU.
#[cfg(target_os = "linux")]
#[test]
fn no_adapter_error_says_how_to_get_one() {
    let selection = GpuSelection {
        adapter: None,
        backend: Some("metal".into()),
    };
    let err = choose_adapter(&selection).unwrap_err();
    assert!(matches!(err, KernelError::NoAdapter { .. }));
    let message = err.to_string();
    assert!(
        message.contains("mesa-vulkan-drivers") && message.contains("--device cpu"),
        "{message}"
    );

    let (backend, notice) = open_backend(DeviceChoice::Auto, &selection).unwrap();
    assert!(matches!(backend, AnyBackend::Cpu(_)));
    assert!(notice.unwrap().contains("running on the CPU backend"));
    assert!(open_backend(DeviceChoice::Gpu, &selection).is_err());
}

#[test]
fn unknown_adapter_lists_the_available_ones() {
    if common::gpu().is_none() {
        return;
    }
    let selection = GpuSelection {
        adapter: Some("no-such-adapter-xyz".into()),
        backend: None,
    };
    let err = choose_adapter(&selection).unwrap_err();
    assert!(matches!(err, KernelError::AdapterNotFound { .. }), "{err}");
    assert!(err.to_string().contains("[0]"), "{err}");
    let by_index = GpuSelection {
        adapter: Some("0".into()),
        backend: None,
    };
    assert_eq!(choose_adapter(&by_index).unwrap().0, 0);
}

#[test]
fn device_choice_parses() {
    assert_eq!("AUTO".parse::<DeviceChoice>().unwrap(), DeviceChoice::Auto);
    assert_eq!("cpu".parse::<DeviceChoice>().unwrap(), DeviceChoice::Cpu);
    assert!("tpu"
        .parse::<DeviceChoice>()
        .unwrap_err()
        .to_string()
        .contains("expected auto, gpu or cpu"));
}

#[test]
fn pool_recycles_buffers() {
    let Some(gpu) = common::gpu() else { return };
    let x = vec![Complex32::default(); 3 * 1024 * 1024 + 5];
    let t = gpu.upload_c64(&[x.len()], &x).unwrap();
    let shape = t.shape().to_vec();
    drop(t);
    // The 24 MiB class is idle now; taking the same size again must reuse it, not grow the pool.
    assert!(gpu.pooled_bytes() >= 32 << 20);
    let idle = gpu.pooled_bytes();
    let again = gpu.upload_c64(&shape, &x).unwrap();
    assert!(gpu.pooled_bytes() < idle);
    drop(again);
}
