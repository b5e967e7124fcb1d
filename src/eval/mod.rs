//! Evaluation: metrics against ground truth, registration, and the `ptycho compare` pipeline.

pub mod compare;
pub mod image;
pub mod metrics;
pub mod plot;
pub mod register;
pub mod report;
