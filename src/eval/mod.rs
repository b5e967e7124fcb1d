//! Evaluation: metrics against ground truth, registration, and the `ptycho compare` pipeline.

pub mod image;
pub mod metrics;
pub mod register;
