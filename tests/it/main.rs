//! The integration tests, as one binary so that wgpu and the crate link once: each module is one
//! area (the CLI, faults a user meets, the data layer against numpy, the metrics against
//! scikit-image, the physics against its oracles, training, bundles, ...).

mod common;

mod bench;
mod bundle;
mod cli;
mod compare;
mod convergence;
mod data_cli;
mod data_layer;
mod faults;
mod forward;
mod forward_cli;
mod merge;
mod model;
mod overlap;
mod physics;
mod ptychodus;
mod ptychopinn;
mod recon;
mod simulate;
mod stitch;
mod study;
mod train;
mod train_cli;
