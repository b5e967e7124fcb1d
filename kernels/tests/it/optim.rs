//! Adam on every backend against an f64 transcription of Keras 3's update, over several steps.

use ptycho_kernels::backend_tests;

use ptycho_kernels::ops::optim::AdamConfig;
use ptycho_kernels::rng::SplitMix64;
use ptycho_kernels::Backend;

fn adam_matches_keras<B: Backend>(b: &B) {
    let config = AdamConfig::default();
    let n = 1000;
    let mut rng = SplitMix64::new(3);
    let start = rng.real_vec(n);
    let target = rng.real_vec(n);
    let mut p = b.upload_f32(&[10, 100], &start).unwrap();
    let mut m = b.upload_f32(&[10, 100], &vec![0.0; n]).unwrap();
    let mut v = b.upload_f32(&[10, 100], &vec![0.0; n]).unwrap();
    let (mut rp, mut rm, mut rv): (Vec<f64>, Vec<f64>, Vec<f64>) = (
        start.iter().map(|&x| x as f64).collect(),
        vec![0.0; n],
        vec![0.0; n],
    );
    for step in 1..=20u64 {
        // The gradient of ½|p − target|², evaluated at the device's parameters.
        let current = b.download_f32(&p).unwrap();
        let g: Vec<f32> = current.iter().zip(&target).map(|(p, t)| p - t).collect();
        let gt = b.upload_f32(&[10, 100], &g).unwrap();
        b.adam_update(&config, step, &mut p, &gt, &mut m, &mut v)
            .unwrap();
        let alpha = config.learning_rate * (1.0 - config.beta2.powi(step as i32)).sqrt()
            / (1.0 - config.beta1.powi(step as i32));
        for i in 0..n {
            let g = g[i] as f64;
            rm[i] += (g - rm[i]) * (1.0 - config.beta1);
            rv[i] += (g * g - rv[i]) * (1.0 - config.beta2);
            rp[i] -= alpha * rm[i] / (rv[i].sqrt() + config.epsilon);
        }
    }
    let got = b.download_f32(&p).unwrap();
    for i in 0..n {
        assert!(
            (got[i] as f64 - rp[i]).abs() < 1e-5,
            "parameter {i}: {} vs {}",
            got[i],
            rp[i]
        );
    }
    // Each step moves a parameter by about the learning rate while the gradient keeps its sign.
    let moved = (start[0] as f64 - got[0] as f64).abs();
    assert!(moved > 0.0 && moved <= 20.0 * 1.01e-3, "{moved}");
    assert!((config.alpha(1) - 1e-3 * 0.001f64.sqrt() / 0.1).abs() < 1e-15);
}

fn shapes_must_agree<B: Backend>(b: &B) {
    let mut p = b.upload_f32(&[4], &[0.0; 4]).unwrap();
    let g = b.upload_f32(&[5], &[0.0; 5]).unwrap();
    let mut m = b.upload_f32(&[4], &[0.0; 4]).unwrap();
    let mut v = b.upload_f32(&[4], &[0.0; 4]).unwrap();
    let err = b
        .adam_update(&AdamConfig::default(), 1, &mut p, &g, &mut m, &mut v)
        .err()
        .unwrap();
    assert!(err.to_string().contains("[4]"), "{err}");
}

backend_tests!(adam_matches_keras, shapes_must_agree);
