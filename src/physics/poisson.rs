//! Seeded Poisson draws for the simulator: inversion by sequential search for small means, and Hörmann's
//! transformed rejection with squeeze (PTRS, 1993) for means of 10 and more. Every draw comes from the
//! caller's generator, so a pattern's noise depends only on its own seed.

use ptycho_kernels::rng::SplitMix64;

/// Means below this use inversion; PTRS needs a mean of at least 10.
const INVERSION_LIMIT: f64 = 10.0;

/// One draw from Poisson(mean); mean must be finite and ≥ 0.
pub fn sample(rng: &mut SplitMix64, mean: f64) -> u64 {
    if mean <= 0.0 {
        0
    } else if mean < INVERSION_LIMIT {
        inversion(rng, mean)
    } else {
        transformed_rejection(rng, mean)
    }
}

fn inversion(rng: &mut SplitMix64, mean: f64) -> u64 {
    let u = rng.next_f64();
    let mut k = 0u64;
    let mut p = (-mean).exp();
    let mut cumulative = p;
    // The tail beyond k = 200 has probability below 1e-150 for means under 10.
    while u > cumulative && k < 200 {
        k += 1;
        p *= mean / k as f64;
        cumulative += p;
    }
    k
}

fn transformed_rejection(rng: &mut SplitMix64, mean: f64) -> u64 {
    let root = mean.sqrt();
    let log_mean = mean.ln();
    let b = 0.931 + 2.53 * root;
    let a = -0.059 + 0.02483 * b;
    let inv_alpha = 1.1239 + 1.1328 / (b - 3.4);
    let v_r = 0.9277 - 3.6224 / (b - 2.0);
    loop {
        let u = rng.next_f64() - 0.5;
        let v = rng.next_f64();
        let us = 0.5 - u.abs();
        let k = ((2.0 * a / us + b) * u + mean + 0.43).floor();
        if us >= 0.07 && v <= v_r {
            return k as u64;
        }
        if k < 0.0 || (us < 0.013 && v > us) {
            continue;
        }
        let log_accept = v.ln() + inv_alpha.ln() - (a / (us * us) + b).ln();
        if log_accept <= -mean + k * log_mean - ln_factorial(k) {
            return k as u64;
        }
    }
}

/// ln k! for an integer-valued k ≥ 0: exact sums below 10, Stirling's series above (error < 1e-12).
pub fn ln_factorial(k: f64) -> f64 {
    if k < 10.0 {
        return (2..=k as u64).map(|i| (i as f64).ln()).sum();
    }
    let x = k + 1.0;
    let inv = 1.0 / x;
    let inv2 = inv * inv;
    (x - 0.5) * x.ln() - x
        + 0.5 * (2.0 * std::f64::consts::PI).ln()
        + inv * (1.0 / 12.0 - inv2 * (1.0 / 360.0 - inv2 / 1260.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ln_factorial_matches_the_exact_sum() {
        for k in [0u64, 1, 5, 9, 10, 11, 20, 100, 1000] {
            let exact: f64 = (2..=k).map(|i| (i as f64).ln()).sum();
            let ours = ln_factorial(k as f64);
            assert!(
                (ours - exact).abs() < 1e-9 * exact.max(1.0),
                "{k}: {ours} vs {exact}"
            );
        }
    }

    /// Mean and variance within 5 standard errors, and a chi-square test of the histogram against the
    /// exact probabilities (bins with expected count ≥ 20).
    #[test]
    fn draws_follow_the_poisson_law() {
        for mean in [0.3f64, 2.5, 9.9, 10.0, 37.0, 2500.0] {
            let mut rng = SplitMix64::new(mean.to_bits());
            let draws = 200_000usize;
            let values: Vec<u64> = (0..draws).map(|_| sample(&mut rng, mean)).collect();
            let m = values.iter().sum::<u64>() as f64 / draws as f64;
            let var = values.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / draws as f64;
            assert!(
                (m - mean).abs() < 5.0 * (mean / draws as f64).sqrt(),
                "mean {mean}: {m}"
            );
            // The variance of the sample variance of a Poisson law is about (2λ² + λ)/n.
            let var_se = ((2.0 * mean * mean + mean) / draws as f64).sqrt();
            assert!(
                (var - mean).abs() < 5.0 * var_se,
                "mean {mean}: variance {var}"
            );

            let (lo, hi) = (
                (mean - 4.0 * mean.sqrt()).max(0.0) as u64,
                (mean + 4.0 * mean.sqrt()) as u64 + 1,
            );
            let mut chi2 = 0.0;
            let mut bins = 0;
            for k in lo..=hi {
                let p = (-mean + k as f64 * mean.ln() - ln_factorial(k as f64)).exp();
                let expected = p * draws as f64;
                if expected < 20.0 {
                    continue;
                }
                let observed = values.iter().filter(|&&v| v == k).count() as f64;
                chi2 += (observed - expected).powi(2) / expected;
                bins += 1;
            }
            // Mean bins, standard deviation sqrt(2·bins): allow 5 of them.
            let limit = bins as f64 + 5.0 * (2.0 * bins as f64).sqrt();
            assert!(chi2 < limit, "mean {mean}: chi² {chi2:.1} over {bins} bins");
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_draws() {
        let draw = |seed| {
            let mut rng = SplitMix64::new(seed);
            (0..100)
                .map(|i| sample(&mut rng, i as f64 * 0.7))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }
}
