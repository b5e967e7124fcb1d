//! The forward physics of the PINN (physics-and-model.md §4–5), built from the kernels' ops, with the
//! backward pass of each step.

pub mod farfield;
pub mod merge;
