//! The network layers on every backend: activations and their derivatives by finite differences, max
//! pooling (first maximum wins, gradient routed to it), upsampling, channel slices, padding, the complex
//! combination, the layout transposes; adjoint identities of the linear ones; GPU against CPU.

use crate::common;
use ptycho_kernels::backend_tests;

use ptycho_kernels::cpu::CpuBackend;
use ptycho_kernels::ops::layers::Activation;
use ptycho_kernels::rng::SplitMix64;
use ptycho_kernels::{Backend, Complex32};

const ACTIVATIONS: [Activation; 5] = [
    Activation::Relu,
    Activation::Sigmoid,
    Activation::ScaledTanh(std::f32::consts::PI),
    Activation::Swish,
    Activation::Softplus,
];

fn activations_and_derivatives<B: Backend>(b: &B) {
    let x: Vec<f32> = (0..64).map(|i| -8.0 + 0.25 * i as f32 + 0.01).collect();
    let g: Vec<f32> = (0..64).map(|i| 1.0 + 0.1 * (i % 5) as f32).collect();
    let xt = b.upload_f32(&[4, 4, 2, 2], &x).unwrap();
    let gt = b.upload_f32(&[4, 4, 2, 2], &g).unwrap();
    for kind in ACTIVATIONS {
        let y = b.download_f32(&b.activation(kind, &xt).unwrap()).unwrap();
        let gx = b
            .download_f32(&b.activation_backward(kind, &xt, &gt).unwrap())
            .unwrap();
        for i in 0..x.len() {
            let v = x[i] as f64;
            let expected = match kind {
                Activation::Relu => v.max(0.0),
                Activation::Sigmoid => 1.0 / (1.0 + (-v).exp()),
                Activation::ScaledTanh(s) => s as f64 * v.tanh(),
                Activation::Swish => v / (1.0 + (-v).exp()),
                Activation::Softplus => (1.0 + v.exp()).ln(),
            };
            assert!(
                (y[i] as f64 - expected).abs() < 1e-5 * expected.abs().max(1.0),
                "{kind:?}({v})"
            );
            let eps = 1e-3;
            let f = |t: f64| match kind {
                Activation::Relu => t.max(0.0),
                Activation::Sigmoid => 1.0 / (1.0 + (-t).exp()),
                Activation::ScaledTanh(s) => s as f64 * t.tanh(),
                Activation::Swish => t / (1.0 + (-t).exp()),
                Activation::Softplus => (1.0 + t.exp()).ln(),
            };
            let fd = g[i] as f64 * (f(v + eps) - f(v - eps)) / (2.0 * eps);
            assert!(
                (gx[i] as f64 - fd).abs() < 1e-4 * fd.abs().max(1.0),
                "{kind:?}'({v}): {} vs {fd}",
                gx[i]
            );
        }
    }
}

fn max_pool_routes_to_the_first_maximum<B: Backend>(b: &B) {
    // One 4 x 4 image, one channel: windows with a tie (first wins), a maximum that rises twice
    // (bottom left) and distinct values.
    let x = [
        1.0, 5.0, 2.0, 2.0, //
        3.0, 5.0, 2.0, 2.0, //
        0.0, -1.0, 7.0, 1.0, //
        2.0, 4.0, 1.0, 8.0,
    ];
    let xt = b.upload_f32(&[1, 4, 4, 1], &x).unwrap();
    let pooled = b.download_f32(&b.max_pool2(&xt).unwrap()).unwrap();
    assert_eq!(pooled, [5.0, 2.0, 4.0, 8.0]);
    let g = b
        .upload_f32(&[1, 2, 2, 1], &[10.0, 20.0, 30.0, 40.0])
        .unwrap();
    let gx = b
        .download_f32(&b.max_pool2_backward(&xt, &g).unwrap())
        .unwrap();
    assert_eq!(
        gx,
        [
            0.0, 10.0, 20.0, 0.0, //
            0.0, 0.0, 0.0, 0.0, //
            0.0, 0.0, 0.0, 0.0, //
            0.0, 30.0, 0.0, 40.0,
        ]
    );
    // The same windows in each of 37 channels (vector lanes and a remainder), scaled per channel.
    let channels = 37;
    let scaled = |v: &[f32]| -> Vec<f32> {
        v.iter()
            .flat_map(|&v| (0..channels).map(move |ch| v * (1.0 + ch as f32)))
            .collect()
    };
    let xt = b.upload_f32(&[1, 4, 4, channels], &scaled(&x)).unwrap();
    let g = b
        .upload_f32(&[1, 2, 2, channels], &scaled(&[10.0, 20.0, 30.0, 40.0]))
        .unwrap();
    let gx = b
        .download_f32(&b.max_pool2_backward(&xt, &g).unwrap())
        .unwrap();
    let expected = scaled(&[
        0.0, 10.0, 20.0, 0.0, //
        0.0, 0.0, 0.0, 0.0, //
        0.0, 0.0, 0.0, 0.0, //
        0.0, 30.0, 0.0, 40.0,
    ]);
    assert_eq!(gx, expected);
}

/// The pool's gradient through the ReLU that produced x equals the two passes, exactly: windows
/// whose maximum is 0 (ties of zeros) or negative pass nothing back.
fn max_pool_through_relu_equals_the_two_passes<B: Backend>(b: &B) {
    let (n, h, w, c) = (2, 8, 6, 21);
    let mut rng = SplitMix64::new(17);
    let x: Vec<f32> = rng
        .real_vec(n * h * w * c)
        .into_iter()
        .map(|v| if v < 0.2 { 0.0 } else { v })
        .collect();
    let x = b.upload_f32(&[n, h, w, c], &x).unwrap();
    let g = rng.real_vec(n * h / 2 * w / 2 * c);
    let g = b.upload_f32(&[n, h / 2, w / 2, c], &g).unwrap();
    let fused = b
        .download_f32(&b.max_pool2_backward_relu(&x, &g).unwrap())
        .unwrap();
    let plain = b.max_pool2_backward(&x, &g).unwrap();
    let separate = b.activation_backward(Activation::Relu, &x, &plain).unwrap();
    let plain = b.download_f32(&plain).unwrap();
    assert_eq!(fused, b.download_f32(&separate).unwrap());
    let zeroed = fused
        .iter()
        .zip(&plain)
        .filter(|(f, p)| **f == 0.0 && **p != 0.0);
    assert!(zeroed.count() > 0, "some windows hold only zeros");
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
}

/// <op(x), y> = <x, op_backward(y)> for the linear layers.
fn linear_layers_are_adjoint<B: Backend>(b: &B) {
    let mut rng = SplitMix64::new(5);
    let shape = [2, 6, 4, 5];
    let n: usize = shape.iter().product();
    let x = rng.real_vec(n);
    let xt = b.upload_f32(&shape, &x).unwrap();
    let check = |name: &str, fx: Vec<f32>, y: Vec<f32>, bty: Vec<f32>| {
        let (l, r) = (dot(&fx, &y), dot(&x, &bty));
        assert!(
            (l - r).abs() < 1e-5 * l.abs().max(1.0),
            "{name}: {l} vs {r}"
        );
    };
    let mut rng2 = SplitMix64::new(6);
    // Upsampling.
    let up = b.upsample2(&xt).unwrap();
    assert_eq!(up.shape(), [2, 12, 8, 5]);
    let y = rng2.real_vec(up.len());
    let bty = b
        .upsample2_backward(&b.upload_f32(up.shape(), &y).unwrap())
        .unwrap();
    check(
        "upsample",
        b.download_f32(&up).unwrap(),
        y,
        b.download_f32(&bty).unwrap(),
    );
    // Channel slice.
    let sl = b.slice_channels(&xt, 1, 3).unwrap();
    assert_eq!(sl.shape(), [2, 6, 4, 3]);
    let y = rng2.real_vec(sl.len());
    let bty = b
        .slice_channels_backward(&b.upload_f32(sl.shape(), &y).unwrap(), 1, 5)
        .unwrap();
    check(
        "slice",
        b.download_f32(&sl).unwrap(),
        y,
        b.download_f32(&bty).unwrap(),
    );
    // Padding and its transpose, the crop.
    let pd = b.pad_spatial(&xt, 3).unwrap();
    assert_eq!(pd.shape(), [2, 12, 10, 5]);
    let y = rng2.real_vec(pd.len());
    let bty = b
        .crop_spatial(&b.upload_f32(pd.shape(), &y).unwrap(), 3)
        .unwrap();
    check(
        "pad",
        b.download_f32(&pd).unwrap(),
        y,
        b.download_f32(&bty).unwrap(),
    );
    assert_eq!(
        b.download_f32(&b.crop_spatial(&pd, 3).unwrap()).unwrap(),
        x,
        "crop undoes pad"
    );
    // Layout transposes: exact inverses, and each other's adjoint.
    let cf = b.to_channels_first(&xt).unwrap();
    assert_eq!(cf.shape(), [2, 5, 6, 4]);
    let host_cf = b.download_f32(&cf).unwrap();
    assert_eq!(
        host_cf[(6 + 2) * 4 + 3],
        x[((2 * 4) + 3) * 5 + 1],
        "(b0, c1, y2, x3)"
    );
    assert_eq!(
        b.download_f32(&b.to_channels_last(&cf).unwrap()).unwrap(),
        x
    );
}

/// O = A e^{iφ}: values, and finite differences of Σ Re(conj(G) O) in A and φ against the backward.
fn complex_combination<B: Backend>(b: &B) {
    let mut rng = SplitMix64::new(8);
    let (bb, h, w, c) = (2, 3, 4, 2);
    let n = bb * h * w * c;
    let amp = rng.real_vec(n);
    let phase = rng.real_vec(n);
    let g = rng.complex_vec(n);
    let at = b.upload_f32(&[bb, h, w, c], &amp).unwrap();
    let pt = b.upload_f32(&[bb, h, w, c], &phase).unwrap();
    let o = b.combine_complex(&at, &pt).unwrap();
    assert_eq!(o.shape(), [bb, c, h, w]);
    let ov = b.download_c64(&o).unwrap();
    // (b1, c1, y2, x3) comes from NHWC (b1, y2, x3, c1).
    let j = ((h + 2) * w + 3) * c + 1;
    let k = ((c + 1) * h + 2) * w + 3;
    assert!((ov[k] - Complex32::from_polar(amp[j], phase[j])).norm() < 1e-6);
    let (ga, gp) = b
        .combine_complex_backward(&at, &pt, &b.upload_c64(o.shape(), &g).unwrap())
        .unwrap();
    let (ga, gp) = (b.download_f32(&ga).unwrap(), b.download_f32(&gp).unwrap());
    let loss = |a: &[f32], p: &[f32]| -> f64 {
        let o = b
            .download_c64(
                &b.combine_complex(
                    &b.upload_f32(&[bb, h, w, c], a).unwrap(),
                    &b.upload_f32(&[bb, h, w, c], p).unwrap(),
                )
                .unwrap(),
            )
            .unwrap();
        o.iter()
            .zip(&g)
            .map(|(o, g)| o.re as f64 * g.re as f64 + o.im as f64 * g.im as f64)
            .sum()
    };
    let eps = 1e-2;
    for j in [0, 7, n - 1] {
        let (mut ap, mut am) = (amp.clone(), amp.clone());
        ap[j] += eps;
        am[j] -= eps;
        let fd = (loss(&ap, &phase) - loss(&am, &phase)) / (2.0 * eps as f64);
        assert!(
            (fd - ga[j] as f64).abs() < 1e-3,
            "∂/∂amp[{j}]: {fd} vs {}",
            ga[j]
        );
        let (mut pp, mut pm) = (phase.clone(), phase.clone());
        pp[j] += eps;
        pm[j] -= eps;
        let fd = (loss(&amp, &pp) - loss(&amp, &pm)) / (2.0 * eps as f64);
        assert!(
            (fd - gp[j] as f64).abs() < 1e-3,
            "∂/∂φ[{j}]: {fd} vs {}",
            gp[j]
        );
    }
}

fn bad_shapes_are_errors<B: Backend>(b: &B) {
    let odd = b.upload_f32(&[1, 3, 4, 1], &[0.0; 12]).unwrap();
    assert!(b
        .max_pool2(&odd)
        .err()
        .unwrap()
        .to_string()
        .contains("even"));
    let x = b.upload_f32(&[1, 4, 4, 2], &[0.0; 32]).unwrap();
    assert!(b.slice_channels(&x, 1, 2).is_err());
    assert!(b.crop_spatial(&x, 2).is_err());
    let g = b.upload_f32(&[1, 4, 4, 3], &[0.0; 48]).unwrap();
    assert!(b.activation_backward(Activation::Relu, &x, &g).is_err());
    assert!(b.add_real(&x, &g).is_err());
    let sum = b.add_real(&x, &x).unwrap();
    assert_eq!(b.download_f32(&sum).unwrap(), vec![0.0; 32]);
}

backend_tests!(
    activations_and_derivatives,
    max_pool_routes_to_the_first_maximum,
    max_pool_through_relu_equals_the_two_passes,
    linear_layers_are_adjoint,
    complex_combination,
    bad_shapes_are_errors,
);

fn interleaved(v: Vec<Complex32>) -> Vec<f32> {
    v.iter().flat_map(|c| [c.re, c.im]).collect()
}

#[test]
fn gpu_matches_cpu_on_every_layer() {
    let Some(gpu) = common::gpu() else { return };
    let cpu = CpuBackend::new();
    let mut rng = SplitMix64::new(12);
    let shape = [3, 8, 6, 7];
    let n: usize = shape.iter().product();
    let (x, g) = (rng.real_vec(n), rng.real_vec(n));
    fn all<B: Backend>(b: &B, shape: &[usize], x: &[f32], g: &[f32]) -> Vec<Vec<f32>> {
        let xt = b.upload_f32(shape, x).unwrap();
        let gt = b.upload_f32(shape, g).unwrap();
        let mut out = Vec::new();
        for kind in ACTIVATIONS {
            out.push(b.download_f32(&b.activation(kind, &xt).unwrap()).unwrap());
            out.push(
                b.download_f32(&b.activation_backward(kind, &xt, &gt).unwrap())
                    .unwrap(),
            );
        }
        let pooled = b.max_pool2(&xt).unwrap();
        out.push(b.download_f32(&pooled).unwrap());
        let gp = b.max_pool2(&gt).unwrap();
        out.push(
            b.download_f32(&b.max_pool2_backward(&xt, &gp).unwrap())
                .unwrap(),
        );
        out.push(b.download_f32(&b.upsample2(&xt).unwrap()).unwrap());
        out.push(b.download_f32(&b.upsample2_backward(&xt).unwrap()).unwrap());
        out.push(b.download_f32(&b.pad_spatial(&xt, 2).unwrap()).unwrap());
        out.push(b.download_f32(&b.add_real(&xt, &gt).unwrap()).unwrap());
        let combined = b.combine_complex(&xt, &gt).unwrap();
        out.push(interleaved(b.download_c64(&combined).unwrap()));
        // A gradient unrelated to the output (the output itself would give a zero phase gradient).
        let grad = SplitMix64::new(13).complex_vec(combined.len());
        let grad = b.upload_c64(combined.shape(), &grad).unwrap();
        let (ga, gph) = b.combine_complex_backward(&xt, &gt, &grad).unwrap();
        out.push(b.download_f32(&ga).unwrap());
        out.push(b.download_f32(&gph).unwrap());
        out
    }
    let g_out = all(gpu, &shape, &x, &g);
    let c_out = all(&cpu, &shape, &x, &g);
    for (k, (a, c)) in g_out.iter().zip(&c_out).enumerate() {
        assert_eq!(a.len(), c.len());
        let num: f64 = a.iter().zip(c).map(|(p, q)| ((p - q) as f64).powi(2)).sum();
        let den: f64 = c.iter().map(|q| (*q as f64).powi(2)).sum();
        assert!(
            (num / den.max(1e-30)).sqrt() < 1e-5,
            "output {k}: {:.2e}",
            (num / den).sqrt()
        );
    }
}
