//! Complex elementwise ops on every backend against scalar formulas, and GPU against CPU.

use crate::common;
use ptycho_kernels::backend_tests;

use ptycho_kernels::rng::SplitMix64;
use ptycho_kernels::{Backend, Complex32, Dtype, KernelError};

fn close(a: Complex32, b: Complex32) -> bool {
    (a - b).norm() <= 1e-6 * (1.0 + b.norm())
}

fn inputs(len: usize, seed: u64) -> (Vec<Complex32>, Vec<Complex32>) {
    let mut rng = SplitMix64::new(seed);
    (rng.complex_vec(len), rng.complex_vec(len))
}

fn binary_ops_match_formulas<B: Backend>(b: &B) {
    // 1000 is not a multiple of the elements per invocation or the workgroup: exercises the tail.
    let (x, y) = inputs(1000, 1);
    let (tx, ty) = (
        b.upload_c64(&[10, 100], &x).unwrap(),
        b.upload_c64(&[10, 100], &y).unwrap(),
    );
    type Reference = Box<dyn Fn(Complex32, Complex32) -> Complex32>;
    let cases: [(&str, Reference); 3] = [
        ("mul", Box::new(|p, q| p * q)),
        ("mul_conj", Box::new(|p, q| p * q.conj())),
        ("add", Box::new(|p, q| p + q)),
    ];
    for (name, f) in cases {
        let out = match name {
            "mul" => b.mul(&tx, &ty),
            "mul_conj" => b.mul_conj(&tx, &ty),
            _ => b.add(&tx, &ty),
        }
        .unwrap();
        assert_eq!(out.shape(), &[10, 100]);
        let got = b.download_c64(&out).unwrap();
        for i in 0..x.len() {
            assert!(
                close(got[i], f(x[i], y[i])),
                "{name}[{i}]: {} vs {}",
                got[i],
                f(x[i], y[i])
            );
        }
    }
}

fn shared_factor_broadcasts_over_the_batch<B: Backend>(b: &B) {
    let (n, batch) = (32, 5);
    let (x, _) = inputs(batch * 2 * n * n, 2);
    let (probe, _) = inputs(n * n, 3);
    let tx = b.upload_c64(&[batch, 2, n, n], &x).unwrap();
    let tp = b.upload_c64(&[n, n], &probe).unwrap();
    let got = b.download_c64(&b.mul(&tx, &tp).unwrap()).unwrap();
    for i in 0..x.len() {
        assert!(close(got[i], x[i] * probe[i % (n * n)]), "element {i}");
    }
}

fn scale_abs_and_abs2_match_formulas<B: Backend>(b: &B) {
    let (x, _) = inputs(777, 4);
    let t = b.upload_c64(&[777], &x).unwrap();
    let scaled = b.download_c64(&b.scale(&t, -2.5).unwrap()).unwrap();
    let abs = b.abs(&t).unwrap();
    assert_eq!(abs.dtype(), Dtype::F32);
    let abs = b.download_f32(&abs).unwrap();
    let abs2 = b.download_f32(&b.abs2(&t).unwrap()).unwrap();
    let copied = b.download_c64(&b.copy(&t).unwrap()).unwrap();
    for i in 0..x.len() {
        assert!(close(scaled[i], x[i] * -2.5));
        assert!((abs[i] - x[i].norm()).abs() <= 1e-6);
        assert!((abs2[i] - x[i].norm_sqr()).abs() <= 1e-6);
        assert_eq!(copied[i], x[i]);
    }
}

fn copy_keeps_real_tensors_exact<B: Backend>(b: &B) {
    let x = SplitMix64::new(5).real_vec(13);
    let t = b.upload_f32(&[13], &x).unwrap();
    let c = b.copy(&t).unwrap();
    assert_eq!(c.dtype(), Dtype::F32);
    assert_eq!(b.download_f32(&c).unwrap(), x);
}

fn empty_tensors_work<B: Backend>(b: &B) {
    let t = b.upload_c64(&[0, 32, 32], &[]).unwrap();
    assert!(b.download_f32(&b.abs(&t).unwrap()).unwrap().is_empty());
    assert!(b
        .download_c64(&b.scale(&t, 2.0).unwrap())
        .unwrap()
        .is_empty());
}

fn bad_shapes_and_dtypes_are_clear_errors<B: Backend>(b: &B) {
    let a = b
        .upload_c64(&[2, 3, 4], &[Complex32::default(); 24])
        .unwrap();
    let wrong = b.upload_c64(&[3, 3], &[Complex32::default(); 9]).unwrap();
    let err = b.mul(&a, &wrong).unwrap_err();
    assert!(
        err.to_string()
            .contains("mul: expected b with shape [2, 3, 4]"),
        "{err}"
    );
    let real = b.upload_f32(&[3, 4], &[0.0; 12]).unwrap();
    assert!(matches!(
        b.add(&a, &real).unwrap_err(),
        KernelError::Dtype { op: "add", .. }
    ));
    assert!(matches!(
        b.abs(&real).unwrap_err(),
        KernelError::Dtype { op: "abs", .. }
    ));
    assert!(matches!(
        b.download_c64(&real).unwrap_err(),
        KernelError::Dtype { .. }
    ));
    let err = b
        .upload_c64(&[2, 2], &[Complex32::default(); 3])
        .unwrap_err();
    assert!(err.to_string().contains("needs 4 values, got 3"), "{err}");
}

fn real_scale_and_modulus_gradient<B: Backend>(b: &B) {
    let mut rng = SplitMix64::new(8);
    let (a, g) = (rng.complex_vec(300), rng.real_vec(300));
    let mut a = a;
    a[7] = Complex32::default();
    let ta = b.upload_c64(&[300], &a).unwrap();
    let tg = b.upload_f32(&[300], &g).unwrap();
    let scaled = b.download_f32(&b.scale(&tg, 3.0).unwrap()).unwrap();
    assert!(scaled
        .iter()
        .zip(&g)
        .all(|(s, g)| (s - 3.0 * g).abs() < 1e-6));
    let grad = b
        .download_c64(&b.modulus_grad(&ta, &tg, 0.5).unwrap())
        .unwrap();
    for i in 0..300 {
        let expected = if i == 7 {
            Complex32::default()
        } else {
            a[i] * (0.5 * g[i] / a[i].norm())
        };
        assert!(close(grad[i], expected), "element {i}");
    }
    let err = b
        .modulus_grad(&ta, &b.upload_f32(&[3, 100], &g).unwrap(), 1.0)
        .unwrap_err();
    assert!(
        err.to_string().contains("a real operand of shape [300]"),
        "{err}"
    );
}

backend_tests!(
    real_scale_and_modulus_gradient,
    binary_ops_match_formulas,
    shared_factor_broadcasts_over_the_batch,
    scale_abs_and_abs2_match_formulas,
    copy_keeps_real_tensors_exact,
    empty_tensors_work,
    bad_shapes_and_dtypes_are_clear_errors,
);

#[test]
fn gpu_matches_cpu_backend() {
    let Some(gpu) = common::gpu() else { return };
    let cpu = ptycho_kernels::cpu::CpuBackend::new();
    let (x, y) = inputs(4 * 64 * 64, 6);
    let (gx, gy) = (
        gpu.upload_c64(&[4, 64, 64], &x).unwrap(),
        gpu.upload_c64(&[64, 64], &y[..4096]).unwrap(),
    );
    let (cx, cy) = (
        cpu.upload_c64(&[4, 64, 64], &x).unwrap(),
        cpu.upload_c64(&[64, 64], &y[..4096]).unwrap(),
    );
    let g = gpu.download_c64(&gpu.mul_conj(&gx, &gy).unwrap()).unwrap();
    let c = cpu.download_c64(&cpu.mul_conj(&cx, &cy).unwrap()).unwrap();
    assert!(g.iter().zip(&c).all(|(p, q)| close(*p, *q)));
    let g = gpu.download_f32(&gpu.abs(&gx).unwrap()).unwrap();
    let c = cpu.download_f32(&cpu.abs(&cx).unwrap()).unwrap();
    assert!(g.iter().zip(&c).all(|(p, q)| (p - q).abs() <= 1e-6));
}

/// A tensor past the adapter's binding limit is refused with the limit named, before any GPU work.
#[test]
fn gpu_oversized_tensors_are_clear_errors() {
    let Some(gpu) = common::gpu() else { return };
    let limit = gpu.limits().max_storage_buffer_binding_size as usize;
    if limit > 512 << 20 {
        eprintln!("skipping: binding limit {limit} bytes is too large to exceed cheaply in a test");
        return;
    }
    let len = limit / 8 + 1;
    let err = gpu
        .upload_c64(&[len], &vec![Complex32::default(); len])
        .unwrap_err();
    assert!(
        matches!(err, KernelError::TooLarge { op: "upload", .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("max_storage_buffer_binding_size"),
        "{err}"
    );
}
