//! criterion benches of the kernels on the CPU backend and, when an adapter exists, the GPU backend.
//! Each GPU iteration records the op and waits for it, so times include one submission.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use ptycho_wgpu::kernels::cpu::CpuBackend;
use ptycho_wgpu::kernels::gpu::{GpuBackend, GpuSelection};
use ptycho_wgpu::kernels::rng::SplitMix64;
use ptycho_wgpu::kernels::{Backend, FftDirection, FftShift};

const BATCH: usize = 64;

fn bench_backend<B: Backend>(c: &mut Criterion, label: &str, backend: &B) {
    let mut group = c.benchmark_group(format!("fft2/{label}"));
    for n in [32, 64, 128, 256] {
        let host = SplitMix64::new(n as u64).complex_vec(BATCH * n * n);
        let x = backend.upload_c64(&[BATCH, n, n], &host).unwrap();
        group.throughput(Throughput::Elements(BATCH as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |bench, _| {
            bench.iter(|| {
                let y = backend
                    .fft2(&x, FftDirection::Forward, FftShift::OUTPUT)
                    .unwrap();
                backend.synchronize().unwrap();
                y
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group(format!("elementwise/{label}"));
    let n = 64;
    let host = SplitMix64::new(1).complex_vec(BATCH * n * n);
    let x = backend.upload_c64(&[BATCH, n, n], &host).unwrap();
    let probe = backend.upload_c64(&[n, n], &host[..n * n]).unwrap();
    group.throughput(Throughput::Bytes((BATCH * n * n * 8) as u64));
    group.bench_function("mul_broadcast_probe", |bench| {
        bench.iter(|| {
            let y = backend.mul(&x, &probe).unwrap();
            backend.synchronize().unwrap();
            y
        })
    });
    group.bench_function("abs", |bench| {
        bench.iter(|| {
            let y = backend.abs(&x).unwrap();
            backend.synchronize().unwrap();
            y
        })
    });
    group.bench_function("copy", |bench| {
        bench.iter(|| {
            let y = backend.copy(&x).unwrap();
            backend.synchronize().unwrap();
            y
        })
    });
    group.finish();
}

fn kernels(c: &mut Criterion) {
    bench_backend(c, "cpu", &CpuBackend::new());
    match GpuBackend::new(&GpuSelection::from_env()) {
        Ok(gpu) => bench_backend(c, "gpu", &gpu),
        Err(e) => eprintln!("skipping GPU benches: {e}"),
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = kernels
}
criterion_main!(benches);
