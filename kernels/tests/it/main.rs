//! The kernel tests, as one binary: each module is one op family (its GPU kernels against the CPU
//! twin and an f64 oracle, gradients against finite differences), plus the naga checks of the
//! shader table and the runtime's device handling.

mod common;

mod conv;
mod elementwise;
mod fft;
mod layers;
mod layout;
mod loss;
mod naga_validation;
mod optim;
mod peak;
mod ptycho;
mod runtime;
mod translate;
